"""Every registered model: shapes on every dataset's input, gradients, and the book's architecture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from tests import reference_nets as ref
from zoo import ClassificationModule
from zoo_common import get_model, list_models, register_model

CLASSIFIERS = [n for n in list_models() if issubclass(get_model(n), ClassificationModule)]
# (in_channels, native size, classes) of Fashion-MNIST / MNIST and CIFAR-10
DATA_SHAPES = {"FashionMNIST": (1, 28, 10), "MNIST": (1, 28, 10), "CIFAR10": (3, 32, 10)}
NIN_MIN = 67


def _size_for(name: str, native: int) -> int:
    return max(native, NIN_MIN) if name == "NiN" else native  # NiN needs a resize, as in the book


@pytest.mark.parametrize("dataset", DATA_SHAPES)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_on_each_dataset_shape(name, dataset):
    torch.manual_seed(0)
    channels, native, classes = DATA_SHAPES[dataset]
    size = _size_for(name, native)
    model = get_model(name)(num_classes=classes, in_channels=channels, input_size=size)
    x = torch.rand(4, channels, size, size)
    logits = model(x)
    assert logits.shape == (4, classes)
    loss = nn.functional.cross_entropy(logits, torch.arange(4) % classes)
    loss.backward()
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_nin_refuses_small_inputs_with_a_fix():
    with pytest.raises(ValueError, match="at least 67 x 67.*--data.resize"):
        zoo.NiN(input_size=NIN_MIN - 1)
    zoo.NiN(input_size=NIN_MIN)


def test_lenet_refuses_inputs_too_small():
    with pytest.raises(ValueError, match="LeNet cannot take 1 x 8 x 8 inputs"):
        zoo.LeNet(input_size=8)


def _copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and buffers in definition order (the two nets name them differently)."""
    src_state, dst_state = list(src.state_dict().values()), dst.state_dict()
    assert len(src_state) == len(dst_state)
    for (key, mine), theirs in zip(dst_state.items(), src_state):
        assert mine.shape == theirs.shape, key
    dst.load_state_dict(dict(zip(dst_state, src_state)))


# model, kwargs, reference builder, input (channels, size), the book's parameter count where it states one
BOOK = [
    ("SoftmaxRegression", {}, ref.softmax, (1, 28), 7_850),
    ("MLP", {}, ref.mlp, (1, 28), 203_530),
    ("LeNet", {}, ref.lenet, (1, 28), 61_706),
    ("LeNetBN", {}, ref.lenet_bn, (1, 28), None),
    ("LeNetBNScratch", {}, ref.lenet_bn, (1, 28), None),
    ("NiN", {"input_size": 224}, ref.nin, (1, 224), None),
    ("GoogLeNet", {"input_size": 96}, ref.googlenet, (1, 96), None),
    ("ResNet18", {"input_size": 96}, ref.resnet18, (1, 96), None),
]


@pytest.mark.parametrize("name,kwargs,build,shape,book_count", BOOK, ids=[b[0] for b in BOOK])
def test_same_network_as_the_book(name, kwargs, build, shape, book_count):
    torch.manual_seed(0)
    ours = get_model(name)(**kwargs)
    theirs = build()
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in theirs.parameters()):
        ref.materialise(theirs, *shape)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    if book_count is not None:
        assert count == book_count
    # same parameters in, same function out
    _copy_state(theirs, ours.net)
    ours.eval(), theirs.eval()
    x = torch.rand(3, *shape[:1], shape[1], shape[1])
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_resnet18_loads_torchvision_imagenet_layout():
    from torchvision.models import resnet18

    tv = resnet18(weights=None)  # 3 channels, 1000 classes
    ours = zoo.ResNet18(num_classes=1000, in_channels=3, input_size=224)
    ours.net.load_state_dict(tv.state_dict())  # strict: same names, same shapes
    tv.eval(), ours.eval()
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), tv(x))


def test_batchnorm_pair_share_state_dicts():
    torch.manual_seed(0)
    scratch, builtin = zoo.LeNetBNScratch(), zoo.LeNetBN()
    x = torch.rand(8, 1, 28, 28)
    builtin.train()(x)  # move the running statistics away from their initial values
    scratch.load_state_dict(builtin.state_dict())
    scratch.eval(), builtin.eval()
    torch.testing.assert_close(scratch(x), builtin(x), rtol=1e-5, atol=1e-5)


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="'LeNet' is already registered"):
        @register_model
        class LeNet(ClassificationModule):  # noqa: F811
            pass
    with pytest.raises(KeyError, match="unknown model 'Nope'; choose one of: GoogLeNet"):
        get_model("Nope")


def test_catalogue_lists_every_model(capsys):
    from zoo.cli import main

    main(["list"])
    out = capsys.readouterr().out
    for name in list_models():
        doc = get_model(name).__doc__.strip().splitlines()[0]
        assert f"{name}" in out and doc in out
