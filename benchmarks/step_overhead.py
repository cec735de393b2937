"""What a training step costs besides the arithmetic: `zoo fit` against Lightning bare and a plain loop.

    python benchmarks/step_overhead.py --root ../shared/datasets

Softmax regression on Fashion-MNIST in batches of 16, one thread: the model's
own work is a few tens of microseconds, so what each program adds to a step
shows. Three programs, each a process of its own, timed from its 200th to its
last training step (no validation, no start-up):

- plain: a loop over index slices of the uint8 images (converted per batch,
  as the zoo does), SGD, nothing else;
- Lightning: a bare ``LightningModule`` (the same network, only the loss) in
  ``Trainer`` with no logger, checkpoint, progress bar or summary;
- zoo: ``zoo fit -c configs/softmax_fashion_mnist.yaml`` with every default on
  (metrics, TensorBoard, checkpoints, the zoo's callbacks, the progress bar
  under a pseudo-terminal), its validation turned off.

Rounds alternate the order of the programs; the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402
from benchmarks.step_clock import SKIP  # noqa: E402

BATCH = 16


def data(root: str):
    import datamodules

    dm = datamodules.FashionMNIST(root=root, batch_size=BATCH)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def plain(root: str, steps: int) -> float:
    import torch
    import torch.nn.functional as F

    import zoo

    images, labels = data(root).train_set
    net = zoo.SoftmaxRegression().net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    order = torch.randperm(len(labels))
    for step in range(steps):
        if step == SKIP:
            start = time.perf_counter()
        idx = order[step * BATCH:(step + 1) * BATCH]
        loss = F.cross_entropy(net(images[idx].float().div_(255)), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / (steps - SKIP) * 1e6


def lightning_bare(root: str, steps: int) -> float:
    import lightning as L
    import torch
    import torch.nn.functional as F

    import zoo

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = zoo.SoftmaxRegression().net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    from benchmarks.step_clock import StepClock

    clock = StepClock()
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock],
                        accelerator="cpu", devices=1)
    trainer.fit(Bare(), data(root))
    return -1.0  # printed by the clock


def child(which: str, root: str, steps: int) -> None:
    import torch

    torch.set_num_threads(1)
    us = {"plain": plain, "lightning": lightning_bare}[which](root, steps)
    if us >= 0:
        print(json.dumps({"us_per_step": us}), flush=True)


def run(cmd: list[str], cwd: str, terminal: bool) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    if terminal:  # the zoo's progress bar draws as in a terminal
        from benchmarks.epoch_time import run_in_terminal

        out = Path(cwd) / "clock.txt"
        run_in_terminal([*cmd, "--trainer.callbacks+=benchmarks.step_clock.StepClock"],
                        Path(cwd), env=env, keep=out)
        text = out.read_text(errors="replace")
    else:
        text = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    found = re.findall(r'\{"us_per_step": [0-9.e+-]+\}', text)
    if not found:
        raise SystemExit(f"{' '.join(cmd)}: no timing in its output:\n{text[-2000:]}")
    return json.loads(found[-1])["us_per_step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(p)
    p.add_argument("--root", default="../shared/datasets", help="folder holding FashionMNIST/raw/")
    p.add_argument("--steps", type=int, default=2200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--child", choices=("plain", "lightning"), help=argparse.SUPPRESS)
    args = p.parse_args()
    root = str(Path(args.root).resolve())
    if args.child:
        return child(args.child, root, args.steps)

    me = [sys.executable, str(Path(__file__).resolve()), "--root", root, "--steps", str(args.steps)]
    programs = {
        "plain": lambda cwd: run([*me, "--child", "plain"], cwd, False),
        "Lightning": lambda cwd: run([*me, "--child", "lightning"], cwd, False),
        "zoo fit": lambda cwd: run([sys.executable, "-m", "zoo.cli", "fit", "-c", str(REPO / "configs/softmax_fashion_mnist.yaml"),
                                    "-c", str(REPO / "configs/trainer/cpu.yaml"), "--data.root", root,
                                    "--data.batch_size", str(BATCH), "--trainer.max_steps", str(args.steps),
                                    "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"], cwd, True),
    }
    times: dict[str, list[float]] = {name: [] for name in programs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            names = list(programs) if r % 2 == 0 else list(programs)[::-1]
            for name in names:
                times[name].append(programs[name](tmp))
            print(f"round {r}: " + ", ".join(f"{n} {times[n][-1]:.0f} us" for n in programs), flush=True)
    med = {n: statistics.median(v) for n, v in times.items()}
    cmd = f"python benchmarks/step_overhead.py --root {args.root}" + (f" --rounds {args.rounds}" if args.rounds != 5 else "")
    body = "\n".join([
        "## A training step besides the arithmetic: `zoo fit` vs Lightning bare vs a plain loop", "",
        f"`{cmd}`", "",
        f"Machine: {machine()}, one thread. Softmax regression on Fashion-MNIST, batches of {BATCH} (the arithmetic "
        f"is a few tens of microseconds, so the programs' own costs show); microseconds per step from step {SKIP} "
        f"to {args.steps}, each program a process of its own, {args.rounds} rounds in alternating order, median.", "",
        "| program | us per step (median) | rounds |",
        "| --- | --- | --- |",
        *[f"| {n} | {med[n]:.0f} | {', '.join(f'{t:.0f}' for t in times[n])} |" for n in programs],
        "",
        f"`zoo fit` adds {med['zoo fit'] - med['Lightning']:.0f} us per step to Lightning's own "
        f"{med['Lightning'] - med['plain']:.0f} us.",
    ])
    write_section("step_overhead", body)


if __name__ == "__main__":
    main()
