"""Whole epochs in one process: `zoo fit`'s loop and a plain loop taking turns on the same network.

    python benchmarks/epoch_same_process.py --root ../shared/datasets [--rounds 6]

What whole-process timings cannot separate on a shared machine: one `zoo fit`
of LeNet (the book's config, logger, checkpoints, progress bar and summary
off, built by the zoo's own command line) in which, at the start of each
epoch, a callback first runs one epoch of the plain loop of
``benchmarks/plain_loop.py`` (float images in memory, index slices,
validation in batches under ``inference_mode``) on the very same network and
data, in the memory layout the zoo trains it in. The zoo's epoch is timed
from the end of that plain epoch to the start of the next epoch (training,
validation, every epoch-end hook). Same process,
same weights, same memory: what differs is the loop alone. The ratio is
plain / zoo per epoch (above 1: the zoo faster), and its median; each epoch is
also split into training and validation, and the median training step of
each (the zoo's from batch start to batch end, its data fetch excluded) is given.
``--plain-layout usual`` gives the plain loop a copy of the network in the
usual layout instead: the zoo, channels-last, against ``benchmarks/plain_loop.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(p)
    p.add_argument("--root", default="../shared/datasets", help="folder holding FashionMNIST/raw/")
    p.add_argument("--rounds", type=int, default=6, help="epochs, each one plain and one zoo")
    p.add_argument("--plain-layout", choices=["zoo", "usual"], default="zoo",
                   help="zoo: the plain loop trains the zoo's own network, in its layout; usual: a copy of it in the "
                        "usual (NCHW) layout, as benchmarks/plain_loop.py without --channels-last")
    args = p.parse_args()
    import tempfile

    import torch
    import torch.nn.functional as F

    from zoo.commands.lightning import cli_main

    work = tempfile.mkdtemp(prefix="epoch_same_process_")
    argv, sys.argv = sys.argv, ["zoo"]
    run = cli_main(["-c", str(REPO / "configs/lenet_fashion_mnist.yaml"), "-c", str(REPO / "configs/trainer/cpu.yaml"),
                    "--data.root", str(Path(args.root).resolve()), "--trainer.logger", "false",
                    "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
                    "--trainer.enable_model_summary", "false", "--trainer.num_sanity_val_steps", "0",
                    "--trainer.default_root_dir", work], run=False)
    sys.argv = argv
    model, dm = run.model, run.datamodule
    dm.prepare_data()
    dm.setup("fit")
    net = model.net
    if args.plain_layout == "usual":  # a copy of the same initial weights, kept in the usual layout
        import copy

        net = copy.deepcopy(net)
    (x_train, y_train), (x_val, y_val) = dm.train_set, dm.val_set
    x_train, x_val = x_train.float().div_(255), x_val.float().div_(255)  # the plain loop converts once
    if model.uses_channels_last and args.plain_layout == "zoo":  # the network's own layout (set at the fit's setup), for the plain loop's batches too
        x_train, x_val = (t.contiguous(memory_format=torch.channels_last) for t in (x_train, x_val))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.9)
    batch = dm.batch_size

    steps: dict[str, list[float]] = {"zoo": [], "plain": []}
    parts: dict[str, list[float]] = {"zoo_train": [], "plain_train": [], "zoo_val": [], "plain_val": []}

    def plain_epoch() -> None:
        net.train()
        start = time.perf_counter()
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), batch):
            step = time.perf_counter()
            idx = order[i:i + batch]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps["plain"].append(time.perf_counter() - step)
        validation = time.perf_counter()
        parts["plain_train"].append(validation - start)
        net.eval()
        total, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        with torch.inference_mode():
            for i in range(0, len(y_val), batch):
                logits = net(x_val[i:i + batch])
                total.add_(F.cross_entropy(logits, y_val[i:i + batch], reduction="sum"))
                correct.add_((logits.argmax(1) == y_val[i:i + batch]).sum())
        total.item(), correct.item()
        parts["plain_val"].append(time.perf_counter() - validation)

    import lightning as L

    rows: list[tuple[float, float]] = []

    class Turns(L.Callback):
        """At each epoch's start: the plain epoch first (timed), then the zoo's epoch runs (timed to the next)."""

        started = None

        def _zoo_epoch_done(self) -> None:
            if self.started is not None:
                rows[-1] = (time.perf_counter() - self.started, rows[-1][1])
                z, p_ = rows[-1]
                print(f"epoch {len(rows) - 1}: zoo {z:.2f} s, plain {p_:.2f} s, ratio {p_ / z:.2f}", flush=True)

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._zoo_epoch_done()
            start = time.perf_counter()
            plain_epoch()
            rows.append((0.0, time.perf_counter() - start))
            net.train()
            self.started = time.perf_counter()

        def on_train_end(self, trainer, pl_module) -> None:
            self._zoo_epoch_done()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
            self.step = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
            steps["zoo"].append(time.perf_counter() - self.step)

        def on_validation_start(self, trainer, pl_module) -> None:
            self.validation = time.perf_counter()
            parts["zoo_train"].append(self.validation - self.started)

        def on_validation_end(self, trainer, pl_module) -> None:
            parts["zoo_val"].append(time.perf_counter() - self.validation)

    run.trainer.callbacks.append(Turns())
    run.trainer.fit_loop.max_epochs = args.rounds
    run.trainer.fit(model, dm)
    ratios = [p_ / z for z, p_ in rows]
    cmd = f"python benchmarks/epoch_same_process.py --root {args.root}" + (
        f" --rounds {args.rounds}" if args.rounds != 6 else "") + (
        " --plain-layout usual" if args.plain_layout == "usual" else "")
    body = "\n".join([
        "## Whole epochs in one process: the zoo's loop and a plain loop on the same network", "",
        f"`{cmd}`", "",
        f"Machine: {machine()}. LeNet, the book's config (batch 256, SGD 0.9), built by the zoo's command line with "
        "logger, checkpoints, progress bar and summary off, one `fit` of as many epochs as rounds; at each epoch's "
        "start a callback runs one epoch of the plain loop (training and validation) on "
        + ("a copy of the same network in the usual (NCHW) layout while the zoo trains its own in channels-last"
           if args.plain_layout == "usual" else "the same network and data, in the zoo's layout")
        + ", then the zoo's epoch runs, timed to the next epoch's start (training, validation, epoch-end hooks).", "",
        "| round | zoo epoch (s) | plain epoch (s) | ratio (plain / zoo) |",
        "| --- | --- | --- | --- |",
        *[f"| {i} | {z:.2f} | {p_:.2f} | {p_ / z:.2f} |" for i, (z, p_) in enumerate(rows)],
        "",
        f"Median ratio: **{statistics.median(ratios):.2f}**.", "",
        "| part (median over rounds) | zoo | plain | ratio (plain / zoo) |",
        "| --- | --- | --- | --- |",
        *[f"| {part} (s) | {statistics.median(parts['zoo_' + part]):.2f} | {statistics.median(parts['plain_' + part]):.2f} "
          f"| {statistics.median(parts['plain_' + part]) / statistics.median(parts['zoo_' + part]):.2f} |"
          for part in ("train", "val")],
        f"| training step (ms) | {statistics.median(steps['zoo']) * 1e3:.1f} | {statistics.median(steps['plain']) * 1e3:.1f} "
        f"| {statistics.median(steps['plain']) / statistics.median(steps['zoo']):.2f} |",
    ])
    write_section("epoch_same_process" + ("_usual" if args.plain_layout == "usual" else ""), body)


if __name__ == "__main__":
    main()
