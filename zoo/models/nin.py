"""Network in Network (Lin et al., 2013), *Dive into Deep Learning* 8.3.

No fully connected layers: NiN blocks (a convolution followed by two 1x1
convolutions) and a global average pool over one channel per class.
"""

from __future__ import annotations

from torch import nn

from zoo.layers.blocks import init_cnn, output_numel
from zoo.training.module import ClassificationModule
from zoo_common import register_model


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


@register_model
class NiN(ClassificationModule):
    """Network in Network: NiN blocks and global average pooling (d2l 8.3); inputs of 67 px or more, book 224."""

    book = "8.3"
    prefers_channels_last = True
    min_input_size = 67
    accepts = "needs `--data.resize` on 28/32 px data"
    head = -3  # the last NiN block: its convolutions output one channel per class
    stem = "0.0"

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int = 224, dropout: float = 0.5, **kwargs
    ) -> None:
        """
        Args:
            dropout: dropout probability before the last NiN block.
        """
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),  # N x 96 x 54 x 54 (224 input)
            nn.MaxPool2d(3, stride=2),  # N x 96 x 26 x 26
            nin_block(96, 256, kernel_size=5, stride=1, padding=2),
            nn.MaxPool2d(3, stride=2),  # N x 256 x 12 x 12
            nin_block(256, 384, kernel_size=3, stride=1, padding=1),
            nn.MaxPool2d(3, stride=2),  # N x 384 x 5 x 5
            nn.Dropout(dropout),
            nin_block(384, num_classes, kernel_size=3, stride=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),  # N x num_classes
        )
        output_numel(self.net, in_channels, input_size, "NiN",
                     f"NiN needs inputs of at least {self.min_input_size} x {self.min_input_size}: set --data.resize (the book uses 224).")
        self.net.apply(init_cnn)
        self.load_pretrained()
