"""Training logic written once: every model of the zoo is a network plus one of these."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from zoo.batchnorm import BatchNorm

STAGES = ("train", "val", "test")


class ZooModule(L.LightningModule):
    """Base of every zoo model: subclasses set ``self.net`` and implement ``model_step``.

    Metrics are torchmetrics objects, one per stage, so that epoch values are
    exact means over every sample, also when reduced across DDP ranks. Logged
    per epoch: ``<stage>/loss``, ``<stage>/acc`` (classifiers), ``val|test/samples``;
    per logging step: ``train/loss_step``.
    """

    #: what the best checkpoint is chosen by, and in which direction
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    net: nn.Module

    def __init__(self) -> None:
        super().__init__()
        # a weighted mean, so uneven last batches (and uneven DDP shards) count per sample
        self.loss_mean = nn.ModuleDict({f"{s}_": MeanMetric() for s in STAGES})
        # evaluation counts its samples: proof that none is dropped or counted twice across ranks
        self.samples = nn.ModuleDict({f"{s}_": SumMetric() for s in ("val", "test")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        # Lightning's sync_batchnorm converts nn.BatchNorm layers; the zoo's own BatchNorm syncs itself
        scratch = [m for m in self.modules() if isinstance(m, BatchNorm)]
        if not scratch or self.trainer.world_size == 1:
            return
        sync = getattr(self.trainer.strategy, "_layer_sync", None) is not None
        for m in scratch:
            m.sync = sync
        if not sync and stage == "fit":
            rank_zero_warn(
                f"{type(self).__name__}: its from-scratch BatchNorm uses each process's own batch statistics "
                f"over {self.trainer.world_size} processes; pass --trainer.sync_batchnorm true to compute them "
                "over the global batch."
            )

    def model_step(self, batch, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def _update_loss(self, loss: torch.Tensor, n: int, stage: str) -> None:
        if n == 0:  # an empty evaluation batch keeps DDP ranks in step; it counts nothing
            return
        self.loss_mean[f"{stage}_"].update(loss.detach(), weight=n)
        if stage != "train":
            self.samples[f"{stage}_"].update(torch.tensor(float(n), device=loss.device))

    def epoch_metrics(self, stage: str) -> dict[str, Metric]:
        """The metrics of a stage by their log names; updated every step, logged once per epoch."""
        metrics = {f"{stage}/loss": self.loss_mean[f"{stage}_"]}
        if stage != "train":
            metrics[f"{stage}/samples"] = self.samples[f"{stage}_"]
        return metrics

    def _log_epoch(self, stage: str) -> None:
        # Computed here rather than passing the Metric objects to self.log in every step: each self.log
        # call costs about a millisecond of Lightning's bookkeeping, a tenth of a LeNet step on a CPU.
        # compute() reduces over all processes; sync_dist then averages identical values, a no-op.
        for name, metric in self.epoch_metrics(stage).items():
            self.log(name, metric.compute(), prog_bar=name.endswith("acc") or name == "val/loss", sync_dist=True)
            metric.reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.model_step(batch, "train")
        if self.global_step % self.trainer.log_every_n_steps == 0:  # only the steps the logger writes
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")


class ClassificationModule(ZooModule):
    """Cross-entropy loss, accuracy per stage (``train/acc``, ``val/acc``, ``test/acc``)."""

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        # validate_args=False: the inputs are our own logits and labels; the range checks cost every step
        self.acc = nn.ModuleDict(
            {f"{s}_": MulticlassAccuracy(num_classes, average="micro", validate_args=False) for s in STAGES}
        )

    def model_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self._update_loss(loss, len(y), stage)
        if len(y):
            self.acc[f"{stage}_"].update(logits.detach(), y)
        return loss

    def epoch_metrics(self, stage: str) -> dict[str, Metric]:
        return {**super().epoch_metrics(stage), f"{stage}/acc": self.acc[f"{stage}_"]}

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=-1)


class RegressionModule(ZooModule):
    """Mean squared error (``train/loss``, ``val/loss``, ``test/loss``)."""

    def model_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        y_hat = self(x)
        loss = F.mse_loss(y_hat, y)
        self._update_loss(loss, len(y), stage)
        return loss

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)
