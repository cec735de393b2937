"""Kill a run at several points, resume it with ``--ckpt_path last``, and compare it with an uninterrupted run.

    python benchmarks/resume_exactness.py

Writes the ``resume_exactness`` section of benchmarks/RESULTS.md. The runs are those of
``tests/helpers/resume_runs.py``: MnistCNN (with dropout) on CIFAR-10-shaped data in the real format, every
augmentation on, momentum SGD, 2 epochs, 1 process and 2 DDP processes (gloo, configs/trainer/ddp_cpu.yaml).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import machine, write_section  # noqa: E402
from tests.helpers.resume_runs import (  # noqa: E402
    KillPoint,
    killed_and_resumed,
    prepare,
    reference_run,
)

# (processes, every N steps, kill points); 12 steps an epoch on 1 process, 6 on each of 2
PLAN = [
    (1, 5, [
        KillPoint("mid-epoch, 2 steps after a step checkpoint (step 5)", "train_batch_start", step=7),
        KillPoint("right after a step checkpoint was written (step 10)", "train_batch_start", step=10),
        KillPoint("during validation of epoch 0 (last checkpoint: step 10)", "validation_batch_start", step=12),
        KillPoint("at the end of epoch 0, before its checkpoint (last: step 10)", "train_epoch_end", epoch=0),
        KillPoint("right after the epoch-end checkpoint of epoch 0 (step 12)", "train_batch_start", step=12),
        KillPoint("mid-epoch in epoch 1 (last checkpoint: step 20)", "train_batch_start", step=22),
    ]),
    (2, 4, [
        KillPoint("mid-epoch, a step after a step checkpoint (step 4)", "train_batch_start", step=5),
        KillPoint("during validation of epoch 0 (last checkpoint: step 4)", "validation_batch_start", step=6),
        KillPoint("right after the epoch-end checkpoint of epoch 0 (step 6)", "train_batch_start", step=6),
        KillPoint("mid-epoch in epoch 1, right after a step checkpoint (step 8)", "train_batch_start", step=8),
    ]),
]


def yes(flag: bool) -> str:
    return "equal" if flag else "**differs**"


def main() -> None:
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = prepare(tmp)
        for processes, every, kills in PLAN:
            reference = reference_run(data, tmp / f"reference{processes}", processes, every)
            for i, kill in enumerate(kills):
                outcome = killed_and_resumed(data, tmp / f"run{processes}_{i}", reference, processes, every, kill)
                rows.append(f"| {processes} | {kill.name} | {outcome.killed_at_step} | {yes(outcome.weights)} | "
                            f"{yes(outcome.optimizer)} | {yes(outcome.metrics)} |")
                print(rows[-1], outcome.detail, flush=True)
    body = "\n".join([
        "## Kill and resume: bit for bit",
        "",
        "`python benchmarks/resume_exactness.py`",
        "",
        f"Machine: {machine()}. Each run is killed with SIGKILL (every process at once) at the point named, "
        "then resumed with `zoo fit ... --ckpt_path last`, and compared with one uninterrupted run of the same "
        "command: MnistCNN (dropout) on CIFAR-10-shaped data (120 images in the real pickle format; random "
        "crop, flip and all four colour jitters on), momentum SGD, 2 epochs, `last.ckpt` also every N steps. "
        "Equal means identical bits: every weight and BatchNorm buffer, every optimizer tensor (momentum "
        "buffers), and every value logged (per-step loss, epoch loss and accuracy, validation metrics and "
        "sample counts), whether the killed or the resumed process logged it.",
        "",
        "| processes | killed | resumed from step | weights | optimizer | logged metrics |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Total time {time.time() - start:.0f} s.",
    ])
    write_section("resume_exactness", body)


if __name__ == "__main__":
    main()
