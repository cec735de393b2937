"""What every ``zoo`` run gets on top of Lightning's defaults: the logger, the checkpoint writer, the callbacks."""

from __future__ import annotations

import os

from jsonargparse import lazy_instance
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger

from zoo.app.predictions import PredictionsCSV
from zoo.training import callbacks as cb


def logger() -> TensorBoardLogger:
    """Lightning's default logger (named after the job under SLURM), less the placeholder hp_metric:
    HparamsWithMetrics writes the real results. A new lazy instance per parser: runs never share one.
    In the working directory, as Lightning's own (an absolute path: where it was started, whatever follows)."""
    return lazy_instance(TensorBoardLogger, save_dir=os.getcwd(), version=SLURMEnvironment.job_id(), default_hp_metric=False)


# checkpoints written beside their destination, then renamed (a trainer plugin)
PLUGINS = {"class_path": "zoo.training.checkpoint_io.AtomicCheckpointIO"}


def callbacks(config) -> list[Callback]:
    """What every run shows and keeps, in this order (the best/last checkpoints come from the model's
    ``configure_callbacks``; Lightning runs checkpoint callbacks last)."""
    monitors = [cb.StopOnNonFiniteLoss(), cb.CheckpointOnSigterm(), cb.InputGrid(), cb.SamplesPerSecond(),
                cb.HparamsWithMetrics(), cb.CheckpointEveryNSteps(config.checkpoint_every_n_steps), PredictionsCSV()]
    if config.trainer.get("logger") is not False:
        monitors.append(LearningRateMonitor(logging_interval="epoch"))
    if config.trainer.get("enable_progress_bar") is not False:
        monitors.append(cb.ProgressBar())
    return monitors
