"""Inside a trial's ``zoo fit``: the monitored metric reported to the study each epoch, the pruner's answer
shared by every process of a DDP trial, and the run's outcome handed back to the worker that started it.

The worker passes the trial in the environment (``ZOO_TUNE``), which DDP's processes inherit; only rank 0
talks to the study, and every rank stops at the same epoch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L

from zoo_common import atomic_write_text

ENV = "ZOO_TUNE"


def current() -> dict | None:
    """The trial this process trains for (None outside ``zoo tune``)."""
    raw = os.environ.get(ENV)
    return json.loads(raw) if raw else None


class ReportToStudy(L.Callback):
    #: the run's HPARAMS row says whether the pruner stopped it (read by ``HparamsWithMetrics``)
    hparams_metrics = ("hp/pruned",)

    def __init__(self, trial: dict) -> None:
        self.spec = trial
        self.trial = None
        self.values: list[float] = []
        self.pruned_at: int | None = None
        self.started = 0.0  # on_train_start

    def hparams_row(self) -> dict:
        """The trial's number and sampled values: its row in TensorBoard's HPARAMS view, beside the other trials."""
        values = self.spec["values"]
        return {"Trial": self.spec["number"], **{option: value if isinstance(value, (int, float, str)) else json.dumps(value)
                                                 for option, value in values.items()}}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.global_rank != 0:
            return
        import optuna

        from zoo.commands.tune.storage import open_storage
        from zoo.commands.tune.study import make_pruner

        storage = open_storage(self.spec["storage"], create=False)
        study = optuna.load_study(study_name=self.spec["study"], storage=storage,
                                  pruner=make_pruner(self.spec["pruner"]))
        self.trial = optuna.Trial(study, self.spec["trial_id"])

    def progress(self, trainer: L.Trainer, value: float) -> None:
        """One line per epoch on the worker's own output (the run's goes to the trial's log): the trial moves."""
        fd = self.spec.get("progress_fd")
        if fd is None:
            return
        of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        line = (f"  trial {self.spec['number']}, epoch {trainer.current_epoch + 1}{of}: {self.spec['metric']} "
                f"{value:.4f} ({time.monotonic() - self.started:.0f} s)\n")
        try:
            os.write(fd, line.encode())
        except OSError:  # the worker's output is gone (a closed pipe): the study still gets the value
            pass

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        prune = False
        if trainer.global_rank == 0 and self.trial is not None:
            value = trainer.callback_metrics.get(self.spec["metric"])
            if value is not None:
                self.values.append(float(value))
                self.trial.report(float(value), step=trainer.current_epoch)
                prune = self.trial.should_prune()
                self.progress(trainer, float(value))
        if trainer.world_size > 1:  # the pruner's answer, the same in every process
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True
            if trainer.global_rank == 0:
                print(f"Pruned after epoch {trainer.current_epoch + 1}: {self.spec['metric']} {self.values[-1]:.4g} "
                      "is behind the other trials at this epoch", flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if trainer.global_rank != 0:
            return
        for logger in trainer.loggers:  # the run's row in HPARAMS says whether the trial was pruned
            logger.log_metrics({"hp/pruned": float(self.pruned_at is not None)}, trainer.global_step)
        config = Path(log_dir or "", "config.yaml")
        outcome = {"values": self.values, "pruned": self.pruned_at is not None, "epochs": trainer.current_epoch,
                   "run": log_dir, "config": config.read_text() if config.is_file() else None,
                   "world_size": trainer.world_size}
        if log_dir:  # the run says which trial of which study it was, and how it ended
            atomic_write_text(Path(log_dir, "trial.json"), json.dumps(
                {"study": self.spec["study"], "trial": self.spec["number"], "values": self.spec["values"],
                 "state": "PRUNED" if outcome["pruned"] else "COMPLETE", "epochs": outcome["epochs"]}, indent=1))
        atomic_write_text(Path(self.spec["outcome"]), json.dumps(outcome))
