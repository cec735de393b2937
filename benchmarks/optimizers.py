"""The optimizers compared: the MLP on real Fashion-MNIST with each optimizer preset, same seed and epochs.

    pip install -e '.[bench]'   # matplotlib, for the plot
    python benchmarks/optimizers.py --root ../shared/datasets

Each run is ``zoo fit -c configs/mlp_fashion_mnist.yaml -c configs/optim/<preset>.yaml`` for ``--epochs``
epochs; the training loss of every step is recorded and plotted (one line per optimizer, a moving
average over 20 steps) to ``docs/optimizers.png``; the final accuracies go to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import lightning as L

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section, writing  # noqa: E402
from zoo.commands.lightning import cli_main  # noqa: E402

PRESETS = ["sgd", "sgd_momentum", "rmsprop", "adam"]


class StepLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", default="benchmarks/optimizer_runs", help="where the runs write lightning_logs/")
    args = parser.parse_args()
    args.root = str(Path(args.root).resolve())
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)  # the runs' logs stay out of the user's lightning_logs/

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, curves = [], {}
    for preset in PRESETS:
        cli = cli_main(["-c", str(REPO / "configs" / "mlp_fashion_mnist.yaml"), "-c", str(REPO / "configs" / "optim" / f"{preset}.yaml"),
                        "--data.root", args.root, "--trainer.max_epochs", str(args.epochs),
                        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"], run=False)
        losses = StepLosses()
        cli.trainer.callbacks.append(losses)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        best_val = cli.trainer.checkpoint_callback.best_model_score.item()
        (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
        opt = cli.trainer.optimizers[0]
        settings = ", ".join(f"{k} {v}" for k, v in opt.defaults.items() if k in ("lr", "momentum", "alpha", "betas") and v)
        rows.append((preset, type(opt).__name__, settings, losses.losses[-1], best_val, test["test/acc"]))
        curves[preset] = np.array(losses.losses)
        print(rows[-1], flush=True)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    window = 20
    for preset, loss in curves.items():
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(loss) + 1), smooth, label=preset)
    ax.set_xlabel("training step (batch 256)")
    ax.set_ylabel(f"training loss ({window}-step moving average)")
    ax.set_title(f"MLP on Fashion-MNIST, {args.epochs} epochs, seed 0")
    ax.set_ylim(0.2, 1.2)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = REPO / "docs" / "optimizers.png" if writing() else Path("optimizers.png")
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=100)

    body = "\n".join([
        "## Optimizers compared (MLP on Fashion-MNIST)", "",
        f"`python benchmarks/optimizers.py --root {args.root} --epochs {args.epochs}`", "",
        f"Machine: {machine()}. `zoo fit -c configs/mlp_fashion_mnist.yaml -c configs/optim/<preset>.yaml`, "
        f"{args.epochs} epochs, batch 256, seed 0; test accuracy of the best checkpoint by validation accuracy. "
        "Loss curves: `docs/optimizers.png`.", "",
        "| preset | optimizer | settings | last step's training loss | best val acc | test acc |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| `configs/optim/{p}.yaml` | {name} | {s} | {loss:.3f} | {val:.3f} | {acc:.3f} |" for p, name, s, loss, val, acc in rows],
    ])
    write_section("optimizers", body)


if __name__ == "__main__":
    main()
