"""Fine-tuning on real data: LeNetBN pretrained on MNIST, fine-tuned on Fashion-MNIST, against training from scratch.

    python benchmarks/finetune_demo.py --root ../shared/datasets

Runs the three commands printed in the results (each its own process), and
tabulates the Fashion-MNIST test accuracy of the best checkpoint of the
fine-tuned run and of the from-scratch run, both trained for one epoch with
the same settings and seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def zoo(args: list[str], cwd: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "zoo.cli", *args, *QUIET], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"zoo {' '.join(args)} failed:\n{out.stderr[-3000:]}")


def newest(cwd: Path, pattern: str) -> Path:
    """The match of ``pattern`` under lightning_logs/ in the highest version_N."""

    def version(path: Path) -> int:
        return int(next(part for part in path.parts if part.startswith("version_")).split("_")[1])

    return max((cwd / "lightning_logs").glob(pattern), key=version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--workdir", default="benchmarks/finetune_runs", help="where the runs write lightning_logs/")
    args = parser.parse_args()
    root = str(Path(args.root).resolve())
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)

    pretrain = ["fit", "--model", "LeNetBN", "--data", "MNIST", "--data.root", root, "--optimizer.lr", "1.0",
                "--trainer.max_epochs", str(args.pretrain_epochs)]
    zoo(pretrain, work)
    mnist_ckpt = newest(work, "LeNetBN-MNIST/version_*/checkpoints/best.ckpt")
    common = ["--data", "FashionMNIST", "--data.root", root, "--trainer.max_epochs", "1"]
    # fine-tuning: the book's recipe, a small learning rate for the pretrained part and 10x for the head;
    # from scratch: the book's BN LeNet learning rate
    finetune = ["--model.weights", str(mnist_ckpt), "--optimizer.lr", "0.1", "--model.head_lr_mult", "10"]
    rows = []
    for label, extra in (("fine-tuned from the MNIST checkpoint", finetune),
                         ("from scratch", ["--optimizer.lr", "1.0"])):
        fit = ["fit", "--model", "LeNetBN", *extra, *common]
        zoo(fit, work)
        ckpt = newest(work, "LeNetBN-FashionMNIST/version_*/checkpoints/best.ckpt")
        zoo(["test", "--ckpt_path", str(ckpt)], work)
        metrics = json.loads((ckpt.parent.parent / "test_metrics.json").read_text())["metrics"]  # the run's own
        rows.append((label, fit, metrics["test/acc"]))
        print(label, metrics["test/acc"], flush=True)

    show = lambda cmd: "zoo " + " ".join(cmd).replace(root, args.root).replace(str(mnist_ckpt), "MNIST_BEST.ckpt")  # noqa: E731
    body = "\n".join([
        "## Fine-tuning: MNIST -> Fashion-MNIST (LeNetBN)", "",
        f"`python benchmarks/finetune_demo.py --root {args.root}`", "",
        f"Machine: {machine()}. Seed 0. Pretraining on real MNIST ({args.pretrain_epochs} epochs):", "",
        f"    {show(pretrain)}", "",
        "then one epoch on real Fashion-MNIST, each followed by `zoo test --ckpt_path <its best.ckpt>`. The "
        "MNIST head (10 digits) has the same shape as the Fashion-MNIST head, so every tensor is loaded; the "
        "fine-tuned run uses the book's recipe (lr 0.1 for the pretrained layers, 10x for the head), the run "
        "from scratch the book's lr 1.0 for this network.", "",
        "| start | command | Fashion-MNIST test acc after 1 epoch |", "| --- | --- | --- |",
        *[f"| {label} | `{show(cmd)}` | {acc:.3f} |" for label, cmd, acc in rows],
    ])
    write_section("finetune_demo", body)


if __name__ == "__main__":
    main()
