"""What is exported: the DataModule's own evaluation transform (uint8 -> [0, 1] -> crop/resize -> normalise)
followed by the network, so the file takes the very tensor ``zoo predict`` reads from an image file."""

from __future__ import annotations

import torch
from torch import nn

from zoo.training.module import ClassificationModule


class ImageClassifier(nn.Module):
    """uint8 ``N x C x S x S`` -> (logits, probabilities), both ``N x classes``."""

    def __init__(self, module: nn.Module, datamodule) -> None:
        super().__init__()
        self.net = module
        self.datamodule = datamodule  # not a module: its transform is plain tensor code, traced with the network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(self.datamodule.transform(images, train=False))
        return logits, logits.softmax(dim=-1)


class Regressor(nn.Module):
    """float32 ``N x features`` -> predictions ``N``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.net = module

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def exportable(module: nn.Module, datamodule) -> nn.Module:
    """The module to export, in eval mode (BatchNorm on its running statistics, no dropout)."""
    wrapped = ImageClassifier(module, datamodule) if is_classifier(module) else Regressor(module)
    return wrapped.eval()


def is_classifier(module: nn.Module) -> bool:
    return isinstance(module, ClassificationModule)


def contract(module: nn.Module, datamodule) -> dict:
    """What the exported file takes and gives, and how an image file becomes its input (as ``zoo predict`` does)."""
    if not is_classifier(module):
        n = datamodule.num_features
        return {"kind": "regression", "model": type(module).__name__, "data": type(datamodule).__name__,
                "input": {"name": "features", "dtype": "float32", "shape": ["N", n]},
                "outputs": [{"name": "prediction", "shape": ["N"]}]}
    c, s = datamodule.in_channels, datamodule.native_size
    steps = ["x / 255 as float32"]
    crop = getattr(datamodule, "crop_size", None)
    if crop and crop != s:
        steps.append(f"center crop to {crop} x {crop}")
    if getattr(datamodule, "resize", None) and datamodule.resize != (crop or s):
        steps.append(f"bilinear resize to {datamodule.resize} x {datamodule.resize}")
    if datamodule.normalize:
        steps.append(f"(x - mean) / std per channel, mean {list(datamodule.mean)}, std {list(datamodule.std)}")
    folder = hasattr(datamodule, "crop_size")  # an ImageFolder: photos decoded as its cache decodes them
    decode = ("EXIF orientation applied, shorter side resized to {s} (bilinear), center crop {s} x {s}" if folder
              else "resized to {s} x {s} (bilinear, whatever the aspect ratio)").format(s=s)
    return {
        "kind": "classification", "model": type(module).__name__, "data": type(datamodule).__name__,
        "input": {"name": "images", "dtype": "uint8", "shape": ["N", c, s, s], "layout": "NCHW",
                  "color": "gray" if c == 1 else "RGB", "values": "0..255"},
        "decode": {"method": "center_crop" if folder else "resize", "size": s, "channels": c, "text": decode},
        "inside": steps,
        "outputs": [{"name": "logits", "shape": ["N", len(datamodule.classes)]},
                    {"name": "probabilities", "shape": ["N", len(datamodule.classes)], "text": "softmax of logits"}],
        "classes": list(datamodule.classes),
    }


def example_input(spec: dict, n: int = 2) -> torch.Tensor:
    """A batch of the contract's input (the tracing example: its values do not matter)."""
    shape = [n, *spec["input"]["shape"][1:]]
    if spec["input"]["dtype"] == "uint8":
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))
