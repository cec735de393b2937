"""What a weights card records, measured: the file, the network's size and cost, the curve, the machine."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import lightning
import torch
from safetensors.torch import save
from torch.utils.flop_counter import FlopCounterMode

import datamodules.registry  # noqa: F401  (registers the DataModules)
import zoo.models  # noqa: F401  (registers the models)
from zoo_common import get_datamodule, get_model

# the data options that make the model's input what it was trained on (those the DataModule has)
CONTRACT = ("normalize", "mean", "std", "resize", "image_size", "crop_size", "channels", "classes")


def weights_bytes(checkpoint: dict, model: str, name: str) -> bytes:
    """The network's tensors from a zoo checkpoint, as a safetensors file (the same bytes for the same tensors).
    One metadata key only: safetensors writes several in a random order, which would change the sha256.
    The model and name are the file's name and the catalogue's."""
    state = {k[len("net."):]: v.contiguous() for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    return save(state, metadata={"format": "pt"})


def data_contract(checkpoint: dict) -> tuple[str, dict, list[str]]:
    """(DataModule name, the input options to evaluate with, the class names) from a zoo checkpoint."""
    hparams = checkpoint["datamodule_hyper_parameters"]
    data = hparams["_class_path"].rsplit(".", 1)[-1]
    contract = {k: hparams[k] for k in CONTRACT if k in hparams and k != "classes"}
    classes = list(hparams.get("classes") or get_datamodule(data).classes)
    if "classes" in hparams:
        contract["classes"] = classes
    return data, contract, classes


def input_shape(data: str, contract: dict) -> tuple[int, int, int]:
    cls = get_datamodule(data)
    size = contract.get("crop_size") or contract.get("resize") or cls.native_size
    return contract.get("channels") or cls.in_channels, size, size


def network(checkpoint: dict) -> torch.nn.Module:
    """The checkpoint's network, built from its hyperparameters, weights loaded."""
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    module = get_model(checkpoint["hyper_parameters"]["_class_path"].rsplit(".", 1)[-1])(**{**hparams, "weights": None})
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    return module.net.eval()


def size_and_cost(net: torch.nn.Module, shape: tuple[int, int, int]) -> tuple[int, int]:
    """(parameters, FLOPs of one image's forward pass, a multiply-add counted as two)."""
    params = sum(p.numel() for p in net.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *shape))
    return params, int(counter.get_total_flops())


def curve_csv(run_dir: Path) -> tuple[str, float, int]:
    """(per-epoch CSV of train/val loss and accuracy, best validation accuracy, its epoch) from the run's events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = ["train/loss", "train/acc", "val/loss", "val/acc"]
    columns = {t: [e.value for e in events.Scalars(t)] for t in tags if t in events.Tags()["scalars"]}
    epochs = len(columns["val/acc"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch", *columns])
    for i in range(epochs):
        writer.writerow([i, *(f"{columns[t][i]:.6f}" for t in columns)])
    best = max(range(epochs), key=lambda i: (columns["val/acc"][i], -i))  # ModelCheckpoint keeps the first best
    return out.getvalue(), round(columns["val/acc"][best], 6), best


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"device": "cpu", "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": f"{platform.system()} {platform.machine()}"}


def versions() -> dict:
    try:
        own = version("d2l-zoo")
    except PackageNotFoundError:
        own = "unknown"
    return {"d2l-zoo": own, "torch": torch.__version__, "lightning": lightning.__version__,
            "python": platform.python_version()}


def measure_test(words: list[str], cwd: Path) -> dict:
    """``zoo test`` with these words in a fresh process and folder; its test metrics (test_metrics.json)."""
    with tempfile.TemporaryDirectory(prefix="zoo-card-") as tmp:
        command = [sys.executable, "-m", "zoo.cli", "test", *words, "--trainer.default_root_dir", tmp,
                   "--trainer.enable_progress_bar", "false"]
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"zoo test {' '.join(words)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        # where the command says it wrote them (a checkpoint of a run is evaluated in that run's folder)
        found = re.findall(r"^Metrics written to (.+test_metrics\.json)$", done.stdout + done.stderr, re.M)
        if not found:
            raise RuntimeError(f"zoo test {' '.join(words)} wrote no test_metrics.json:\n{done.stdout[-2000:]}")
        return json.loads(Path(found[-1]).read_text())["metrics"]
