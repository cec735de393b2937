"""Callbacks of the run folder: its ``config.yaml`` (``SaveRunConfig``), and none left by a command that trained
nothing and wrote no result (``RemoveEmptyRun``), nor an event file by a failed evaluation."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from zoo.training.runs import LOG_DIR
from zoo_common import atomic_write_text, csv_text


class RemoveEmptyRun(L.Callback):
    """A command that trains no step and writes no result leaves no run folder behind (Lightning makes the
    logger's folder when the command starts): one that fails early, or ``--trainer.max_epochs 0``. A failed
    evaluation or prediction in an existing run's folder takes back the event file it started there.
    Only what this command made is removed."""

    RESULTS = ("checkpoints", "test_metrics.json", "validate_metrics.json", "predictions.csv")

    def __init__(self) -> None:
        self.started = time.time()
        self.first_step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.first_step = trainer.global_step  # a resumed run's: after its checkpoint was restored

    def _trained(self, trainer: L.Trainer) -> bool:
        return self.first_step is not None and trainer.global_step > self.first_step

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._trained(trainer):  # --trainer.max_epochs 0, a limit of 0 batches: nothing was trained
            self._remove(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or not self._trained(trainer):
            self._remove(trainer)

    def _log_dir(self, trainer: L.Trainer) -> Path | None:
        log_dir = getattr(trainer.logger, "log_dir", None)  # none for fast_dev_run's stand-in logger
        if trainer.global_rank != 0 or not log_dir or not Path(log_dir).is_dir():
            return None
        return Path(log_dir)

    def _remove(self, trainer: L.Trainer) -> None:
        folder = self._log_dir(trainer)
        if folder is None:
            return
        results = any((folder / name).exists() for name in self.RESULTS) or any(folder.glob("predictions*.csv"))
        if not results and self._all_new(folder):
            self._close_writers(trainer)
            shutil.rmtree(folder, ignore_errors=True)
            for parent in (folder.parent, folder.parent.parent):  # <Model>-<Data>/ and lightning_logs/, if now empty
                if LOG_DIR not in parent.parts:
                    break
                try:  # rmdir only removes an empty folder: safe beside other runs starting at this moment
                    parent.rmdir()
                except OSError:
                    break
        else:
            self._remove_own_events(trainer)

    def _all_new(self, folder: Path) -> bool:
        """Nothing in ``folder`` is older than this command."""
        try:
            return all(f.stat().st_mtime >= self.started - 1 for f in folder.rglob("*"))
        except OSError:
            return False

    def _remove_own_events(self, trainer: L.Trainer) -> None:
        """This process's TensorBoard file (``events.out.tfevents.<time>.<host>.<pid>.<n>``) in a run's folder."""
        folder = self._log_dir(trainer)
        if folder is None:
            return
        own = list(folder.glob(f"events.out.tfevents.*.{socket.gethostname()}.{os.getpid()}.*"))
        if not own:
            return
        self._close_writers(trainer)
        for events in own:
            if events.stat().st_mtime >= self.started - 1:
                events.unlink(missing_ok=True)

    @staticmethod
    def _close_writers(trainer: L.Trainer) -> None:
        """Close the TensorBoard writers first: at the end, an open one would write into what was removed."""
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and logger._experiment is not None:
                logger.experiment.close()


def write_label_noise(trainer) -> None:
    """``label_noise.csv`` beside config.yaml: the training examples whose labels ``--data.label_noise`` flipped
    (position, file where there is one, clean and noisy label), what a label-error finder is measured against."""
    flipped = getattr(trainer.datamodule, "flipped", None)
    log_dir = trainer.log_dir
    if not flipped or log_dir is None or trainer.global_rank != 0:
        return
    files = trainer.datamodule.example_files.get("train")
    rows = [[i, files[i] if files else "", clean, noisy]
            for i, clean, noisy in zip(*(flipped[k].tolist() for k in ("index", "clean", "noisy")))]
    atomic_write_text(Path(log_dir) / "label_noise.csv", csv_text(["index", "file", "clean_label", "noisy_label"], rows))


class SaveRunConfig(SaveConfigCallback):
    """``config.yaml`` in the run's folder: when training starts; for an evaluation or a prediction, at its end
    and only in a new folder (a run's own config stays as it trained), so a command that fails makes none."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)
            write_label_noise(trainer)

    def _after(self, trainer, pl_module) -> None:
        stage = trainer.state.fn.value
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if log_dir is not None and not os.path.isfile(os.path.join(log_dir, self.config_filename)):
            super().setup(trainer, pl_module, stage)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self._after(trainer, pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self._after(trainer, pl_module)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._after(trainer, pl_module)
