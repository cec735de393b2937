"""ResNet-18 (He et al., 2016), *Dive into Deep Learning* 8.6, in torchvision's layout.

Module names and shapes follow ``torchvision.models.resnet18`` (no conv
biases, 1x1 convolution + BatchNorm on downsampling shortcuts), so ImageNet
weights load as they are; input channels and classes are configurable.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.training.module import ClassificationModule
from zoo_common import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetNet(nn.Module):
    """The network alone: stem, four stages of residual blocks, global pool, linear head."""

    def __init__(self, layers: list[int], num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for i, (blocks, width) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
            stride = 1 if i == 1 else 2
            stage = [BasicBlock(channels, width, stride)] + [BasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # N x 64 x H/4 x W/4
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # N x 512 x H/32 x W/32
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model
class ResNet18(ClassificationModule):
    """ResNet-18 in torchvision's layout (d2l 8.6); any input size, book 96."""

    book = "8.6"
    prefers_channels_last = True
    min_input_size = 1
    accepts = "global pooling; runs at native 28/32 px too"
    head = "fc"
    stem = "conv1"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 96, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        self.net = ResNetNet([2, 2, 2, 2], num_classes, in_channels)
        self.load_pretrained()
