"""What every ``zoo`` run gets on top of Lightning's defaults: the logger, the checkpoint writer, the callbacks."""

from __future__ import annotations

import logging
import os

from jsonargparse import lazy_instance
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.cli import SaveConfigCallback

from zoo.app import runs
from zoo.app.empty_runs import RemoveEmptyRun
from zoo.app.predictions import PredictionsCSV
from zoo.training import callbacks as cb
from zoo.tune import report as tune_report


def logger() -> runs.RunLogger:
    """Lightning's default logger (the version named after the job under SLURM), less the placeholder hp_metric:
    HparamsWithMetrics writes the real results. A new lazy instance per parser: runs never share one.
    In the working directory, as Lightning's own (an absolute path: where it was started, whatever follows);
    ``runs.place_logger`` names the run's folder."""
    return lazy_instance(runs.RunLogger, save_dir=os.getcwd(), version=SLURMEnvironment.job_id(), default_hp_metric=False)


# the book's usual budget; Lightning's own default is 1000 epochs, hours of a laptop for a first try
MAX_EPOCHS = 10


class DeviceLines(logging.Filter):
    """Holds back Lightning's "GPU available: ..." lines until the data and the model have passed their checks
    (``ShowDeviceLines``), so that a command refused for bad input says one line, not three."""

    PREFIXES = ("GPU available", "TPU available", "HPU available", "IPU available")

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self.release = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.release or not str(record.msg).startswith(self.PREFIXES):
            return True
        self.held.append(record)
        return False

    def show(self) -> None:
        held, self.held = self.held, []
        self.release = True
        try:
            for record in held:
                logging.getLogger(record.name).handle(record)
        finally:
            self.release = False


DEVICE_LINES = DeviceLines()


class ShowDeviceLines(Callback):
    """The device lines, once the data is there (after ``prepare_data`` and the DataModule's ``setup``)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        DEVICE_LINES.show()


class AnnounceRun(Callback):
    """Where the run is kept, said when training starts and again when it ends (with what to run next)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        log_dir = trainer.log_dir if trainer.logger is not None else None  # a collective under DDP: every rank asks
        if trainer.global_rank == 0 and log_dir:
            print(f"Run folder: {log_dir} (TensorBoard logs, config.yaml, checkpoints/)", flush=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        log_dir = trainer.log_dir if trainer.logger is not None else None
        if trainer.global_rank != 0 or not log_dir:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and os.path.isfile(best):
            print(f"Run folder: {log_dir}; best checkpoint {best}: evaluate it with "
                  f"`zoo test --ckpt_path {best}`", flush=True)


# checkpoints written beside their destination, then renamed (a trainer plugin)
PLUGINS = {"class_path": "zoo.training.checkpoint_io.AtomicCheckpointIO"}


def callbacks(config) -> list[Callback]:
    """What every run shows and keeps, in this order (the best/last checkpoints come from the model's
    ``configure_callbacks``; Lightning runs checkpoint callbacks last)."""
    monitors = [ShowDeviceLines(), AnnounceRun(), cb.StopOnNonFiniteLoss(), cb.CheckpointOnSigterm(), cb.InputGrid(),
                cb.SamplesPerSecond(), cb.HparamsWithMetrics(), cb.CheckpointEveryNSteps(config.checkpoint_every_n_steps),
                PredictionsCSV(config.get("output"), config.get("top_k") or 1),
                RemoveEmptyRun()]
    if config.trainer.get("logger") is not False:
        monitors.append(LearningRateMonitor(logging_interval="epoch"))
    if config.trainer.get("enable_progress_bar") is not False:
        monitors.append(cb.ProgressBar())
    trial = tune_report.current()
    if trial is not None:  # a trial of `zoo tune`: its metric to the study each epoch
        monitors.append(tune_report.ReportToStudy(trial))
    return monitors


class SaveRunConfig(SaveConfigCallback):
    """``config.yaml`` in the run's folder: when training starts; for an evaluation or a prediction, at its end
    and only in a new folder (a run's own config stays as it trained), so a command that fails makes none."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)

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
