"""ImageFolder speed: (a) building the decoded cache, (b) training batches per second, against torchvision.

    python benchmarks/imagefolder_speed.py --root ../shared/datasets/cifar10-images

Two image sets: the 32 px CIFAR-10 JPEGs of two classes (cached at 32, crop 32),
and photo-sized JPEGs (500 x 375, random shapes and colours, written by this
script) cached at 256 and cropped to 224.
(a) images decoded per second: our cache build (threads; processes) against
    iterating ``torchvision.datasets.ImageFolder`` with ``Resize`` + ``CenterCrop``
    to the same size (one process, and a ``DataLoader`` with 2 workers).
(b) training batches per second of the input pipeline alone (random resized crop,
    flip, color jitter, normalise, to the model's float input): ours (cache
    slices, then the batched transform) against ``torchvision.datasets.ImageFolder``
    + ``DataLoader`` (2 workers) with per-sample ``transforms.v2``. Epoch 1 and
    the mean of epochs 2-3 (page cache warm, worker start-up included per epoch
    as torchvision's default ``persistent_workers=False`` does).
Also the peak resident memory of this process after our pipeline, next to the cache size.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402
from datamodules.folder import ImageFolder  # noqa: E402
from datamodules.image_cache import build_cache, cache_key, list_split  # noqa: E402

JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}


def make_photos(root: Path, per_class: int, classes: int = 2) -> Path:
    """JPEGs of 500 x 375 (and some 375 x 500) with random shapes: photo-sized, photo-like to a JPEG decoder."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (500, 375) if i % 4 else (375, 500)
            img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(img)
            for _ in range(30):
                x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
                draw.ellipse((x0, y0, x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 200))),
                             fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
            noise = rng.integers(0, 24, (size[1], size[0], 3), dtype=np.uint8)
            img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise - 12, 0, 255).astype(np.uint8))
            img.save(folder / f"{i:04d}.jpg", quality=90)
    return root


def cache_build_rate(root: Path, classes: list[str], size: int, processes: bool, workers: int) -> float:
    entries = list_split(root / "train", classes)
    out = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    try:
        start = time.perf_counter()
        build_cache(entries, root, out, cache_key(entries, root, {"size": size}), size, 3, workers, processes)
        return len(entries) / (time.perf_counter() - start)
    finally:
        shutil.rmtree(out)


def torchvision_decode_rate(root: Path, classes: list[str], size: int, workers: int) -> float:
    from torchvision import datasets
    from torchvision.transforms import v2

    tf = v2.Compose([v2.Resize(size), v2.CenterCrop(size), v2.PILToTensor()])
    ds = datasets.ImageFolder(str(root / "train"), transform=tf,
                              is_valid_file=lambda p: Path(p).parent.name in classes, allow_empty=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(x) for x, _ in loader)
    return n / (time.perf_counter() - start)


def ours_epochs(root: Path, classes: list[str], size: int, crop: int, batch: int, cache: Path, epochs: int,
                jitter: dict):
    dm = ImageFolder(str(root), classes=classes, image_size=size, crop_size=crop, batch_size=batch, val_size=0,
                     cache_dir=str(cache), **jitter)
    dm.prepare_data()
    dm.setup("fit")
    rates = []
    for epoch in range(epochs):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        start, n = time.perf_counter(), 0
        for x, _ in loader:
            dm.transform(x, train=True)
            n += 1
        rates.append(n / (time.perf_counter() - start))
    cache_mb = sum(p.stat().st_size for p in dm.cache_folder.glob("*.npy")) / 2**20
    return rates, cache_mb


