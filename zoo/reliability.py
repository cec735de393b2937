"""Losing nothing: a checkpoint on SIGTERM, and a clean stop when the loss stops being a number."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

from zoo.errors import NonFiniteLossError


def last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    """Where the zoo's ``last.ckpt`` of this run lives (its ModelCheckpoint named "last")."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.filename == "last" and cb.dirpath:
            return Path(cb.dirpath) / "last.ckpt"
    return None


class Guard(L.Callback):
    """Checks every training step, before any checkpoint callback runs.

    - SIGTERM (what SLURM and most schedulers send before killing a job): save
      ``last.ckpt`` now; Lightning then stops the run, and ``zoo fit ... --ckpt_path last``
      resumes from this very step.
    - A NaN or infinite loss: stop with the step, before this step's weights are
      written anywhere, so the last checkpoint on disk is the last good one.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not math.isfinite(loss.detach().float().item()):
            good = last_checkpoint_path(trainer)
            kept = f"the last good checkpoint is {good}" if good and good.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
                f"batch {batch_idx}); training stopped and {kept}. Lower the learning rate "
                f"(--optimizer.lr), or clip gradients (--trainer.gradient_clip_val 1.0)."
            )
        if getattr(trainer, "received_sigterm", False):
            path = last_checkpoint_path(trainer)
            if path is not None:
                trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes, atomically
                rank_zero_info(f"SIGTERM: saved {path} at step {trainer.global_step}; resume with --ckpt_path last")
