"""The zoo's own work in each training step besides the model: epoch metrics and the non-finite loss guard.

    python benchmarks/step_bookkeeping.py

Before: torchmetrics' ``MeanMetric.update(loss, weight=n)`` (the weight copied to
the device, two NaN ``.any()`` tests) and ``math.isfinite(loss.item())``; on a
GPU each of these four waits for the step to finish. Now: ``WeightedMean`` (sums
on the device) and ``StopOnNonFiniteLoss`` (losses kept, checked together every
``log_every_n_steps`` steps). Timed on the CPU, one thread, best of 7 runs of
2,000 steps each; on a CPU there is no device to wait for, so this is the
Python and kernel-launch cost alone.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torchmetrics import MeanMetric

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import machine, write_section  # noqa: E402
from zoo.callbacks import StopOnNonFiniteLoss  # noqa: E402
from zoo.training.metrics import WeightedMean  # noqa: E402

STEPS, RUNS, BATCH = 2000, 7, 256


def before():
    mean, loss = MeanMetric(), torch.tensor(2.3)

    def step(i: int) -> None:
        mean.update(loss.detach(), weight=BATCH)
        math.isfinite(loss.detach().float().item())

    return step


def after():
    mean, guard, loss = WeightedMean(), StopOnNonFiniteLoss(), torch.tensor(2.3)
    trainer = SimpleNamespace(global_step=0, current_epoch=0, log_every_n_steps=50)

    def step(i: int) -> None:
        mean.update(loss, BATCH)
        trainer.global_step = i
        guard.on_train_batch_end(trainer, None, {"loss": loss}, None, i)

    return step


def main() -> None:
    torch.set_num_threads(1)
    best = {}
    for _ in range(RUNS):
        for name, make in (("before", before), ("after", after)):
            step = make()
            start = time.perf_counter()
            for i in range(STEPS):
                step(i)
            best[name] = min(best.get(name, math.inf), (time.perf_counter() - start) / STEPS * 1e6)
    body = "\n".join([
        "## Per-step bookkeeping: epoch loss and the non-finite loss guard", "",
        "`python benchmarks/step_bookkeeping.py`", "",
        f"Machine: {machine()}. One thread, best of {RUNS} runs of {STEPS} steps (batch {BATCH}).", "",
        "| bookkeeping per training step | host-device waits per step on a GPU | CPU time per step (us) |",
        "| --- | --- | --- |",
        f"| before: `MeanMetric.update(loss, weight=n)` + `loss.item()` finite test | 4 | {best['before']:.0f} |",
        f"| now: `WeightedMean.update(loss, n)` + `StopOnNonFiniteLoss` (checked every 50 steps) | 0 (1 per 50 steps) "
        f"| {best['after']:.0f} |",
    ])
    write_section("step_bookkeeping", body)
    print({k: f"{v:.0f} us" for k, v in best.items()})


if __name__ == "__main__":
    main()
