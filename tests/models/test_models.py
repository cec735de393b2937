"""Every registered model: shapes on every dataset's input, gradients, and the book's architecture."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image
from torch import nn

import datamodules.registry  # noqa: F401  (registers the DataModules)
import zoo
from tests.helpers import REPO, SHARED_DATASETS
from tests.helpers import reference_nets as ref
from zoo import ClassificationModule
from zoo_common import (
    InputShapeError,
    get_datamodule,
    get_model,
    list_models,
    register_model,
)

CLASSIFIERS = [n for n in list_models() if issubclass(get_model(n), ClassificationModule)]
# the built-in image datasets' inputs, from their DataModules: (in_channels, native size, classes)
DATA_SHAPES = {n: (get_datamodule(n).in_channels, get_datamodule(n).native_size, len(get_datamodule(n).classes))
               for n in ("FashionMNIST", "MNIST", "CIFAR10")}


def _size_for(name: str, native: int) -> int:
    return max(native, get_model(name).min_input_size)  # NiN needs a resize, as in the book


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


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_declared_minimum_input_size_is_the_smallest_that_runs(name):
    cls = get_model(name)
    assert cls.min_input_size >= 1
    cls(input_size=cls.min_input_size).eval()(torch.rand(2, 1, cls.min_input_size, cls.min_input_size))
    if cls.min_input_size > 1:
        with pytest.raises(InputShapeError, match=f"{name}"):
            cls(input_size=cls.min_input_size - 1)


def _changed(name: str, option: str, one: int, other: int) -> tuple[set[str], dict, dict, ClassificationModule]:
    """The network's tensors whose shape differs between ``option=one`` and ``option=other``, both shapes, a model."""
    cls = get_model(name)
    size = max(28, cls.min_input_size)
    a, b = (cls(**{option: v, "input_size": size}) for v in (one, other))
    shapes_a, shapes_b = ({k: tuple(v.shape) for k, v in m.net.state_dict().items()} for m in (a, b))
    return {k for k in shapes_a if shapes_a[k] != shapes_b[k]}, shapes_a, shapes_b, a


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_declared_head_is_what_depends_on_the_class_count(name):
    """The tensors whose shape follows num_classes are the head's, and only those: what fine-tuning replaces."""
    changed, ten, _, model = _changed(name, "num_classes", 10, 7)
    head = model.head_prefix
    assert changed and all(k.startswith(head) for k in changed), (head, sorted(changed))
    assert {k for k in ten if k.startswith(head) and k.endswith("weight") and len(ten[k]) > 1} <= changed


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_declared_stem_is_the_first_convolution(name):
    """The one tensor whose shape follows the input channels is the stem's weight (what is adapted 1 <-> 3)."""
    changed, gray, colour, model = _changed(name, "in_channels", 1, 3)
    first_conv = next((f"{n}.weight" for n, m in model.net.named_modules() if isinstance(m, nn.Conv2d)), "")
    assert model.stem_key == first_conv
    if first_conv:
        assert changed == {first_conv} and gray[first_conv][1] == 1 and colour[first_conv][1] == 3


@pytest.mark.parametrize("name", list_models())
def test_each_model_declares_where_it_comes_from(name):
    cls = get_model(name)
    assert cls.__doc__ and cls.__doc__.strip(), "a docstring: its first line is its `zoo list` line"
    assert cls.book == "" or cls.book.replace(".", "").isdigit(), cls.book
    assert (cls.min_input_size == 0) == (not issubclass(cls, ClassificationModule))


def test_nin_refuses_small_inputs_with_a_fix():
    with pytest.raises(ValueError, match="at least 67 x 67.*--data.resize"):
        zoo.NiN(input_size=66)
    zoo.NiN(input_size=67)


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


def test_the_readme_model_table_is_what_the_classes_declare():
    from zoo.commands.listing import readme_table

    readme = (REPO / "README.md").read_text()
    assert f"<!-- models_table:start -->\n{readme_table()}\n<!-- models_table:end -->" in readme


@pytest.mark.slow  # a copy of the checkout, three zoo commands and a pytest run in it
def test_a_model_is_one_file(tmp_path):
    """zoo/models/mlp.py copied to tiny.py with its class renamed, nothing else touched: the new model is listed,
    trains, and passes every per-model test (in a copy of the checkout, so this one is left as it is)."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "lightning_logs", "*.egg-info")
    for part in ("zoo", "datamodules", "tests", "configs"):
        shutil.copytree(REPO / part, copy / part, ignore=ignore)
    shutil.copy2(REPO / "zoo_common.py", copy)
    source = (copy / "zoo" / "models" / "mlp.py").read_text()
    (copy / "zoo" / "models" / "tiny.py").write_text(re.sub(r"\bMLP\b", "TinyMLP", source))
    env = {**os.environ, "PYTHONPATH": str(copy), "CUDA_VISIBLE_DEVICES": ""}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600)

    listed = run("-m", "zoo.cli", "list")
    assert listed.returncode == 0 and "\n  TinyMLP " in listed.stdout, listed.stdout + listed.stderr
    photos = copy / "photos"
    for split, n in (("train", 6), ("test", 2)):
        for label, shade in (("dark", 40), ("light", 210)):
            (photos / split / label).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (20, 20), shade + i).save(photos / split / label / f"{i}.png")
    fit = run("-m", "zoo.cli", "fit", "--model", "TinyMLP", "--data", "ImageFolder", "--data.root", str(photos),
              "--data.crop_size", "16", "--data.channels", "1", "--trainer.fast_dev_run", "1")
    assert fit.returncode == 0, fit.stdout[-2000:] + fit.stderr[-2000:]
    if (SHARED_DATASETS / "FashionMNIST").is_dir():  # the command as a user types it, on the real files
        fit = run("-m", "zoo.cli", "fit", "--model", "TinyMLP", "--data", "FashionMNIST", "--data.root",
                  str(SHARED_DATASETS), "--trainer.fast_dev_run", "1")
        assert fit.returncode == 0, fit.stdout[-2000:] + fit.stderr[-2000:]
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/models/test_models.py", "-k", "TinyMLP")
    assert tests.returncode == 0 and re.search(r"\b[1-9]\d* passed", tests.stdout), tests.stdout[-3000:]
    assert "TinyMLP" in run("-m", "pytest", "-q", "--collect-only", "tests/models/test_models.py", "-k", "TinyMLP").stdout
