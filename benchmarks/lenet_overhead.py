"""End to end: ``zoo fit`` of LeNet on Fashion-MNIST vs a plain PyTorch loop, examples per second.

    python benchmarks/lenet_overhead.py --root ../shared/datasets

Both train the same LeNet (``configs/lenet_fashion_mnist.yaml``: batch 256,
SGD lr 0.9) for one epoch over the same 55,000 training images. The plain loop
holds the images as one float tensor and does randperm, slice, forward,
cross-entropy, backward, step; ``zoo fit`` does everything it always does
(uint8 batches converted on the device, torchmetrics accuracy and loss,
logging, progress bar, checkpointing; validation is run but not timed).
Measurements alternate between the two; the medians are compared. A last run
with Lightning's ``SimpleProfiler`` tells how much of the training time was
spent waiting for the next batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import machine, write_section  # noqa: E402
from zoo.cli import cli_main  # noqa: E402
from zoo.training.callbacks import SamplesPerSecond  # noqa: E402

CONFIG = str(REPO / "configs" / "lenet_fashion_mnist.yaml")


def zoo_fit(root: str, profiler: str | None = None):
    extra = ["--trainer.profiler", profiler] if profiler else []
    cli = cli_main(["-c", CONFIG, "--data.root", root, "--trainer.max_epochs", "1", *extra], run=False)
    meter = next(cb for cb in cli.trainer.callbacks if isinstance(cb, SamplesPerSecond))  # every zoo run has one
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return meter.per_second, cli


def plain_loop(images: torch.Tensor, labels: torch.Tensor, batch_size: int, lr: float) -> float:
    from zoo import LeNet

    torch.manual_seed(0)
    net = LeNet().net
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    order = torch.randperm(len(labels))
    start = time.perf_counter()
    for i in range(0, len(labels), batch_size):
        idx = order[i : i + batch_size]
        loss = F.cross_entropy(net(images[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return len(labels) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/datasets", help="folder holding FashionMNIST/raw/")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    ours, plain = [], []
    for _ in range(args.repeats):
        rate, cli = zoo_fit(args.root)
        ours.append(rate)
        images, labels = cli.datamodule.train_set
        images = images.float() / 255  # the plain loop gets its floats for free
        plain.append(plain_loop(images, labels, cli.datamodule.batch_size, 0.9))
        print(f"zoo fit {ours[-1]:.0f}/s, plain loop {plain[-1]:.0f}/s", flush=True)
    o, p = statistics.median(ours), statistics.median(plain)
    # the machine's speed drifts between measurements; each pair ran back to back
    ratio = statistics.median(a / b for a, b in zip(ours, plain))

    _, cli = zoo_fit(args.root, profiler="simple")
    durations = cli.trainer.profiler.recorded_durations
    waiting = sum(durations["[_TrainingEpochLoop].train_dataloader_next"])
    total = sum(durations["run_training_epoch"])
    stepping = sum(durations["run_training_batch"])
    print(f"ratio {ratio:.2f}; waiting for batches {waiting:.2f}s of {total:.2f}s", flush=True)

    body = "\n".join([
        "## End to end: `zoo fit` LeNet vs a plain PyTorch loop", "",
        f"`python benchmarks/lenet_overhead.py --root {args.root}`", "",
        f"Machine: {machine()}. LeNet on real Fashion-MNIST (55,000 training images), batch 256, SGD lr 0.9, one "
        f"epoch per measurement, {args.repeats} alternating pairs; the table gives the medians.", "",
        "| training | examples/s |", "| --- | --- |",
        f"| plain PyTorch loop over an in-memory float tensor | {p:.0f} |",
        f"| `zoo fit -c configs/lenet_fashion_mnist.yaml` (metrics, logging, progress bar, checkpoints) | {o:.0f} |",
        "", f"Ratio (median of the {args.repeats} back-to-back pairs: "
        f"{', '.join(f'{a / b:.2f}' for a, b in zip(ours, plain))}): `zoo fit` runs at **{ratio:.2f}x** the plain "
        "loop's examples per second.", "",
        f"Profile (`--trainer.profiler simple`, one epoch): {waiting:.2f} s of the {total:.2f} s training epoch "
        f"({100 * waiting / total:.1f}%) were spent fetching the next batch; {stepping:.2f} s "
        f"({100 * stepping / total:.1f}%) in the training steps themselves.",
    ])
    write_section("lenet_overhead", body)


if __name__ == "__main__":
    main()
