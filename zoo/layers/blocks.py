"""Small pieces the model files share: activations by name, the book's init, input checks."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from zoo_common import InputShapeError

Activation = Literal["relu", "sigmoid", "tanh", "gelu"]
Pooling = Literal["avg", "max"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(_ACTIVATIONS)}") from None


def pooling(name: str, kernel_size: int = 2, stride: int = 2) -> nn.Module:
    if name not in ("avg", "max"):
        raise ValueError(f"unknown pooling {name!r}; choose 'avg' or 'max'")
    return (nn.AvgPool2d if name == "avg" else nn.MaxPool2d)(kernel_size, stride)


def init_cnn(module: nn.Module) -> None:
    """The book's ``init_cnn``: Xavier-uniform weights for linear and conv layers (biases stay PyTorch's)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)


def output_numel(features: nn.Module, in_channels: int, input_size: int, model: str, hint: str = "") -> int:
    """Features per example after ``features``, found by a dry forward pass; a clear error if the input is too small.

    Explicit sizes instead of lazy layers: every parameter exists before the
    optimizer and DDP see the model.
    """
    was_training = features.training
    features.eval()  # a dry pass must not touch BatchNorm statistics
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, in_channels, input_size, input_size))
    except RuntimeError as e:
        raise InputShapeError(
            f"{model} cannot take {in_channels} x {input_size} x {input_size} inputs: {e}. {hint}".strip()
        ) from None
    finally:
        features.train(was_training)
    if out.numel() == 0:
        raise InputShapeError(f"{model}: {input_size} x {input_size} inputs shrink to nothing. {hint}".strip())
    return out[0].numel()
