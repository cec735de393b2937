"""The classic PyTorch MNIST example network (pytorch/examples, mnist/main.py, the 2017-2020 version).

Two convolutions with max pooling and ReLU, ``Dropout2d`` after the second,
then 320 -> 50 -> 10 with dropout: 21,840 parameters for 1 x 28 x 28 inputs
and 10 classes. The example's log-softmax + NLL loss is the shared
cross-entropy on logits here, which computes the same thing.
"""

from __future__ import annotations

from torch import nn

from zoo.layers.blocks import output_numel
from zoo.training.module import ClassificationModule
from zoo_common import register_model


@register_model
class MnistCNN(ClassificationModule):
    """The classic PyTorch MNIST example CNN: 2 conv + 2 linear layers, dropout (21,840 parameters)."""

    min_input_size = 16
    accepts = "28 native"
    stem = "0"
    prefers_channels_last = True

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, dropout: float = 0.5,
                 **kwargs) -> None:
        """
        Args:
            dropout: probability of Dropout2d after the second convolution and of dropout after the first linear layer.
        """
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        features = nn.Sequential(
            nn.Conv2d(in_channels, 10, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),  # N x 10 x 12 x 12
            nn.Conv2d(10, 20, kernel_size=5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU(),  # N x 20 x 4 x 4
            nn.Flatten(),  # N x 320
        )
        flat = output_numel(features, in_channels, input_size, "MnistCNN", "Use a larger --data.resize.")
        self.net = nn.Sequential(
            *features,
            nn.Linear(flat, 50), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(50, num_classes),
        )
        self.load_pretrained()
