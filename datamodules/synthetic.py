"""Synthetic regression data y = Xw + b + noise, d2l section 3.3."""

from __future__ import annotations

import torch

from datamodules.base import InMemoryDataModule
from zoo_common import register_datamodule


@register_datamodule
class SyntheticPoints(InMemoryDataModule):
    """Points y = Xw + b + N(0, noise^2) with X ~ N(0, 1), the book's linear regression data."""

    def __init__(
        self,
        w: list[float] = [2.0, -3.4],  # noqa: B006 (LightningCLI needs a literal default to show)
        b: float = 4.2,
        noise: float = 0.01,
        num_train: int = 1000,
        num_val: int = 1000,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        """
        Args:
            w: true weights; their number is the number of features.
            b: true bias.
            noise: standard deviation of the Gaussian noise added to y.
            num_train: training points.
            num_val: validation points (also used by ``test``).
            batch_size: examples per batch.
            seed: seed of the data and of the shuffling.
        """
        super().__init__(batch_size=batch_size, seed=seed)
        self.save_hyperparameters()
        self.w, self.b, self.noise = list(w), float(b), noise
        self.num_train, self.num_val = num_train, num_val
        self.train_set = self.val_set = None

    @property
    def num_features(self) -> int:
        return len(self.w)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.num_features,)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        g = torch.Generator().manual_seed(self.seed)
        n = self.num_train + self.num_val
        X = torch.randn(n, self.num_features, generator=g)
        y = X @ torch.tensor(self.w) + self.b + self.noise * torch.randn(n, generator=g)
        self.train_set = (X[: self.num_train], y[: self.num_train])
        self.val_set = (X[self.num_train :], y[self.num_train :])

    def train_dataloader(self):
        return self._loader(self.train_set, train=True)

    def val_dataloader(self):
        return self._loader(self.val_set, train=False)

    test_dataloader = val_dataloader
    predict_dataloader = val_dataloader
