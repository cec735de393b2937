"""The book's transfer experiment (d2l 14.2) on real photos: pretrain on 8 CIFAR-10 classes, fine-tune on cat vs dog.

    python benchmarks/transfer_cifar.py --root ../shared/datasets/cifar10-images

1. ``zoo fit`` ResNet18 on the eight classes other than cat and dog
   (``--data.classes``), 32 px, random crop and flip.
2. For 100 and 500 training images per class, a small cat/dog folder of links
   into the dataset (train/: the first N files of each class, val/: the next 50,
   test/: the 200 + 200 official test images), then
   - fine-tuned: ``--model.weights <pretrained checkpoint>``, new head at 10x the
     learning rate (the book's recipe);
   - from scratch: the same command without weights, at the book's 10x learning rate;
   both for the same number of epochs, with the same data, augmentation and seed.
3. ``zoo test`` of each run's last checkpoint on the 400 test images.
Every command is its own process, as a user runs them; the table is written to
``benchmarks/RESULTS.md`` after each row.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TARGET = ["cat", "dog"]
# torch threads of each run: on shared cores, two OpenMP threads per op wait on each other (measured here under
# load: a ResNet18 step 3.5x slower with 2 threads than with 1)
THREADS = 1


def zoo(args: list[str], cwd: Path, log) -> float:
    """Run one ``zoo`` command; return its wall time."""
    start = time.perf_counter()
    print(f"$ zoo {shlex.join(args)}", file=log, flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(THREADS)}
    out = subprocess.run([sys.executable, "-m", "zoo.cli", *args, *QUIET], cwd=cwd, env=env, capture_output=True,
                         text=True)
    print(out.stdout[-2000:], out.stderr[-2000:], file=log, flush=True)
    if out.returncode:
        sys.exit(f"zoo {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def newest(cwd: Path, pattern: str) -> Path:
    def version(path: Path) -> int:
        return int(next(part for part in path.parts if part.startswith("version_")).split("_")[1])

    return max((cwd / "lightning_logs").glob(pattern), key=version)


def link_subset(root: Path, dest: Path, per_class: int, val_per_class: int) -> Path:
    """dest/train/<c>: the first ``per_class`` images of root/train/<c>; dest/val/<c>: the next ones; test: all."""
    for c in TARGET:
        files = sorted(p.name for p in (root / "train" / c).iterdir())
        for split, names in (("train", files[:per_class]), ("val", files[per_class : per_class + val_per_class])):
            folder = dest / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                if not (folder / name).exists():
                    (folder / name).symlink_to(root / "train" / c / name)
        (dest / "test").mkdir(parents=True, exist_ok=True)
        if not (dest / "test" / c).exists():
            (dest / "test" / c).symlink_to(root / "test" / c, target_is_directory=True)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets/cifar10-images")
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--per-class", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--workdir", default="benchmarks/transfer_runs", help="where the runs write lightning_logs/")
    parser.add_argument("--extra", action="append", default=[], help="one more option for every fit (repeatable)")
    parser.add_argument("--cache-dir", default=None, help="--data.cache_dir of every run (default: the zoo's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    root = Path(args.root).resolve()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "commands.log", "a")
    cache = ["--data.cache_dir", args.cache_dir] if args.cache_dir else []
    sources = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and p.name not in TARGET)
    data = ["--data", "ImageFolder", "--data.image_size", "32", "--data.crop_size", "32",
            "--data.random_resized_crop", "false", "--data.crop_padding", "4", "--data.hflip", "0.5", *cache]
    sgd = ["--optimizer", "SGD", "--optimizer.momentum", "0.9", "--optimizer.weight_decay", "0.001"]

    def cosine(epochs: int) -> list[str]:
        return ["--lr_scheduler", "CosineAnnealingLR", "--lr_scheduler.T_max", str(epochs)]

    pretrain = ["fit", "--model", "ResNet18", *data, "--data.root", str(root),
                "--data.classes", "[" + ",".join(sources) + "]", "--data.val_size", "800", "--data.batch_size", "128",
                *sgd, "--optimizer.lr", "0.05", *cosine(args.pretrain_epochs),
                "--trainer.max_epochs", str(args.pretrain_epochs), *args.extra]
    pre_dir = work / "pretrain"
    pre_dir.mkdir(exist_ok=True)
    existing = list(pre_dir.glob("lightning_logs/*/version_*/checkpoints/last.ckpt"))
    pre_time = 0.0 if existing else zoo(pretrain, pre_dir, log)
    source_ckpt = newest(pre_dir, "*/version_*/checkpoints/last.ckpt")
    zoo(["validate", "--ckpt_path", str(source_ckpt)], pre_dir, log)
    source_acc = json.loads(newest(pre_dir, "*/version_*/validate_metrics.json").read_text())["metrics"]["val/acc"]

    rows = []
    commands = [f"zoo {shlex.join(pretrain)}"]
    for n in args.per_class:
        subset = link_subset(root, work / f"catdog_{n}", n, 50)
        batch = "32" if n <= 100 else "64"
        common = ["fit", "--model", "ResNet18", *data, "--data.root", str(subset), "--data.batch_size", batch,
                  *sgd, *cosine(args.finetune_epochs), "--trainer.max_epochs", str(args.finetune_epochs), *args.extra]
        arms = {
            # the book: pretrained layers at a small learning rate, the new head at 10x
            "fine-tuned": [*common, "--model.weights", str(source_ckpt), "--model.head_lr_mult", "10",
                           "--optimizer.lr", "0.005"],
            # the book trains the scratch model at 10x the fine-tuning learning rate
            "from scratch": [*common, "--optimizer.lr", "0.05"],
        }
        for arm, fit in arms.items():
            run_dir = work / f"catdog_{n}_{arm.replace(' ', '_')}"
            run_dir.mkdir(exist_ok=True)
            seconds = zoo(fit, run_dir, log)
            last = newest(run_dir, "*/version_*/checkpoints/last.ckpt")
            zoo(["test", "--ckpt_path", str(last)], run_dir, log)
            acc = json.loads(newest(run_dir, "*/version_*/test_metrics.json").read_text())["metrics"]["test/acc"]
            rows.append((n, arm, acc, seconds))
            commands.append(f"zoo {shlex.join(fit)}")
            write(args, rows, commands, source_acc, pre_time, sources)
            print(f"{n} per class, {arm}: test acc {acc:.3f} ({seconds:.0f} s)", flush=True)


def write(args, rows, commands, source_acc: float, pre_time: float, sources: list[str]) -> None:
    lines = [
        "## Transfer: 8 CIFAR-10 classes -> cat vs dog (ResNet18, 32 px photos)",
        "",
        "```",
        f"python benchmarks/transfer_cifar.py --root {args.root} --pretrain-epochs {args.pretrain_epochs} "
        f"--finetune-epochs {args.finetune_epochs} --per-class {' '.join(map(str, args.per_class))}",
        "```",
        "",
        f"Machine: {machine()}, {args.threads} torch thread(s) per run. Source task: {', '.join(sources)} (15,200 training images, "
        f"{args.pretrain_epochs} epoch(s){f', {pre_time / 60:.0f} min' if pre_time else ''}); "
        f"its validation accuracy: {source_acc:.3f} (8 classes).",
        f"Target: cat vs dog, N training images per class (+ 50 per class for validation), "
        f"{args.finetune_epochs} epochs; test accuracy of the last checkpoint on the 400 official cat/dog test images.",
        "",
        "| images per class | fine-tuned | from scratch | difference (points) |",
        "|---:|---:|---:|---:|",
    ]
    by_n: dict[int, dict[str, float]] = {}
    for n, arm, acc, _ in rows:
        by_n.setdefault(n, {})[arm] = acc
    for n, accs in by_n.items():
        ft, sc = accs.get("fine-tuned"), accs.get("from scratch")
        diff = f"{100 * (ft - sc):+.1f}" if ft is not None and sc is not None else ""
        cells = [f"{v:.3f}" if v is not None else "" for v in (ft, sc)]
        lines.append(f"| {n} | {cells[0]} | {cells[1]} | {diff} |")
    lines += ["", "One seed per arm, and 400 test images: one point is 4 images, so a single difference of a few points is within noise; the table is one run, not an average."]
    lines += ["", "The commands (each run from its own folder; `zoo test --ckpt_path <last.ckpt>` after each fit):", "",
              "```", *commands, "```"]
    write_section("transfer_cifar", "\n".join(lines))


if __name__ == "__main__":
    main()
