"""Callbacks that lose nothing: ``StopOnNonFiniteLoss``, ``CheckpointOnSigterm``, ``CheckpointEveryNSteps``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

from zoo_common import NonFiniteLossError


def last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    """Where the zoo's ``last.ckpt`` of this run lives (its ModelCheckpoint named "last")."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.filename == "last" and cb.dirpath:
            return Path(cb.dirpath) / "last.ckpt"
    return None



class StopOnNonFiniteLoss(L.Callback):
    """A NaN or infinite training loss stops the run with its step, before any weights it produced are written
    to a checkpoint, so the last checkpoint on disk is the last good one.

    Reading a loss on the host waits for the device to finish the step, so the losses are kept on the device
    and checked together: whenever a checkpoint is about to be written (at the end of an epoch, every N steps,
    on SIGTERM), every ``log_every_n_steps`` steps, and at the end of training. The error names the first bad
    step, however many steps later it is found.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[torch.Tensor, int, int, int]] = []  # (loss, step, epoch, batch) not yet checked

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.pending.append((loss.detach(), trainer.global_step, trainer.current_epoch, batch_idx))
        if len(self.pending) >= max(1, trainer.log_every_n_steps):
            self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.check(trainer)  # raising here keeps the checkpoint from being written

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        losses = torch.stack([loss.float().reshape(()) for loss, *_ in pending])
        finite = torch.isfinite(losses)
        if bool(finite.all()):  # the one wait for the device
            return
        first = int((~finite).nonzero()[0])
        value, step, epoch, batch_idx = losses[first].item(), *pending[first][1:]
        good = last_checkpoint_path(trainer)
        kept = f"the last good checkpoint is {good}" if good and good.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"the training loss became {value} at step {step} (epoch {epoch}, batch {batch_idx}); training "
            f"stopped and {kept}. Lower the learning rate (--optimizer.lr), or clip gradients "
            "(--trainer.gradient_clip_val 1.0)."
        )


class CheckpointOnSigterm(L.Callback):
    """SIGTERM (what SLURM and most schedulers send before killing a job) saves ``last.ckpt`` at this step;
    Lightning then stops the run, and ``zoo fit ... --ckpt_path last`` resumes from this very step."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if getattr(trainer, "received_sigterm", False):
            path = last_checkpoint_path(trainer)
            if path is not None:
                trainer.save_checkpoint(path, weights_only=False)  # the whole state; every rank calls it; rank 0 writes, atomically
                rank_zero_info(f"SIGTERM: saved {path} at step {trainer.global_step}; resume with --ckpt_path last")


class CheckpointEveryNSteps(L.Callback):
    """``last.ckpt`` also every ``every_n_steps`` training steps (0: off), so a killed run loses at most that many.

    It runs after ``StopOnNonFiniteLoss`` (the CLI lists it later), so a bad step's weights are never written.
    """

    def __init__(self, every_n_steps: int = 0) -> None:
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and not trainer.fast_dev_run:
            path = last_checkpoint_path(trainer)
            if path is not None:
                trainer.save_checkpoint(path, weights_only=False)  # the whole state; every rank calls it; rank 0 writes, atomically
