"""``zoo predict``'s output: one CSV row per input, the predicted class's name and probability."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from zoo_common import atomic_write


def write_predictions(path: Path, probs: torch.Tensor, datamodule) -> list[str]:
    """Write ``file`` (or test-set ``index``), ``class``, ``probability`` rows; unreadable files get empty ones.

    Returns the names of the inputs that were predicted.
    """
    best, index = probs.max(dim=1)
    names = list(getattr(datamodule, "classes", ()))
    from_files = bool(getattr(datamodule, "predict_files", None))
    inputs = [str(p) for p in datamodule.predict_files] if from_files else [str(i) for i in range(len(probs))]
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["file" if from_files else "index", "class", "probability"])
    for name, k, p in zip(inputs, index.tolist(), best.tolist()):
        writer.writerow([name, names[k] if k < len(names) else k, f"{p:.6f}"])
    for bad in getattr(datamodule, "predict_errors", {}):
        writer.writerow([str(bad), "", ""])
    atomic_write(path, lambda out: out.write(rows.getvalue().encode()))
    return inputs
