"""What every ``zoo`` run gets on top of Lightning's defaults: the logger, the checkpoint writer, the callbacks."""

from __future__ import annotations

import os
from collections.abc import Sequence

from jsonargparse import lazy_instance
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, LearningRateMonitor

from zoo import callbacks as cb
from zoo.commands import runs


def logger() -> runs.RunLogger:
    """Lightning's default logger (the version named after the job under SLURM), less the placeholder hp_metric:
    HparamsWithMetrics writes the real results. A new lazy instance per parser: runs never share one.
    In the working directory, as Lightning's own (an absolute path: where it was started, whatever follows);
    ``runs.place_logger`` names the run's folder."""
    return lazy_instance(runs.RunLogger, save_dir=os.getcwd(), version=SLURMEnvironment.job_id(), default_hp_metric=False)


# the book's usual budget; Lightning's own default is 1000 epochs, hours of a laptop for a first try
MAX_EPOCHS = 10


# checkpoints written beside their destination, then renamed (a trainer plugin)
PLUGINS = {"class_path": "zoo.training.checkpoint_io.AtomicCheckpointIO"}


def callbacks(config, extra: Sequence[Callback] = ()) -> list[Callback]:
    """What every run shows and keeps, in this order (the best/last checkpoints come from the model's
    ``configure_callbacks``; Lightning runs checkpoint callbacks last), then ``extra``: what a command adds
    for itself (a `zoo tune` trial reports to its study)."""
    monitors = [cb.ShowDeviceLines(), cb.AnnounceRun(), cb.StopOnNonFiniteLoss(), cb.CheckpointOnSigterm(), cb.InputGrid(),
                cb.SamplesPerSecond(), cb.HparamsWithMetrics(), cb.CheckpointEveryNSteps(config.checkpoint_every_n_steps),
                cb.PredictionsCSV(config.get("output"), config.get("top_k") or 1),
                cb.RemoveEmptyRun()]
    if config.trainer.get("logger") is not False:
        monitors.append(LearningRateMonitor(logging_interval="epoch"))
    if config.trainer.get("enable_progress_bar") is not False:
        monitors.append(cb.ProgressBar())
    else:  # a log file, a batch job, zoo reproduce: a line every 10 s instead
        monitors.append(cb.ProgressLines())
    return [*monitors, *extra]
