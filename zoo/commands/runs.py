"""Runs: their folders, finding their checkpoints again from a new process, their metrics JSON.

Lightning resolves ``ckpt_path="best"``/``"last"`` only inside the process
that trained; ``zoo test --ckpt_path best`` should find the newest earlier run
of the same model on the same data instead.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from zoo.training.runs import LOG_DIR, read_checkpoint, run_folder
from zoo_common import atomic_write, class_name, owner_alive

#: the run folder that ``zoo fit --ckpt_path last`` starts again in (a start killed before its first checkpoint)
RESTART: Path | None = None


def _runs(root: str | Path) -> list[Path]:
    """Every run under ``<root>/lightning_logs``: ``<Model>-<Data>/version_N``, and the older ``version_N``."""
    logs = Path(root) / LOG_DIR
    return [run for run in (*logs.glob("*/version_*"), *logs.glob("version_*")) if (run / "checkpoints").is_dir()]


def _last_written(run: Path) -> int:
    return max((f.stat().st_mtime_ns for f in (run / "checkpoints").iterdir()), default=0)


def run_config(run: Path) -> dict:
    """The config LightningCLI saved for a run (empty where it cannot be read)."""
    try:
        return yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _run_classes(run: Path) -> tuple[str | None, str | None]:
    """The model and data class paths a run was started with, from the config LightningCLI saved."""
    config = run_config(run)
    return (config.get("model") or {}).get("class_path"), (config.get("data") or {}).get("class_path")


def _same_class(a: str | None, b: str | None) -> bool:
    # "zoo.LeNet" and "zoo.lenet.LeNet" name the same class
    return a is None or b is None or class_name(a) == class_name(b)


def runs_with(
    which: str, root: str | Path = ".", model: str | None = None, data: str | None = None
) -> Iterator[Path]:
    """The runs of this model and data under ``<root>/lightning_logs`` that hold ``<which>.ckpt``, the one that
    wrote a checkpoint last first; lazily, so that the first costs one config read."""
    for run in sorted(_runs(root), key=_last_written, reverse=True):
        if not (run / "checkpoints" / f"{which}.ckpt").is_file():
            continue
        run_model, run_data = _run_classes(run)
        if _same_class(model, run_model) and _same_class(data, run_data):
            yield run


def find_checkpoint(
    which: str, root: str | Path = ".", model: str | None = None, data: str | None = None
) -> Path | None:
    """``<which>.ckpt`` of the run of this model and data under ``<root>/lightning_logs`` that wrote a checkpoint last."""
    run = next(runs_with(which, root, model, data), None)
    return None if run is None else run / "checkpoints" / f"{which}.ckpt"


def claim_version(root: str | Path) -> int:
    """The next free ``version_N`` under ``root``, made with ``mkdir`` (which fails if the folder exists), so
    that runs started at the same moment never share one: whoever loses the race takes the next number."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[8:]) for p in root.glob("version_*") if p.name[8:].isdigit()]
    version = max(taken, default=-1) + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()
            return version
        except FileExistsError:
            version += 1
        except FileNotFoundError:  # a run that left nothing removed the empty parent meanwhile
            root.mkdir(parents=True, exist_ok=True)


OWNER = ".owner"  # host and process id of the command that writes the run


def _own(run: Path) -> None:
    try:
        (run / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    except OSError:
        pass  # the folder's own writes will say what is wrong


def _abandoned(run: Path) -> bool:
    """A run folder whose command died before it wrote a checkpoint: its owner on this host is gone."""
    if any((run / "checkpoints").glob("*.ckpt")):
        return False
    try:
        host, pid = (run / OWNER).read_text().split()
        return not owner_alive(host, int(pid))  # another machine's may be running: not abandoned
    except (OSError, ValueError):
        return False


def find_abandoned(root: str | Path, model: str | None, data: str | None) -> Path | None:
    """The newest run of this model and data that was killed before its first checkpoint: ``--ckpt_path last``
    starts again in it rather than in a new folder."""
    if not model or not data:
        return None
    folder = Path(root) / LOG_DIR / f"{class_name(model)}-{class_name(data)}"
    candidates = [run for run in folder.glob("version_*") if _abandoned(run)]
    return max(candidates, key=lambda run: (run / OWNER).stat().st_mtime, default=None)


class RunLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger with its run folder claimed atomically (Lightning lists the folder and
    takes the next number, which two runs started together both take). Only the process of global rank 0
    claims; the others' folder is never written to (Lightning broadcasts rank 0's ``log_dir``). The folder
    names its owner (host, process), so a run killed before its first checkpoint is known as such."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._version is not None and rank_zero_only.rank == 0 and Path(self.log_dir).is_dir():
            _own(Path(self.log_dir))  # a run taken over: resumed, or started again after a kill

    def _get_next_version(self) -> int:
        if rank_zero_only.rank != 0:
            return super()._get_next_version()
        version = claim_version(self.root_dir)
        _own(Path(self.root_dir) / f"version_{version}")
        return version


