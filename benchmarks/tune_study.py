"""``zoo tune`` on Fashion-MNIST: what a study finds against the book's settings at the same budget, random
against grid search at equal trial counts, and the time pruning saves.

    python benchmarks/tune_study.py --root ../shared/datasets

All studies tune the book's MLP (784-256-10, batch 256, SGD) over configs/search/lr_momentum.yaml (learning
rate log-uniform 1e-4..1, momentum through 1-β log-uniform 0.5..0.999), EPOCHS epochs a trial:
- random, 20 trials, no pruning, and the same 20 (same sampler seed: the same values) with the median pruner;
- grid, 3 x 3 = 9 trials, against random at 9 trials (the first 9 of the 20, and two more seeds);
- the best trial's best checkpoint and a run at the book's settings (lr 0.1, no momentum), the same epochs,
  each through ``zoo test`` on the 10,000 test images.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

SPACE = "configs/search/lr_momentum.yaml"
WD_SPACE = "configs/search/lr_weight_decay.yaml"
CONFIG = "configs/mlp_fashion_mnist.yaml"


def zoo(words: list[str], work: Path, log) -> float:
    """A zoo command in ``work``; its wall time (what the user waits for)."""
    log.write(f"$ zoo {shlex.join(words)}\n")
    log.flush()
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "zoo.cli", *words], cwd=work, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - start


def study(work: Path, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{work / 'lightning_logs' / 'tune' / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url)


def tested(work: Path, ckpt: str, log) -> float:
    zoo(["test", "--ckpt_path", ckpt, "--trainer.enable_progress_bar", "false"], work, log)
    metrics = Path(ckpt).parent.parent / "test_metrics.json"
    return json.loads(metrics.read_text())["metrics"]["test/acc"]


def best_of(trials) -> float:
    return max(t.value for t in trials if t.state.name == "COMPLETE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(parser)
    parser.add_argument("--root", default="../shared/datasets")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workdir", default="benchmarks/tune_runs")
    args = parser.parse_args()
    root, work = Path(args.root).resolve(), Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "commands.log", "a")
    common = ["-c", str(REPO / CONFIG), "-c", str(REPO / SPACE), "--data.root", str(root),
              "--trainer.max_epochs", str(args.epochs)]
    wall = {}
    runs = {"full": ["--n_trials", str(args.trials), "--sampler_seed", "0", "--pruner", "none"],
            "pruned": ["--n_trials", str(args.trials), "--sampler_seed", "0", "--pruner", "median"],
            "grid": ["--n_trials", "9", "--sampler", "grid", "--grid_points", "3", "--pruner", "none"],
            "random9_1": ["--n_trials", "9", "--sampler_seed", "1", "--pruner", "none"],
            "random9_2": ["--n_trials", "9", "--sampler_seed", "2", "--pruner", "none"]}
    # the notes' case: one parameter that matters (lr), one that matters little (weight decay)
    wd = ["-c", str(REPO / CONFIG), "-c", str(REPO / WD_SPACE), "--data.root", str(root),
          "--trainer.max_epochs", str(args.epochs), "--n_trials", "9", "--pruner", "none"]
    runs |= {"wd_grid": ["--sampler", "grid", "--grid_points", "3"],
             **{f"wd_random_{seed}": ["--sampler_seed", str(seed)] for seed in (0, 1, 2)}}
    for name, extra in runs.items():
        words = [*wd, *extra] if name.startswith("wd_") else [*common, *extra]
        if not (work / "lightning_logs" / "tune" / name / "best.yaml").exists():
            wall[name] = zoo(["tune", *words, "--study", name], work, log)
            (work / f"{name}.wall").write_text(f"{wall[name]:.1f}")
        wall[name] = float((work / f"{name}.wall").read_text())
        print(f"{name}: {wall[name]:.0f} s", flush=True)
    full, pruned = study(work, "full"), study(work, "pruned")
    best = full.best_trial
    best_test = tested(work, str(Path(best.user_attrs["run"]) / "checkpoints" / "best.ckpt"), log)
    book_dir = work / "book"
    book_dir.mkdir(exist_ok=True)
    book_fit = ["fit", "-c", str(REPO / CONFIG), "--data.root", str(root), "--trainer.max_epochs", str(args.epochs),
                "--trainer.enable_progress_bar", "false"]
    if not list(book_dir.glob("lightning_logs/*/version_*/checkpoints/best.ckpt")):
        zoo(book_fit, book_dir, log)
    book_ckpt = sorted(book_dir.glob("lightning_logs/*/version_*/checkpoints/best.ckpt"))[-1]
    book_test = tested(book_dir, str(book_ckpt), log)
    import torch

    states = torch.load(book_ckpt, weights_only=False)["callbacks"].values()
    book_val = float(next(s["best_model_score"] for s in states if isinstance(s, dict) and s.get("best_model_score") is not None))
    figures = {"best": best, "best_test": best_test, "book_test": book_test, "book_val": book_val, "wall": wall,
               "full": full, "pruned": pruned,
               "grid": best_of(study(work, "grid").trials),
               "grid_best": study(work, "grid").best_trial.user_attrs["values"],
               "random9": [best_of(full.trials[:9]), best_of(study(work, "random9_1").trials),
                           best_of(study(work, "random9_2").trials)],
               "grid_lrs": len({t.params["optimizer.init_args.lr"] for t in study(work, "grid").trials}),
               "random_lrs": len({t.params["optimizer.init_args.lr"] for t in full.trials[:9]}),
               "wd_grid": best_of(study(work, "wd_grid").trials),
               "wd_random": [best_of(study(work, f"wd_random_{seed}").trials) for seed in (0, 1, 2)]}
    write(args, figures)


def write(args, f) -> None:
    full, pruned = f["full"], f["pruned"]
    epochs = lambda s: sum(t.user_attrs.get("epochs", 0) for t in s.trials)  # noqa: E731
    seconds = lambda s: sum(t.user_attrs.get("seconds", 0) for t in s.trials)  # noqa: E731
    n_pruned = sum(t.state.name == "PRUNED" for t in pruned.trials)
    values = f["best"].user_attrs["values"]
    same_best = pruned.best_trial.number == full.best_trial.number
    # trial seconds = per_trial + per_epoch x epochs, from the two studies' totals
    per_epoch = (seconds(full) - seconds(pruned)) / max(epochs(full) - epochs(pruned), 1)
    per_trial = (seconds(full) - per_epoch * epochs(full)) / len(full.trials)
    r9 = f["random9"]
    lines = [
        "## Hyperparameter search: `zoo tune` on the MLP, Fashion-MNIST", "", "```",
        f"python benchmarks/tune_study.py --root {args.root} --epochs {args.epochs} --trials {args.trials}", "```", "",
        f"Machine: {machine()}. Every trial: the book's MLP (`{CONFIG}`) for {args.epochs} epochs (the budget of every "
        f"arm below), compared on the best val/acc of its epochs (5,000 training images held out); space "
        f"`{SPACE}` (lr log-uniform 1e-4..1, momentum β via 1-β log-uniform 0.5..0.999). One worker, embedded "
        "storage. Each study is one `zoo tune` command; its wall time includes every trial's process start.", "",
        "| what | figure |", "|---|---:|",
        f"| best of {len(full.trials)} random trials: val/acc | {f['best'].value:.4f} |",
        f"| its values | lr {values['optimizer.init_args.lr']:.4g}, momentum {values['optimizer.init_args.momentum']:.4g} |",
        f"| its best checkpoint, `zoo test` (10,000 images) | **{f['best_test']:.4f}** |",
        f"| the book's settings (lr 0.1, no momentum), {args.epochs} epochs: val/acc | {f['book_val']:.4f} |",
        f"| the book's settings, `zoo test` | **{f['book_test']:.4f}** |",
        f"| grid 3 x 3 (9 trials): best val/acc, distinct learning rates tried | {f['grid']:.4f}, {f['grid_lrs']} |",
        f"| the grid's best point | lr {f['grid_best']['optimizer.init_args.lr']:.4g}, momentum "
        f"{f['grid_best']['optimizer.init_args.momentum']:.4g} |",
        f"| random, 9 trials (seeds 0, 1, 2): best val/acc | {', '.join(f'{v:.4f}' for v in r9)} "
        f"(mean {statistics.mean(r9):.4f}); {f['random_lrs']} learning rates each |",
        f"| `{WD_SPACE}` (lr, weight decay 1e-6..1e-3): grid 3 x 3, best val/acc | {f['wd_grid']:.4f} |",
        f"| the same space, random, 9 trials (seeds 0, 1, 2): best val/acc | "
        f"{', '.join(f'{v:.4f}' for v in f['wd_random'])} (mean {statistics.mean(f['wd_random']):.4f}) |",
        f"| {len(full.trials)} trials without pruning: wall time, epochs trained | {f['wall']['full']:.0f} s, {epochs(full)} |",
        f"| the same {len(pruned.trials)} trials, median pruner: wall time, epochs trained | {f['wall']['pruned']:.0f} s, "
        f"{epochs(pruned)} ({n_pruned} pruned) |",
        f"| time pruning saved (wall) | {100 * (1 - f['wall']['pruned'] / f['wall']['full']):.0f}% |",
        f"| trial time in the runs (sum), without and with pruning | {seconds(full):.0f} s, {seconds(pruned):.0f} s |",
        f"| the pruned study's best trial is the unpruned one's | {'yes' if same_best else 'no'} "
        f"({pruned.best_value:.4f} vs {full.best_value:.4f}) |",
        "",
        f"Pruning saved {100 * (1 - epochs(pruned) / epochs(full)):.0f}% of the epochs but "
        f"{100 * (1 - seconds(pruned) / seconds(full)):.0f}% of the trials' time: fitted to both studies, a trial costs "
        f"{per_trial:.1f} s whatever its length (a new process: imports, reading Fashion-MNIST, the first validation) "
        f"and {per_epoch:.2f} s an epoch, so on a model this small the fixed part is a large share; the longer the "
        "epochs, the closer the saving in time comes to the saving in epochs.",
        "",
        f"Random against grid at 9 trials: the grid's best {f['grid']:.4f}, random's {min(r9):.4f} to {max(r9):.4f}. "
        + ("Random found more here, " if statistics.mean(r9) > f["grid"] else "The grid found more here, ")
        + "with 9 learning rates tried against the grid's 3. Learning rate and momentum both matter for SGD (the step "
        "is about lr/(1-β)), so this pair is not the notes' case of one parameter that matters and one that does not; "
        "the figures are as measured (the grid is one study: it has no seed). "
        f"With weight decay in place of momentum (the notes' case), the grid's best {f['wd_grid']:.4f} against "
        f"random's mean {statistics.mean(f['wd_random']):.4f}.",
        "",
        "Both 20-trial studies sample the same values (random sampler, seed 0: the sampler does not look at results),"
        " so the pruned study's saving and its best trial are compared trial for trial.",
    ]
    write_section("tune_study", "\n".join(lines))


if __name__ == "__main__":
    main()
