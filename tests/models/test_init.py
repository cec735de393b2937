"""The book's initialisation: Xavier-uniform weights for the conv and linear layers of the CNNs that use
``init_cnn`` (d2l 7.6 LeNet, 8.3 NiN, 8.4 GoogLeNet, 8.5 BatchNorm LeNet)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zoo

BOOK_XAVIER = [
    ("LeNet", {}),
    ("LeNetBN", {}),
    ("LeNetBNScratch", {}),
    ("NiN", {"input_size": 96}),
    ("GoogLeNet", {}),
]


def _fans(w: torch.Tensor) -> tuple[int, int]:
    receptive = w[0, 0].numel() if w.dim() > 2 else 1
    return w.shape[1] * receptive, w.shape[0] * receptive


@pytest.mark.parametrize("name, kwargs", BOOK_XAVIER, ids=[n for n, _ in BOOK_XAVIER])
def test_conv_and_linear_weights_are_xavier_uniform(name, kwargs):
    torch.manual_seed(0)
    model = getattr(zoo, name)(num_classes=10, in_channels=1, **kwargs)
    layers = [m for m in model.net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers
    for layer in layers:
        w = layer.weight.detach()
        fan_in, fan_out = _fans(w)
        bound = math.sqrt(6 / (fan_in + fan_out))  # U(-bound, bound), Glorot & Bengio (2010)
        # PyTorch's default (kaiming_uniform_, a=sqrt(5)) draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert w.abs().max() <= bound * (1 + 1e-6), (name, layer)
        assert w.abs().max() >= 0.8 * bound or w.numel() < 50, (name, layer)
        if w.numel() >= 500:  # the standard deviation of U(-b, b) is b / sqrt(3)
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1), (name, layer)
