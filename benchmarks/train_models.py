"""Train zoo models on real Fashion-MNIST with their configs and tabulate the results.

    python benchmarks/train_models.py --root ../shared/datasets --models softmax mlp lenet lenet_bn_scratch lenet_bn
    python benchmarks/train_models.py --root ../shared/datasets --models nin googlenet resnet18 --reduced

Each model runs in its own process (so peak memory is its own): ``zoo fit``
with ``configs/<model>_fashion_mnist.yaml``, then ``zoo test`` with the best
checkpoint. ``--reduced`` applies the smaller budgets in ``REDUCED`` for models
that take hours at the book's settings on a CPU. The table goes to
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# overrides that fit a 2-core CPU in a few minutes per model (stated in the table)
REDUCED = {
    "nin": ["--data.resize", "67", "--trainer.max_epochs", "1"],  # 67: NiN's smallest input
    "googlenet": ["--data.resize", "48", "--trainer.max_epochs", "1"],
    "resnet18": ["--data.resize", "48", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "100"],
}


def run_one(config: str, root: str, overrides: list[str]) -> dict:
    import torch

    from zoo.callbacks import SamplesPerSecond
    from zoo.commands.lightning import cli_main

    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cli = cli_main(["-c", config, "--data.root", root, *quiet, *overrides], run=False)
    meter = next(cb for cb in cli.trainer.callbacks if isinstance(cb, SamplesPerSecond))  # every zoo run has one
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_seconds = time.perf_counter() - start
    train = {k: cli.trainer.callback_metrics[k].item() for k in ("train/loss", "train/acc")}
    (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    if torch.cuda.is_available():
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {
        "epochs": cli.trainer.current_epoch,
        "train_batches": cli.trainer.num_training_batches,
        **train,
        "test/acc": test["test/acc"],
        "examples_per_s": meter.per_second,
        "fit_s": fit_seconds,
        "peak_mb": peak_mb,
    }


def settings(config: Path, overrides: list[str]) -> str:
    """The config's batch, lr and resize, with the overrides applied on top."""
    import yaml

    c = yaml.safe_load(config.read_text())
    data = c["data"].get("init_args", {})
    values = {"batch": data.get("batch_size"), "lr": c["optimizer"]["init_args"]["lr"], "resize": data.get("resize")}
    for key, value in zip(overrides[::2], overrides[1::2]):
        values[key.split(".")[-1]] = value
    return ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)


def main() -> None:
    from benchmarks.results import add_write_flag, machine, write_section

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets", help="folder holding FashionMNIST/raw/")
    parser.add_argument("--models", nargs="+", default=["softmax", "mlp", "lenet", "lenet_bn_scratch", "lenet_bn"])
    parser.add_argument("--reduced", action="store_true", help="use the reduced budgets of REDUCED")
    parser.add_argument("--section", default=None, help="RESULTS.md section name (default: from the models)")
    parser.add_argument("--workdir", default="benchmarks/train_runs", help="where the runs write lightning_logs/")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one config in this process
    args, extra = parser.parse_known_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.root, extra)), flush=True)
        return

    rows = []
    for name in args.models:
        config = REPO / "configs" / f"{name}_fashion_mnist.yaml"
        overrides = REDUCED.get(name, []) if args.reduced else []
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(config), "--root",
               str(Path(args.root).resolve()), *overrides]
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=args.workdir)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode or not lines:
            sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        print(name, result, flush=True)
        rows.append((name, settings(config, overrides), result))

    table = ["| model | settings | epochs | train loss | train acc | test acc | examples/s | peak memory (MB) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, setting, r in rows:
        table.append(f"| {name} | {setting} | {r['epochs']} | {r['train/loss']:.3f} | {r['train/acc']:.3f} | "
                     f"{r['test/acc']:.3f} | {r['examples_per_s']:.0f} | {r['peak_mb']:.0f} |")
    command = "python benchmarks/train_models.py --root " + args.root + " --models " + " ".join(args.models)
    command += " --reduced" if args.reduced else ""
    section = args.section or ("reduced" if args.reduced else "book") + "_models"
    body = "\n".join([
        f"## Fashion-MNIST training ({'reduced budgets' if args.reduced else 'book settings'})", "",
        f"`{command}`", "", f"Machine: {machine()}. One run per model, seed 0; test accuracy of the best "
        "checkpoint by validation accuracy (5,000 held-out training images); examples/s over training batches.", "",
        *table,
        *(["", "Reduced budgets: one epoch (ResNet-18: 100 batches) at small resizes. NiN and GoogLeNet, which "
            "have no BatchNorm, spend their first epoch leaving the initial plateau at lr 0.1, as the book's "
            "curves show; the book's settings are for a GPU: `zoo fit -c configs/<model>_fashion_mnist.yaml "
            "-c configs/trainer/gpu.yaml`."] if args.reduced else []),
    ])
    write_section(section, body)


if __name__ == "__main__":
    main()
