"""Linear models, *Dive into Deep Learning* chapters 3 and 4.

``LinearRegression`` (section 3.5) fits ``y = Xw + b``; ``SoftmaxRegression``
(section 4.5) is one linear layer over flattened pixels. Both initialise as the
book does: weights from N(0, 0.01²), zero biases.
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.training.module import ClassificationModule, RegressionModule
from zoo_common import register_model


def _init_normal(layer: nn.Linear, std: float = 0.01) -> None:
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)


@register_model
class LinearRegression(RegressionModule):
    """Linear regression y = Xw + b trained with squared loss (d2l 3.5)."""

    book = "3.5"

    def __init__(self, num_features: int = 2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(num_features, 1)
        _init_normal(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # N x features -> N

    @property
    def w(self) -> torch.Tensor:
        return self.net.weight.detach().flatten()

    @property
    def b(self) -> torch.Tensor:
        return self.net.bias.detach()[0]

    def on_fit_end(self) -> None:
        # The book's closing check: learned parameters beside the ones that made the data.
        dm = self.trainer.datamodule
        true_w = getattr(dm, "w", None)
        true_b = getattr(dm, "b", None)
        lines = [f"learned w = {[round(v, 4) for v in self.w.tolist()]}, b = {self.b.item():.4f}"]
        if true_w is not None and true_b is not None:
            err_w = (torch.as_tensor(true_w, dtype=torch.float32) - self.w.cpu()).abs().max().item()
            lines.append(f"true    w = {[round(v, 4) for v in true_w]}, b = {true_b:.4f}")
            lines.append(f"off by: max |w - w_true| = {err_w:.4f}, |b - b_true| = {abs(true_b - self.b.item()):.4f}")
        for line in lines:
            rank_zero_info(line)


@register_model
class SoftmaxRegression(ClassificationModule):
    """Softmax regression: one linear layer over flattened pixels (d2l 4.5)."""

    book = "4.5"
    min_input_size = 1
    accepts = "flattened"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Flatten(),  # N x C x H x W -> N x CHW
            nn.Linear(in_channels * input_size * input_size, num_classes),
        )
        _init_normal(self.net[1])
        self.load_pretrained()
