"""Every callback the zoo adds to a run, one file per concern:

- ``monitoring``: what a run shows (where it is kept, the input grid, speed, the HPARAMS row, the progress bar);
- ``reliability``: losing nothing (a non-finite loss, SIGTERM, a checkpoint every N steps);
- ``predictions``: ``zoo predict``'s CSV;
- ``runs``: the run folder (its ``config.yaml``, no empty folder left behind).

A command that needs one of its own (``zoo tune``'s trial reporter) keeps it beside the command.
"""

from zoo.callbacks.monitoring import (
    DEVICE_LINES,
    AnnounceRun,
    HparamsWithMetrics,
    InputGrid,
    ProgressBar,
    ProgressLines,
    SamplesPerSecond,
    ShowDeviceLines,
)
from zoo.callbacks.predictions import PredictionsCSV
from zoo.callbacks.reliability import (
    CheckpointEveryNSteps,
    CheckpointOnSigterm,
    StopOnNonFiniteLoss,
)
from zoo.callbacks.runs import RemoveEmptyRun, SaveRunConfig

__all__ = ["DEVICE_LINES", "AnnounceRun", "CheckpointEveryNSteps", "CheckpointOnSigterm", "HparamsWithMetrics",
           "InputGrid", "PredictionsCSV", "ProgressBar", "ProgressLines", "RemoveEmptyRun", "SamplesPerSecond", "SaveRunConfig",
           "ShowDeviceLines", "StopOnNonFiniteLoss"]