def torchvision_epochs(root: Path, classes: list[str], crop: int, batch: int, epochs: int, jitter: dict,
                       workers: int = 2):
    from torchvision import datasets
    from torchvision.transforms import v2

    tf = v2.Compose([
        v2.PILToTensor(), v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip(),
        *([v2.ColorJitter(**jitter)] if jitter else []), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    ds = datasets.ImageFolder(str(root / "train"), transform=tf, is_valid_file=lambda p: Path(p).parent.name in classes, allow_empty=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for _x, _y in loader:
            n += 1
        rates.append(n / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets/cifar10-images")
    parser.add_argument("--photos", type=int, default=160, help="photo-sized JPEGs per class (2 classes)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    # One thread: torchvision's workers run one each, and on shared cores two OpenMP threads per op wait on each
    # other (measured here: the batched jitter 6-15x slower with 2 threads than with 1 under a load of 11).
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="imagefolder-bench-"))
    sets = [
        ("CIFAR-10 JPEGs, 32 px (cat, dog: 4,000)", Path(args.root).resolve(), ["cat", "dog"], 32, 32, 128),
        (f"photos 500x375 JPEG ({2 * args.photos}), cache 256, crop 224", make_photos(work / "photos", args.photos),
         ["class0", "class1"], 256, 224, 32),
    ]
    decode_rows, pipeline_rows = [], []
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = []
    try:
        for name, root, classes, size, crop, batch in sets:
            threads = cache_build_rate(root, classes, size, False, 0)
            procs = cache_build_rate(root, classes, size, True, 0)
            tv1 = torchvision_decode_rate(root, classes, size, 0)
            tv2 = torchvision_decode_rate(root, classes, size, 2)
            decode_rows.append(f"| {name} | {threads:,.0f} | {procs:,.0f} | {tv1:,.0f} | {tv2:,.0f} |")
            print(decode_rows[-1], flush=True)
            for jitter in (JITTER, {}):
                ours, cache_mb = ours_epochs(root, classes, size, crop, batch, work / "cache", args.epochs, jitter)
                tv = torchvision_epochs(root, classes, crop, batch, args.epochs, jitter)
                later = lambda r: sum(r[1:]) / len(r[1:])  # noqa: E731
                pipeline_rows.append(f"| {name}, batch {batch}, {'with' if jitter else 'no'} jitter | {ours[0]:.2f} | "
                                     f"{later(ours):.2f} | {tv[0]:.2f} | {later(tv):.2f} | {later(ours) / later(tv):.1f}x |")
                print(pipeline_rows[-1], flush=True)
            memory.append(f"{name}: cache {cache_mb:,.1f} MiB")
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    body = "\n".join([
        "## ImageFolder: cache build and input pipeline against torchvision",
        "",
        "```",
        f"python benchmarks/imagefolder_speed.py --root {args.root} --photos {args.photos} --epochs {args.epochs}",
        "```",
        "",
        f"Machine: {machine()}; ours in the main process with 1 torch thread, torchvision with 2 worker processes; load average {load:.1f} during the run (the cores were shared, so "
        "absolute rates are low and noisy; the ratios are what carries over).",
        "",
        "(a) Decoding, images per second (ours: decode + resize + center crop into the memory-mapped cache; "
        "torchvision: `datasets.ImageFolder` with `Resize` + `CenterCrop` to the same size):",
        "",
        "| images | ours, threads | ours, processes | torchvision, 1 process | torchvision, DataLoader 2 workers |",
        "|---|---:|---:|---:|---:|",
        *decode_rows,
        "",
        "(b) Training batches per second of the input pipeline alone (random resized crop, flip, color jitter "
        f"{JITTER} or none, normalise); torchvision: `ImageFolder` + `DataLoader(num_workers=2)` + per-sample `transforms.v2`:",
        "",
        "| images | ours, epoch 1 | ours, epochs 2+ | torchvision, epoch 1 | torchvision, epochs 2+ | ours / torchvision |",
        "|---|---:|---:|---:|---:|---:|",
        *pipeline_rows,
        "",
        f"Memory: peak resident memory of the benchmark process {rss_peak:,.0f} MiB ({rss_start:,.0f} MiB after "
        f"importing torch); {'; '.join(memory)}. The cache is memory-mapped: its pages are read from disk as "
        "batches need them and can be dropped by the kernel, so a cache larger than RAM still trains.",
    ])
    write_section("imagefolder_speed", body)
    print(body)


if __name__ == "__main__":
    main()
