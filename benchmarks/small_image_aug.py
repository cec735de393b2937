"""Which training crop suits small photos: RandomResizedCrop (ImageNet's, area 8%-100%) or pad-and-crop (CIFAR's)?

    python benchmarks/small_image_aug.py --root ../shared/datasets/cifar10-images --epochs 3

ResNet18 on the CIFAR-10 photos through ``ImageFolder`` at 32 px (``--data.image_size 32 --data.crop_size 32``),
the same seed, data, optimizer and budget for both arms, each followed by ``zoo test`` of its last checkpoint
on the 2,000 test photos:

- ``rrc``: ``--data.random_resized_crop true`` (torchvision's RandomResizedCrop, scale 0.08-1) and a flip;
- ``pad_crop``: ``--data.random_resized_crop false --data.crop_padding 4`` (zero-pad 4, crop 32 back) and a flip.

The arms run at the same time, one torch thread each, so a load on the machine weighs on both alike. Runs go to
``--workdir`` (not ./lightning_logs); the table is printed, and written into ``benchmarks/RESULTS.md`` only with
``--write-results``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

ARMS = {
    "rrc": ["--data.random_resized_crop", "true"],
    "pad_crop": ["--data.random_resized_crop", "false", "--data.crop_padding", "4"],
    # the CIFAR10 DataModule's whole training pipeline: pad-and-crop, flip and colour jitter
    "pad_crop_jitter": ["--data.random_resized_crop", "false", "--data.crop_padding", "4", "--data.brightness", "0.2",
                        "--data.contrast", "0.2", "--data.saturation", "0.2", "--data.hue", "0.05"],
}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/datasets/cifar10-images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", default="benchmarks/small_image_runs", help="where the runs write lightning_logs/")
    parser.add_argument("--cache-dir", default=None, help="--data.cache_dir of every run (default: the zoo's)")
    parser.add_argument("--arms", nargs="+", default=["rrc", "pad_crop"], choices=sorted(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per arm and seed")
    parser.add_argument("--extra", action="append", default=[], help="one more word for every fit (repeatable), "
                        "e.g. --extra=--optimizer.momentum --extra=0")
    add_write_flag(parser)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    common = ["--model", "ResNet18", "--data", "ImageFolder", "--data.root", str(root), "--data.image_size", "32",
              "--data.crop_size", "32", "--data.batch_size", "128", "--optimizer", "SGD", "--optimizer.lr", "0.05",
              "--optimizer.momentum", "0.9", "--optimizer.weight_decay", "5e-4", "--trainer.max_epochs",
              str(args.epochs), *QUIET, *(["--data.cache_dir", args.cache_dir] if args.cache_dir else []), *args.extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # the cache is built once, before the arms start together
    first = Path(args.workdir) / "cache_build"
    first.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "zoo.cli", "fit", *common, "--trainer.fast_dev_run", "true"], cwd=first,
                   env=env, check=True, capture_output=True)
    start = time.perf_counter()
    procs = {}
    for seed in args.seeds:
        for arm in args.arms:
            cwd = Path(args.workdir) / f"{arm}-seed{seed}"
            cwd.mkdir(parents=True, exist_ok=True)
            log = open(cwd / "fit.log", "w")
            seeds = ["--seed_everything", str(seed), "--data.seed", str(seed)]
            procs[arm, seed] = (cwd, subprocess.Popen([sys.executable, "-m", "zoo.cli", "fit", *common, *ARMS[arm], *seeds],
                                                      cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT))
    results: dict[str, list[tuple[float, float, int]]] = {arm: [] for arm in args.arms}
    for (arm, seed), (cwd, proc) in procs.items():
        if proc.wait():
            sys.exit(f"{arm}, seed {seed}: zoo fit failed, see {cwd / 'fit.log'}")
        run = max((cwd / "lightning_logs" / "ResNet18-ImageFolder").glob("version_*"), key=lambda p: p.stat().st_mtime)
        ckpt = run / "checkpoints" / "last.ckpt"
        subprocess.run([sys.executable, "-m", "zoo.cli", "test", "--ckpt_path", str(ckpt), *QUIET], cwd=cwd, env=env,
                       check=True, capture_output=True)
        metrics = json.loads((run / "test_metrics.json").read_text())["metrics"]
        results[arm].append((metrics["test/acc"], metrics["test/loss"], int(metrics["test/samples"])))
    minutes = (time.perf_counter() - start) / 60
    seeds = " ".join(map(str, args.seeds))
    lines = [
        "## Small photos: RandomResizedCrop or pad-and-crop",
        "",
        f"`python benchmarks/small_image_aug.py --root ../shared/datasets/cifar10-images --epochs {args.epochs} "
        f"--arms {' '.join(args.arms)} --seeds {seeds}{''.join(' --extra=' + w for w in args.extra)}`",
        "",
        f"Machine: {machine()}. ResNet18 on the CIFAR-10 photos (the 20,000-photo JPEG subset: 18,000 training, "
        f"2,000 validation by the seeded split, 2,000 test) through `ImageFolder` at 32 px, batch 128, SGD lr 0.05 "
        f"momentum 0.9 weight decay 5e-4{' (then ' + ' '.join(args.extra) + ')' if args.extra else ''}, {args.epochs} "
        f"epochs, seeds {seeds} (`--seed_everything` and "
        f"`--data.seed`), horizontal flip in every arm; test of the last checkpoint. All runs at once, one thread "
        f"each ({minutes:.0f} min).",
        "",
        "| training crop | options | test acc per seed | mean test acc | mean test loss | test samples |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for arm, rows in results.items():
        accs = [acc for acc, _, _ in rows]
        lines.append(f"| {arm} | `{' '.join(ARMS[arm])}` | {', '.join(f'{a:.4f}' for a in accs)} | "
                     f"{sum(accs) / len(accs):.4f} | {sum(loss for _, loss, _ in rows) / len(rows):.4f} | {rows[0][2]} |")
    write_section("small_image_aug", "\n".join(lines), args.write_results)


if __name__ == "__main__":
    main()
