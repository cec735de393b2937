"""What every run shows in TensorBoard beyond the logged metrics: throughput, hyperparameters with results, and
the test set's confusion matrix."""

from __future__ import annotations

import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image, ImageDraw


def tensorboard(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


class SamplesPerSecond(L.Callback):
    """``train/samples_per_sec`` each epoch: training examples over the time of the training batches.

    Data loading counts, validation does not (the clock stops at the epoch's last training batch).
    The logged rate is for all processes together; ``per_second`` is this process's over the whole run.
    """

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.samples = self.total_samples = 0
        self.total_seconds = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts without an epoch start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.last = time.perf_counter()
        self.samples = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.samples += len(batch[1]) if isinstance(batch, (tuple, list)) else len(batch)
        self.last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = self.last - self.start
        if self.samples and seconds > 0:
            self.total_samples += self.samples
            self.total_seconds += seconds
            rate = self.samples * trainer.world_size / seconds
            pl_module.log("train/samples_per_sec", rate, on_epoch=True, rank_zero_only=True)

    @property
    def per_second(self) -> float:
        return self.total_samples / self.total_seconds


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}{k}/" if isinstance(v, dict) else f"{prefix}{k}", v, out)
    elif isinstance(value, (int, float, str, bool)) or value is None:
        out[prefix] = "None" if value is None else value
    else:
        out[prefix] = str(value)


class HparamsWithMetrics(L.Callback):
    """At the end of fit or test, the run's hyperparameters with its final metrics, for TensorBoard's HPARAMS tab."""

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, metrics: dict[str, float]) -> None:
        logger = tensorboard(trainer)
        if logger is None or trainer.global_rank != 0 or not metrics:
            return
        params: dict = {"model": type(pl_module).__name__}
        _flat("model/", dict(pl_module.hparams), params)
        if trainer.datamodule is not None:
            params["data"] = type(trainer.datamodule).__name__
            _flat("data/", dict(trainer.datamodule.hparams), params)
        for i, group in enumerate(trainer.optimizers[0].param_groups if trainer.optimizers else []):
            params[f"optimizer/lr{i or ''}"] = group["lr"]
        if trainer.optimizers:
            params["optimizer"] = type(trainer.optimizers[0]).__name__
        params = {k: v for k, v in params.items() if not k.endswith("_instantiator")}
        logger.log_hyperparams(params, metrics={f"hp/{k.replace('/', '_')}": v for k, v in metrics.items()})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}
        best = trainer.checkpoint_callback
        if best is not None and best.best_model_score is not None:
            metrics[f"best_{best.monitor}"] = best.best_model_score.item()
        self._log(trainer, pl_module, metrics)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, {k: v.item() for k, v in trainer.callback_metrics.items() if k.startswith("test/")})


def confusion_image(matrix: torch.Tensor, classes: list[str]) -> torch.Tensor:
    """A confusion matrix (rows: true class, columns: predicted) drawn with counts, class names and per-class accuracy."""
    cm = matrix.cpu().long().numpy()
    n = len(cm)
    names = [str(c) for c in classes] if len(classes) == n else [str(i) for i in range(n)]
    cell, left, top = 40, 8 + 7 * max(len(s) for s in names), 30
    width, height = left + cell * n + 90, top + cell * n + 20
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    totals = cm.sum(axis=1)
    for i in range(n):
        draw.text((4, top + i * cell + cell // 2 - 5), names[i], fill="black")
        draw.text((left + i * cell + 2, top - 14), names[i][:6], fill="black")
        for j in range(n):
            share = cm[i, j] / totals[i] if totals[i] else 0.0
            shade = int(255 * (1 - share))
            color = (shade, shade, 255) if i == j else (255, shade, shade)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color, outline=(200, 200, 200))
            draw.text((box[0] + 4, box[1] + cell // 2 - 5), str(cm[i, j]), fill="black" if share < 0.6 else "white")
        acc = cm[i, i] / totals[i] if totals[i] else float("nan")
        draw.text((left + n * cell + 8, top + i * cell + cell // 2 - 5), f"{acc:.1%}", fill="black")
    draw.text((left + n * cell + 8, top - 14), "accuracy", fill="black")
    draw.text((left, top + n * cell + 5), "rows: true class, columns: predicted", fill="gray")
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
