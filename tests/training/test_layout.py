"""The memory layout a model trains in: channels-last where it is faster, the same arithmetic either way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import cli
from zoo import ClassificationModule
from zoo.weights.card import weights_bytes
from zoo_common import get_model, list_models

CLASSIFIERS = [n for n in list_models() if issubclass(get_model(n), ClassificationModule)]
CHANNELS_LAST = [n for n in CLASSIFIERS if get_model(n).prefers_channels_last]
CL = torch.channels_last


def _conv_weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in net.parameters() if p.dim() == 4]


def test_the_convolutional_models_measured_faster_in_channels_last_prefer_it():
    # benchmarks/channels_last.py: these trained 1.1-1.5x faster on the CPU; the BatchNorm LeNets slower
    assert set(CHANNELS_LAST) == {"LeNet", "MnistCNN", "NiN", "GoogLeNet", "ResNet18"}


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("choice", [None, True, False])
def test_setup_puts_the_weights_in_the_chosen_layout(name, choice):
    cls = get_model(name)
    model = cls(input_size=max(28, cls.min_input_size), channels_last=choice)
    model.setup("fit")
    wanted = cls.prefers_channels_last if choice is None else choice
    weights = _conv_weights(model.net)
    for w in weights:
        if w.shape[1] > 1 and w.shape[2] * w.shape[3] > 1:  # a 1-channel or 1x1 kernel is both layouts at once
            assert w.is_contiguous(memory_format=CL) == wanted and w.is_contiguous() != wanted, name


@pytest.mark.parametrize("name", CHANNELS_LAST)
def test_a_step_in_channels_last_computes_what_the_usual_layout_does(name):
    """Same weights, same batch: the loss and every gradient of the training step agree with the model kept in the
    usual layout (rounding aside), and the network really received a channels-last batch."""
    cls = get_model(name)
    size = max(32, cls.min_input_size)
    torch.manual_seed(0)
    usual = cls(num_classes=10, in_channels=3, input_size=size, channels_last=False)
    fast = cls(num_classes=10, in_channels=3, input_size=size)
    fast.load_state_dict(usual.state_dict())
    for m in (usual, fast):
        m.setup("fit")
        m.train()
    seen = []
    fast.net.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous(memory_format=CL)))
    x, y = torch.rand(6, 3, size, size), torch.arange(6) % 10
    losses = []
    for m in (usual, fast):
        torch.manual_seed(1)  # the same dropout masks: drawn per channel or unit, whatever the layout
        losses.append(m.model_step((x, y), "train"))
        losses[-1].backward()
    assert seen == [True]
    assert losses[1].item() == pytest.approx(losses[0].item(), rel=1e-5)
    for (k, a), b in zip(usual.named_parameters(), fast.parameters()):
        # relative to the gradient's size: through ResNet's 17 BatchNorms over 6 images, rounding grows to 1e-3
        assert (a.grad - b.grad).norm() <= 5e-3 * a.grad.norm() + 1e-7, k
    probs = [m.eval().predict_step(x, 0) for m in (usual, fast)]
    assert torch.allclose(probs[0], probs[1], atol=1e-6)


def test_a_run_in_channels_last_saves_the_values_a_usual_model_loads(tmp_path, fashion):
    """The checkpoint of a channels-last run: its weights file is byte for byte the one of the same values in the
    usual layout, and a model in the usual layout loaded from it gives the run's own predictions."""
    run = cli("fit", "--model", "LeNet", *fashion, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3")
    assert run.model.net[0].weight.is_contiguous(memory_format=CL) and run.model.net[3].weight.dim() == 4
    ckpt = torch.load(Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt", map_location="cpu",
                      weights_only=False)
    usual_state = {k: v.contiguous() for k, v in ckpt["state_dict"].items()}
    assert not ckpt["state_dict"]["net.3.weight"].is_contiguous()  # saved as trained: channels-last
    saved = hashlib.sha256(weights_bytes(ckpt, "LeNet", "X")).hexdigest()
    assert saved == hashlib.sha256(weights_bytes({"state_dict": usual_state}, "LeNet", "X")).hexdigest()
    usual = get_model("LeNet")(channels_last=False)
    usual.load_state_dict(ckpt["state_dict"], strict=False)
    usual.setup("test")
    assert usual.net[3].weight.is_contiguous()
    x = torch.rand(5, 1, 28, 28)
    run.model.eval()
    with torch.no_grad():
        assert torch.allclose(F.softmax(usual.eval()(x), -1), run.model.predict_step(x, 0), atol=1e-6)
