"""Which architecture a set of weights belongs to, so that an error can name it.

A zoo checkpoint says so itself (LightningCLI records the model's class in its
hyperparameters as ``_class_path``). A plain state dict does not; its tensor
names do: they are compared with those of every zoo network and of the
torchvision families nearest to the zoo's, all built on the meta device (no
memory, no initialisation), and only when an error needs the answer.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torchvision

from zoo_common import get_model, list_models

# torchvision families whose weights a user may plausibly hand to a zoo model (ResNet18 has torchvision's
# layout); building all 80 torchvision classifiers, even on the meta device, takes about 6 s
TORCHVISION_FAMILIES = ("resnet*", "resnext*", "wide_resnet*")


def _shapes(state) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@lru_cache(maxsize=1)
def _known_layouts() -> list[tuple[str, dict[str, tuple[int, ...]]]]:
    """(name, tensor shapes by name) of every zoo network (default options) and of the torchvision families above."""
    layouts = []
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notes on its own initialisation defaults
        for name in list_models():
            layouts.append((name, _shapes(get_model(name)().net.state_dict())))
        for name in torchvision.models.list_models(module=torchvision.models, include=list(TORCHVISION_FAMILIES)):
            layouts.append((f"torchvision's {name}", _shapes(torchvision.models.get_model(name).state_dict())))
    return layouts


def identify(state: dict[str, torch.Tensor]) -> list[str]:
    """The architectures whose tensor names are exactly those of ``state``: zoo model names (``LeNet``) and
    torchvision builders (``torchvision's resnet50``). Where several have these names, those with the most
    shapes in common (a head or first convolution may differ: other classes, other channels)."""
    shapes = _shapes(state)
    same_names = [(name, layout) for name, layout in _known_layouts() if layout.keys() == shapes.keys()]
    agree = {name: sum(layout[k] == shapes[k] for k in shapes) for name, layout in same_names}
    return [name for name in agree if agree[name] == max(agree.values())]
