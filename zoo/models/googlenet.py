"""GoogLeNet (Szegedy et al., 2015), *Dive into Deep Learning* 8.4.

Nine Inception blocks between a convolutional stem and a global average pool,
as the book builds it (no auxiliary classifiers, no BatchNorm). The book trains
it on Fashion-MNIST resized to 96 x 96.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.blocks import init_cnn
from zoo.training.module import ClassificationModule
from zoo_common import register_model


class Inception(nn.Module):
    """Four parallel paths: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool then 1x1, concatenated."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int) -> None:
        super().__init__()
        self.b1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.b2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = torch.relu
        b1 = relu(self.b1_1(x))
        b2 = relu(self.b2_2(relu(self.b2_1(x))))
        b3 = relu(self.b3_2(relu(self.b3_1(x))))
        b4 = relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


# (c1, (c2 reduce, c2), (c3 reduce, c3), c4) of each Inception block; None marks a 3x3/2 max-pool
_BLOCKS = [
    (64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64), None,
    (192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64), (128, (128, 256), (24, 64), 64),
    (112, (144, 288), (32, 64), 64), (256, (160, 320), (32, 128), 128), None,
    (256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128),
]


@register_model
class GoogLeNet(ClassificationModule):
    """GoogLeNet with nine Inception blocks (d2l 8.4); any input size, book 96."""

    book = "8.4"
    prefers_channels_last = True
    min_input_size = 1
    accepts = "global pooling; runs at native 28/32 px too"
    stem = "0"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 96, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        stem = [
            nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # N x 64 x 24 x 24 (96 input)
            nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
            nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # N x 192 x 12 x 12
        ]
        blocks, channels = [], 192
        for spec in _BLOCKS:
            if spec is None:
                blocks.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # halves H and W
                continue
            blocks.append(Inception(channels, *spec))
            channels = blocks[-1].out_channels
        self.net = nn.Sequential(
            *stem,
            *blocks,  # N x 1024 x 3 x 3
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(channels, num_classes),
        )
        self.net.apply(init_cnn)
        self.load_pretrained()
