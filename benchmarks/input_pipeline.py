"""CIFAR-10 training input pipeline alone: ours (batched, on-device) vs torchvision's per-sample transforms.

    python benchmarks/input_pipeline.py

Both produce normalised float batches of 128 with the same augmentation:
random crop 32 with padding 4, horizontal flip, color jitter (0.2, 0.2, 0.2,
0.05). Ours: the ``CIFAR10`` DataModule's loader (index slices of a uint8
tensor) and its ``transform`` on the CPU. Theirs: a map-style dataset of PIL
images with ``RandomCrop``, ``RandomHorizontalFlip``, ``ColorJitter``,
``ToTensor`` and ``Normalize`` in a ``DataLoader`` with 2 workers. The images
are random uint8 arrays of CIFAR-10's shape (50,000 x 32 x 32 x 3): there is
no CIFAR-10 copy on the machines this was measured on, and the cost of these
operations does not depend on the pixel values.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402
from datamodules import CIFAR10  # noqa: E402


class PILImages(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def batches_per_second(batches, transform, n: int, warmup: int = 5) -> float:
    it = iter(batches)
    for _ in range(warmup):
        transform(next(it))
    start = time.perf_counter()
    for _ in range(n):
        transform(next(it))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--batches", type=int, default=150, help="batches timed per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements of each pipeline")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 50_000)

    dm = CIFAR10(batch_size=args.batch_size)  # default augmentation: crop 4, flip 0.5, jitter 0.2/0.2/0.2/0.05
    dm.train_set = (torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
    a = dm.augmentation

    reference = T.Compose([
        T.RandomCrop(32, padding=a.crop_padding), T.RandomHorizontalFlip(a.hflip),
        T.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue), T.ToTensor(), T.Normalize(dm.mean, dm.std),
    ])
    loader = DataLoader(PILImages(hwc, labels, reference), batch_size=args.batch_size, shuffle=True, num_workers=2,
                        persistent_workers=True)

    def ours_epoch():
        while True:
            yield from dm.train_dataloader()

    def theirs_epoch():
        while True:
            yield from loader

    ours_it, theirs_it = ours_epoch(), theirs_epoch()
    ours, theirs = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        ours.append(batches_per_second(ours_it, lambda b: dm.transform(b[0], train=True), args.batches))
        theirs.append(batches_per_second(theirs_it, lambda b: b, args.batches))
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"ours {o:.1f} batches/s, torchvision {t:.1f} batches/s, ratio {o / t:.1f}x")

    body = "\n".join([
        "## CIFAR-10 input pipeline (training batches with full augmentation)", "",
        "`python benchmarks/input_pipeline.py`", "",
        f"Machine: {machine()}. Batch {args.batch_size}; random crop 32 (padding 4), flip 0.5, color jitter "
        f"(0.2, 0.2, 0.2, 0.05), normalisation. Median of {args.repeats} alternating measurements of "
        f"{args.batches} batches each, after 5 warm-up batches; images are random uint8 of CIFAR-10's shape.", "",
        "| pipeline | batches/s | examples/s |", "| --- | --- | --- |",
        f"| ours: uint8 index slices + batched augmentation in `transform` (1 process) | {o:.1f} | {o * args.batch_size:.0f} |",
        f"| torchvision per-sample transforms, `DataLoader` with 2 workers | {t:.1f} | {t * args.batch_size:.0f} |",
        "", f"Ratio: ours is **{o / t:.1f}x** torchvision's per-sample pipeline.",
    ])
    write_section("input_pipeline", body)


if __name__ == "__main__":
    main()
