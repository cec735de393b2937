"""LeNet-5, *Dive into Deep Learning* 7.6, and its BatchNorm versions, 8.5.

``LeNet`` is the book's: sigmoid activations and average pooling (both
switchable), a 5x5 convolution padded to keep 28x28. ``LeNetBNScratch`` and
``LeNetBN`` are the book's BatchNorm LeNet (unpadded first convolution, a
BatchNorm after every convolution and hidden linear layer), one with the
from-scratch ``BatchNorm`` and one with ``nn.BatchNorm1d/2d``; their state
dicts are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from zoo.layers import blocks as layers
from zoo.layers.batchnorm import BatchNorm
from zoo.layers.blocks import Activation, Pooling, init_cnn, output_numel
from zoo.training.module import ClassificationModule
from zoo_common import register_model

_SMALL = "Use a larger --data.resize."


@register_model
class LeNet(ClassificationModule):
    """LeNet-5 with the book's sigmoid and average pooling (d2l 7.6)."""

    book = "7.6"
    prefers_channels_last = True
    min_input_size = 12
    accepts = "28 native"
    stem = "0"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
        activation: Activation = "sigmoid",
        pooling: Pooling = "avg",
        **kwargs,
    ) -> None:
        """
        Args:
            activation: nonlinearity after each layer but the last.
            pooling: 2x2 average (the book's) or max pooling.
        """
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        act, pool = (lambda: layers.activation(activation)), (lambda: layers.pooling(pooling))
        features = nn.Sequential(*self.features(in_channels, act, pool), nn.Flatten())
        flat = output_numel(features, in_channels, input_size, type(self).__name__, _SMALL)
        self.net = nn.Sequential(*features, *self.classifier(flat, num_classes, act))
        self.net.apply(init_cnn)
        self.load_pretrained()

    def features(self, in_channels: int, act: Callable[[], nn.Module], pool: Callable[[], nn.Module]) -> list[nn.Module]:
        return [
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), act(), pool(),  # N x 6 x 14 x 14
            nn.Conv2d(6, 16, kernel_size=5), act(), pool(),  # N x 16 x 5 x 5
        ]

    def classifier(self, flat: int, num_classes: int, act: Callable[[], nn.Module]) -> list[nn.Module]:
        return [nn.Linear(flat, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes)]


class _LeNetBatchNorm(LeNet):
    """The book's BatchNorm LeNet: no padding, a BatchNorm after every convolution and hidden linear layer."""

    prefers_channels_last = False  # with BatchNorm, channels-last trained slower on the CPU (0.6-0.95x)
    norm2d: Callable[[int], nn.Module]
    norm1d: Callable[[int], nn.Module]

    def features(self, in_channels, act, pool):
        return [
            nn.Conv2d(in_channels, 6, kernel_size=5), self.norm2d(6), act(), pool(),  # N x 6 x 12 x 12
            nn.Conv2d(6, 16, kernel_size=5), self.norm2d(16), act(), pool(),  # N x 16 x 4 x 4
        ]

    def classifier(self, flat, num_classes, act):
        return [
            nn.Linear(flat, 120), self.norm1d(120), act(),
            nn.Linear(120, 84), self.norm1d(84), act(),
            nn.Linear(84, num_classes),
        ]


@register_model
class LeNetBNScratch(_LeNetBatchNorm):
    """LeNet with BatchNorm written from scratch (d2l 8.5.4)."""

    book = "8.5"
    min_input_size = 16

    norm2d = norm1d = BatchNorm


@register_model
class LeNetBN(_LeNetBatchNorm):
    """LeNet with nn.BatchNorm2d/1d (d2l 8.5.5)."""

    book = "8.5"
    min_input_size = 16

    norm2d, norm1d = nn.BatchNorm2d, nn.BatchNorm1d
