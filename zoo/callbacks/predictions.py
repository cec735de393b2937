"""``zoo predict``'s output: one CSV row per input, the predicted class's name and probability."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from datamodules.listing import printable
from zoo.training.module import ClassificationModule
from zoo_common import atomic_write, atomic_write_new


class PredictionsCSV(BasePredictionWriter):
    """``predictions.csv`` beside the run's logs: ``file`` (or test-set ``index``), ``class``, ``probability``.

    Predict batches are ``(images, index)``; each process keeps its share by index, rank 0 gathers every
    share and writes each input exactly once, in input order. Unreadable files get empty rows.
    """

    def __init__(self, output: str | None = None, top_k: int = 1) -> None:
        super().__init__(write_interval="batch")
        self.output, self.top_k = output, top_k
        self.shares: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.shares = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if isinstance(pl_module, ClassificationModule):
            self.shares.append((batch[1].cpu(), prediction.detach().float().cpu()))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, ClassificationModule):
            return
        folder = Path(trainer.log_dir or ".")  # a collective under DDP: every rank asks
        shares = [self.shares]
        if trainer.world_size > 1:
            shares = [None] * trainer.world_size
            dist.all_gather_object(shares, self.shares)
        if trainer.global_rank != 0:
            return
        pairs = [pair for share in shares for pair in share]
        index = torch.cat([i for i, _ in pairs]) if pairs else torch.empty(0, dtype=torch.long)
        probs = torch.cat([p for _, p in pairs]) if pairs else torch.empty(0, 0)
        order = index.argsort()
        rows = prediction_rows(index[order], probs[order], trainer.datamodule, self.top_k)
        data = rows.getvalue().encode("utf-8", "surrogateescape")
        if self.output:  # the user's file, replaced if it exists
            self.path = Path(self.output)
            atomic_write(self.path, lambda out: out.write(data))
        else:  # a new file in the run's folder each time: earlier predictions are kept
            self.path = atomic_write_new(folder, "predictions", ".csv", lambda out: out.write(data))
        lines = rows.getvalue().splitlines()
        shown = [printable(line) for line in lines[:11]]
        more = f"\n... {len(lines) - 11} more" if len(lines) > 11 else ""
        print("\n".join(shown) + more)
        print(f"Predictions for {len(lines) - 1} input(s) written to {printable(self.path)}")


def prediction_rows(index: torch.Tensor, probs: torch.Tensor, datamodule, top_k: int = 1) -> io.StringIO:
    """The CSV: one row per input (``index`` into the predicted inputs), its ``top_k`` most probable classes
    with their probabilities; unreadable files get empty rows."""
    if len(set(index.tolist())) != len(index):
        raise RuntimeError("an input was predicted twice: the predict sampler must give each input to one process")
    files = list(getattr(datamodule, "predict_files", None) or [])
    inputs = [str(files[i]) if files else str(i) for i in index.tolist()]
    classes = list(getattr(datamodule, "classes", ()))
    k = max(1, min(top_k, probs.shape[1])) if probs.dim() == 2 and probs.shape[1] else 1
    header = ["file" if files else "index", "class", "probability"]
    for rank in range(2, k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(header)
    if len(probs):
        best, predicted = probs.topk(k, dim=1)
        for name, ks, ps in zip(inputs, predicted.tolist(), best.tolist()):
            cells = [name]
            for c, p in zip(ks, ps):
                cells += [classes[c] if c < len(classes) else c, f"{p:.6f}"]
            writer.writerow(cells)
    for bad in getattr(datamodule, "predict_errors", {}):
        writer.writerow([str(bad)] + [""] * (len(header) - 1))
    return rows


def report_unreadable(datamodule, rank: int) -> None:
    """Files that could not be read: named on stderr (by rank 0), then exit status 1; the others were predicted."""
    errors = getattr(datamodule, "predict_errors", {})
    if not errors:
        return
    if rank == 0:
        print("\n".join(f"error: {reason}" for reason in errors.values()), file=sys.stderr)
    sys.exit(f"{len(errors)} of {len(errors) + len(datamodule.predict_files)} files could not be read "
             "(listed above); the others are in predictions.csv")
