"""Runs of the ``zoo`` command killed at a chosen point and resumed, compared with an uninterrupted run.

Used by tests/test_resume.py and benchmarks/resume_exactness.py. Every run trains a small CNN with dropout
(MnistCNN) with momentum SGD on CIFAR-10-shaped data in the real file format, with augmentation on, and
logs every value at once to ``lightning_logs/metrics.jsonl`` (``tests.helpers.fakes.RecordingLogger``), so a kill
loses no logged value.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from tests.helpers import REPO
from tests.helpers.fakes import write_fake_cifar

ENV = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
DDP_CPU = str(REPO / "configs" / "trainer" / "ddp_cpu.yaml")
# values that measure the machine, not the run
UNTIMED = ("train/samples_per_sec",)


@dataclass(frozen=True)
class KillPoint:
    name: str
    hook: str
    step: int = 0
    epoch: int = 0


def fit_args(root: Path, processes: int, every: int, epochs: int = 2) -> list[str]:
    ddp = ["-c", DDP_CPU] if processes == 2 else ["--trainer.devices", "1"]
    return [*ddp, "--model", "MnistCNN", "--data", "tests.helpers.fakes.FakeCIFAR10", "--data.root", str(root),
            "--data.val_size", "24", "--data.batch_size", "8", "--data.crop_padding", "4", "--data.hflip", "0.5",
            "--data.brightness", "0.3", "--data.contrast", "0.3", "--data.saturation", "0.3", "--data.hue", "0.1",
            "--optimizer.lr", "0.05", "--optimizer.momentum", "0.9", "--trainer.max_epochs", str(epochs),
            "--checkpoint_every_n_steps", str(every), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1"]


def _config(cwd: Path, kill: KillPoint | None) -> Path:
    trainer: dict = {"logger": {"class_path": "tests.helpers.fakes.RecordingLogger", "init_args": {"save_dir": "."}}}
    if kill is not None:
        trainer["callbacks"] = [{"class_path": "tests.helpers.fakes.KillAt",
                                 "init_args": {"hook": kill.hook, "step": kill.step, "epoch": kill.epoch}}]
    path = cwd / ("kill.yaml" if kill else "run.yaml")
    path.write_text(yaml.safe_dump({"trainer": trainer}))
    return path


def zoo_fit(args: list[str], cwd: Path, kill: KillPoint | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """One ``zoo fit`` in its own process group (a kill takes every rank at once, and nothing else)."""
    cmd = [sys.executable, "-m", "zoo.cli", "fit", "-c", str(_config(cwd, kill)), *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


def logged(cwd: Path) -> list[dict]:
    path = cwd / "lightning_logs" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def final_checkpoint(cwd: Path) -> dict:
    paths = list(cwd.glob("**/last.ckpt"))
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    return max(states, key=lambda s: s["global_step"])


@dataclass
class Outcome:
    killed_at_step: int  # the step of the checkpoint the run resumed from
    weights: bool
    optimizer: bool
    metrics: bool
    detail: str = ""


def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def compare(reference: Path, run: Path) -> tuple[bool, bool, bool, str]:
    """(weights equal, optimizer state equal, logged values equal) of two finished runs, bit for bit."""
    ref, got = final_checkpoint(reference), final_checkpoint(run)
    weights = ref["global_step"] == got["global_step"] and _same_tensors(ref["state_dict"], got["state_dict"])
    optimizer = _same_tensors(ref["optimizer_states"], got["optimizer_states"])
    # every value the reference logged was logged by the killed or the resumed run, with the same bits;
    # a value logged twice (before the kill and again after the resume) has the same bits both times
    expected = {(k, r["step"]): v for r in logged(reference) for k, v in r.items() if k != "step" and k not in UNTIMED}
    seen: dict = {}
    wrong = []
    for r in logged(run):
        for k, v in r.items():
            if k == "step" or k in UNTIMED:
                continue
            seen[(k, r["step"])] = v
            if expected.get((k, r["step"])) != v:
                wrong.append(f"{k}@{r['step']}: {v!r} != {expected.get((k, r['step']))!r}")
    missing = sorted(set(expected) - set(seen))
    detail = "; ".join(wrong[:5] + [f"never logged: {missing[:5]}"] * bool(missing))
    return weights, optimizer, not wrong and not missing, detail


def prepare(tmp: Path) -> Path:
    return write_fake_cifar(tmp / "data")


def reference_run(root: Path, folder: Path, processes: int, every: int) -> Path:
    folder.mkdir(parents=True)
    out = zoo_fit(fit_args(root, processes, every), folder)
    assert out.returncode == 0, out.stderr[-4000:]
    return folder


def killed_and_resumed(root: Path, folder: Path, reference: Path, processes: int, every: int,
                       kill: KillPoint) -> Outcome:
    folder.mkdir(parents=True)
    args = fit_args(root, processes, every)
    out = zoo_fit(args, folder, kill)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-4000:])
    resumed_from = final_checkpoint(folder)["global_step"]
    out = zoo_fit([*args, "--ckpt_path", "last"], folder)
    assert out.returncode == 0, out.stderr[-4000:]
    weights, optimizer, metrics, detail = compare(reference, folder)
    return Outcome(resumed_from, weights, optimizer, metrics, detail)
