"""Fine-tuning from the zoo's own weights onto a few hundred of one's own grayscale images, against training
from scratch (the book's small-target setting, d2l 14.2, on a gray task).

    python benchmarks/finetune_zoo_weights.py --root ../shared/datasets

The user's images: handwritten digits 0-4 written as PNG files into an image folder (train/<digit>/: N per
class from MNIST's training set; test/<digit>/: the first 200 per class of MNIST's test set), a task the
Fashion-MNIST weights never saw. Both arms train ``LeNetBN`` on the same folder, seeds and epochs:
- fine-tuned: ``--model.weights FASHIONMNIST_V1`` (Fashion-MNIST's 10-class head replaced by a 5-class one),
  the head at 10x the learning rate;
- from scratch: the same command without weights, at the book's 10x learning rate.
``zoo test`` of each run's best checkpoint on the 1,000 test images.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import torchvision

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402
from benchmarks.transfer_cifar import newest, zoo  # noqa: E402
from datamodules.idx import read_idx  # noqa: E402

DIGITS = range(5)


def write_folder(root: Path, dest: Path, per_class: int, test_per_class: int = 200) -> Path:
    """MNIST digits 0-4 as PNG files in the image-folder layout (written once)."""
    if (dest / "done").exists():
        return dest
    raw = root / "MNIST" / "raw"
    for split, prefix, n in (("train", "train", per_class), ("test", "t10k", test_per_class)):
        images, labels = read_idx(raw / f"{prefix}-images-idx3-ubyte"), read_idx(raw / f"{prefix}-labels-idx1-ubyte")
        for digit in DIGITS:
            folder = dest / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in (labels == digit).nonzero().flatten()[:n].tolist():
                torchvision.io.write_png(images[i][None], str(folder / f"{i:05d}.png"))
    (dest / "done").touch()
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets")
    parser.add_argument("--per-class", type=int, nargs="+", default=[20, 60])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", default="benchmarks/finetune_zoo_runs")
    args = parser.parse_args()
    root, work = Path(args.root).resolve(), Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "commands.log", "a")
    results: dict[tuple[int, str], list[float]] = {}
    commands = []
    for n in args.per_class:
        folder = write_folder(root, work / f"digits_{n}", n)
        common = ["fit", "--model", "LeNetBN", "--data", "ImageFolder", "--data.root", str(folder),
                  "--data.channels", "1", "--data.image_size", "28", "--data.crop_size", "28",
                  "--data.random_resized_crop", "false", "--data.hflip", "0", "--data.normalize", "false",
                  "--data.val_size", "0.2", "--data.batch_size", "32", "--trainer.max_epochs", str(args.epochs),
                  "--data.cache_dir", str(work / "cache")]
        arms = {"fine-tuned": ["--model.weights", "FASHIONMNIST_V1", "--model.head_lr_mult", "10",
                               "--optimizer.lr", "0.1"],
                # the same start at the scratch run's learning rate: is a difference the weights or the rate?
                "fine-tuned, lr 1.0": ["--model.weights", "FASHIONMNIST_V1", "--optimizer.lr", "1.0"],
                "from scratch": ["--optimizer.lr", "1.0"]}
        for seed in args.seeds:
            for arm, extra in arms.items():
                fit = [*common, *extra, "--seed_everything", str(seed), "--data.seed", str(seed)]
                run_dir = work / f"digits_{n}_{arm.replace(' ', '_').replace(',', '')}_seed{seed}"
                run_dir.mkdir(exist_ok=True)
                zoo(fit, run_dir, log)
                zoo(["test", "--ckpt_path", str(newest(run_dir, "*/version_*/checkpoints/best.ckpt"))], run_dir, log)
                acc = json.loads(newest(run_dir, "*/version_*/test_metrics.json").read_text())["metrics"]["test/acc"]
                results.setdefault((n, arm), []).append(acc)
                if seed == args.seeds[0]:
                    commands.append(f"zoo {shlex.join(fit)}".replace(str(work), "WORK"))
                print(f"{n} per class, {arm}, seed {seed}: test acc {acc:.3f}", flush=True)
    write(args, results, commands)


def write(args, results, commands) -> None:
    lines = ["## Fine-tuning from the zoo's weights: Fashion-MNIST LeNetBN -> a few hundred handwritten digits",
             "", "```", f"python benchmarks/finetune_zoo_weights.py --root {args.root} --per-class "
             f"{' '.join(map(str, args.per_class))} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}",
             "```", "",
             f"Machine: {machine()}. Target: MNIST digits 0-4 as PNG files in an image folder, N training images per "
             f"class (a fifth held out for validation), {args.epochs} epochs, batch 32; test accuracy of the best "
             "checkpoint on 1,000 test digits (200 per class). Mean ± standard deviation over seeds "
             f"{', '.join(map(str, args.seeds))} (initialisation, split and order).",
             "", "| images per class | fine-tuned from `LeNetBN FASHIONMNIST_V1` (lr 0.1, head 1.0) | fine-tuned, lr 1.0 "
             "| from scratch (lr 1.0) | fine-tuned - scratch (points) |",
             "|---:|---:|---:|---:|---:|"]
    for n in args.per_class:
        ft, ft1, sc = (results[(n, arm)] for arm in ("fine-tuned", "fine-tuned, lr 1.0", "from scratch"))
        cell = lambda v: f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"  # noqa: E731
        lines.append(f"| {n} | {cell(ft)} | {cell(ft1)} | {cell(sc)} | {100 * (statistics.mean(ft) - statistics.mean(sc)):+.1f} |")
    lines += ["", "The commands (seed 0; each from its own folder, then `zoo test --ckpt_path <best.ckpt>`):", "",
              "```", *commands, "```"]
    write_section("finetune_zoo_weights", "\n".join(lines))


if __name__ == "__main__":
    main()
