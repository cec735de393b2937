"""Multilayer perceptron, *Dive into Deep Learning* 5.2 (and dropout, 5.6)."""

from __future__ import annotations

from torch import nn

from zoo.layers import blocks as layers
from zoo.layers.blocks import Activation
from zoo.training.module import ClassificationModule
from zoo_common import register_model


@register_model
class MLP(ClassificationModule):
    """Multilayer perceptron over flattened pixels; book default 784-256-10 with ReLU (d2l 5.2)."""

    book = "5.2"
    min_input_size = 1
    accepts = "flattened"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
        hidden_sizes: tuple[int, ...] = (256,),
        activation: Activation = "relu",
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        """
        Args:
            hidden_sizes: width of each hidden layer, input side first.
            activation: nonlinearity after each hidden layer.
            dropout: dropout probability after each hidden layer (d2l 5.6 uses 0.5 and 0.5).
        """
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        modules: list[nn.Module] = [nn.Flatten()]  # N x C x H x W -> N x CHW
        width = in_channels * input_size * input_size
        for hidden in hidden_sizes:
            modules += [nn.Linear(width, hidden), layers.activation(activation)]
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
            width = hidden
        modules.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*modules)
        self.load_pretrained()
