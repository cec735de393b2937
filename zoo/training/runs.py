"""A run's folder and checkpoints as the training core lays them out: ``lightning_logs/<Model>-<Data>/version_N``
holding ``checkpoints/`` and ``config.yaml``; a checkpoint's saved options, read without loading its tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

LOG_DIR = "lightning_logs"


def run_folder(ckpt: str | Path) -> Path | None:
    """The run a checkpoint belongs to (``.../<name>/version_N`` holding ``checkpoints/`` and ``config.yaml``),
    or None for a checkpoint kept anywhere else."""
    ckpt = Path(ckpt).resolve()
    run = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run / "config.yaml").is_file():
        return run
    return None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents for a look before the run: memory-mapped, so its tensors are not read (a resumed
    fit looks three times: the saved options, whether it has finished, the step its logger resumes at)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def read_hparams(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and the DataModule's saved hyperparameters (each with ``_class_path`` when saved by the CLI)."""
    ckpt = read_checkpoint(path)
    return dict(ckpt.get("hyper_parameters") or {}), dict(ckpt.get("datamodule_hyper_parameters") or {})
