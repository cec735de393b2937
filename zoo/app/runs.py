"""Finding a run's checkpoints again from a new process.

Lightning resolves ``ckpt_path="best"``/``"last"`` only inside the process
that trained; ``zoo test --ckpt_path best`` should find the newest earlier run
of the same model on the same data instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.utilities import rank_zero_info

from zoo_common import atomic_write

LOG_DIR = "lightning_logs"


def _version(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _run_classes(run: Path) -> tuple[str | None, str | None]:
    """The model and data class paths a run was started with, from the config LightningCLI saved."""
    try:
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    return (config.get("model") or {}).get("class_path"), (config.get("data") or {}).get("class_path")


def _same_class(a: str | None, b: str | None) -> bool:
    # "zoo.LeNet" and "zoo.lenet.LeNet" name the same class
    return a is None or b is None or a.rsplit(".", 1)[-1] == b.rsplit(".", 1)[-1]


def find_checkpoint(
    which: str, root: str | Path = ".", model: str | None = None, data: str | None = None
) -> Path | None:
    """The newest ``<root>/lightning_logs/version_N/checkpoints/<which>.ckpt`` of a run of this model and data."""
    runs = sorted((Path(root) / LOG_DIR).glob("version_*"), key=_version, reverse=True)
    for run in runs:
        ckpt = run / "checkpoints" / f"{which}.ckpt"
        if not ckpt.is_file():
            continue
        run_model, run_data = _run_classes(run)
        if _same_class(model, run_model) and _same_class(data, run_data):
            return ckpt
    return None


def read_hparams(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and the DataModule's saved hyperparameters (each with ``_class_path`` when saved by the CLI)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return dict(ckpt.get("hyper_parameters") or {}), dict(ckpt.get("datamodule_hyper_parameters") or {})


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