class RunFinished(Exception):
    """``zoo fit --ckpt_path`` of a run that has already reached its end: nothing to train (exit status 0)."""


def place_logger(config, subcommand: str | None) -> None:
    """Where the TensorBoard logger writes: into the run a checkpoint belongs to (a resumed or continued
    run, and the evaluation of a run's checkpoint), else into a new ``lightning_logs/<Model>-<Data>/version_N``.

    A resumed run's TensorBoard writer purges what the run logged after its checkpoint (the resumed run
    logs those steps again), so the curves go on without duplicated steps.
    """
    logger = config.trainer.get("logger")
    if not (hasattr(logger, "init_args") and class_name(logger.get("class_path", "")) in ("TensorBoardLogger", "RunLogger")):
        return  # another logger, or none: the user's choice
    args = logger.init_args
    root = config.trainer.get("default_root_dir")
    if root and args.get("save_dir") in (None, os.getcwd()):  # the default: the working directory
        args.save_dir = str(Path(root).absolute())  # --trainer.default_root_dir moves the runs, as in Lightning
    ckpt = config.get("ckpt_path")
    run = run_folder(ckpt) if ckpt else None
    if run is None and subcommand == "fit" and RESTART is not None:
        args.save_dir, args.name, args.version = str(RESTART.parent.parent), RESTART.parent.name, RESTART.name
        for stale in (*RESTART.glob("events.out.tfevents.*"), RESTART / "hparams.yaml"):  # of the killed start
            stale.unlink(missing_ok=True)
        return
    if run is None:
        if args.get("name") == LOG_DIR and config.get("model") and config.get("data"):  # Lightning's default name
            args.save_dir = str(Path(args.save_dir or ".") / LOG_DIR)
            args.name = f"{class_name(config.model.class_path)}-{class_name(config.data.class_path)}"
        return
    args.save_dir, args.name, args.version = str(run.parent.parent), run.parent.name, run.name
    if subcommand == "fit":
        # the first step the resumed run logs (a checkpoint is written after its step's optimizer step)
        args.purge_step = int(read_checkpoint(ckpt).get("global_step", 0))


def check_not_finished(ckpt: str, trainer) -> None:
    """``zoo fit --ckpt_path`` of a run that already trained its ``max_epochs`` (or ``max_steps``) stops here,
    before any folder is made, with how to train longer."""
    checkpoint = read_checkpoint(ckpt)
    epochs = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {}).get("processed")
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps") or -1
    if max_epochs is None and max_steps == -1:
        max_epochs = 1000  # Lightning's default when neither is given (the zoo's is 10)
    steps = checkpoint.get("global_step", 0)
    if max_steps > 0 and steps >= max_steps:
        raise RunFinished(f"{ckpt} has finished: it trained {steps} of --trainer.max_steps {max_steps} steps; "
                          f"to train longer, pass a larger --trainer.max_steps (e.g. {2 * max_steps})")
    if max_epochs is not None and epochs is not None and epochs >= max_epochs:
        raise RunFinished(f"{ckpt} has finished: it trained {epochs} of --trainer.max_epochs {max_epochs} epochs; "
                          f"to train longer, pass a larger --trainer.max_epochs (e.g. {2 * max_epochs})")


def write_metrics(trainer, model, datamodule, stage: str, ckpt_path: str | None) -> None:
    """The metrics as JSON beside the run's logs, for scripts (the table on screen is Lightning's)."""
    folder = Path(trainer.log_dir or ".")  # a collective under DDP: every rank asks
    if trainer.global_rank != 0:
        return
    record = {
        "stage": stage,
        "model": type(model).__name__,
        "data": type(datamodule).__name__,
        "ckpt_path": ckpt_path,
        "world_size": trainer.world_size,
        "metrics": {k: v.item() for k, v in trainer.callback_metrics.items()},
    }
    path = folder / f"{stage}_metrics.json"
    atomic_write(path, lambda out: out.write((json.dumps(record, indent=2) + "\n").encode()))
    rank_zero_info(f"Metrics written to {path}")

