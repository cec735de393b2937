"""Planted label noise, found again and taken out: `zoo analyze --folds` measured, then the retraining it buys.

    python benchmarks/label_noise.py --root ../shared/datasets [--data MNIST FashionMNIST] [--seeds 3] [--epochs 5]

For each dataset: `zoo fit` of the MLP (configs/mlp_<data>.yaml, --epochs 5) with 10 % of the training labels
flipped (--data.label_noise 0.1), then `zoo analyze --split train --folds 5` of it: precision and recall of the
flagged examples against the planted flips (label_noise.csv). Then, for each seed, the test accuracy of three
runs: clean labels, noisy labels, and noisy labels less the flagged examples (--data.exclude). Every command is
a whole `zoo` process, as a user types it; the commands are written beside the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

NOISE = 0.1
FOLDS = 5


def zoo(*words: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "zoo.cli", *words], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"zoo {' '.join(words)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def run_folder(output: str) -> Path:
    line = next(ln for ln in output.splitlines() if ln.startswith("Run folder: "))
    return Path(line.removeprefix("Run folder: ").split()[0].rstrip(";"))


def fit_and_test(config: str, root: str, seed: int, extra: list[str], work: Path, epochs: int) -> float:
    out = zoo("fit", "-c", config, "--data.root", root, "--trainer.max_epochs", str(epochs), "--seed_everything",
              str(seed), "--trainer.enable_progress_bar", "false", *extra, cwd=work)
    run = run_folder(out)
    zoo("test", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--data.root", root,
        "--trainer.enable_progress_bar", "false", cwd=work)
    return json.loads((run / "test_metrics.json").read_text())["metrics"]["test/acc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(p)
    p.add_argument("--root", default="../shared/datasets")
    p.add_argument("--data", nargs="+", default=["MNIST", "FashionMNIST"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    root = str(Path(args.root).resolve())
    work = Path(tempfile.mkdtemp(prefix="label_noise_"))
    rows, found = [], []
    for data in args.data:
        config = str(REPO / "configs" / f"mlp_{'mnist' if data == 'MNIST' else 'fashion_mnist'}.yaml")
        noisy = ["--data.label_noise", str(NOISE), "--data.label_noise_seed", "0"]
        out = zoo("fit", "-c", config, "--data.root", root, "--trainer.max_epochs", str(args.epochs),
                  "--trainer.enable_progress_bar", "false", *noisy, cwd=work)
        run = run_folder(out)
        zoo("analyze", "--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--split", "train", "--folds",
            str(FOLDS), "--data.root", root, cwd=work)
        result = json.loads((run / "analysis" / "train" / "diagnosis.json").read_text())
        check = result["label_issues"]["against_planted_noise"]
        found.append((data, check))
        flagged = work / f"{data}_flagged.csv"
        with open(run / "analysis" / "train" / "label_issues.csv", newline="") as f, open(flagged, "w") as g:
            g.write("index\n" + "".join(f"{r['index']}\n" for r in csv.DictReader(f) if r["flagged"] == "True"))
        print(f"{data}: precision {check['precision']:.3f}, recall {check['recall']:.3f}", flush=True)
        accs = {"clean": [], "noisy": [], "cleaned": []}
        for seed in range(args.seeds):
            accs["clean"].append(fit_and_test(config, root, seed, [], work, args.epochs))
            accs["noisy"].append(fit_and_test(config, root, seed, noisy, work, args.epochs))
            accs["cleaned"].append(fit_and_test(config, root, seed, [*noisy, "--data.exclude", str(flagged)], work,
                                                  args.epochs))
            print(f"{data} seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in accs.items()), flush=True)
        rows.append((data, accs))
    data_words = " ".join(args.data)
    body = "\n".join([
        f"## Label noise: planted, found by `zoo analyze --folds`, taken out ({args.epochs} epochs)", "",
        f"`python benchmarks/label_noise.py --root {args.root} --data {data_words} --seeds {args.seeds} "
        f"--epochs {args.epochs}`", "",
        f"Machine: {machine()}. MLP (configs/mlp_<data>.yaml, {args.epochs} epochs). Noisy: `--data.label_noise {NOISE} "
        f"--data.label_noise_seed 0` (10 % of the 55,000 training labels flipped to another class; validation and "
        f"test clean). Found: `zoo fit ... --data.label_noise {NOISE}`, then `zoo analyze --ckpt_path "
        f"<run>/checkpoints/best.ckpt --split train --folds {FOLDS}` ({FOLDS} fold models of the same config, "
        "cleanlab's confident learning on their out-of-sample probabilities), the flagged examples compared with "
        "label_noise.csv. Cleaned: the noisy run's config plus `--data.exclude flagged.csv` (the rows of "
        "label_issues.csv with flagged True).", "",
        "| data | planted | flagged | found | precision | recall |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {d} | {c['planted']:,} | {c['flagged']:,} | {c['found']:,} | {c['precision']:.3f} | {c['recall']:.3f} |"
          for d, c in found],
        "",
        "| data | test acc, clean labels | noisy | noisy less the flagged | seeds |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {d} | {statistics.mean(a['clean']):.4f} | {statistics.mean(a['noisy']):.4f} | "
          f"{statistics.mean(a['cleaned']):.4f} | " + "; ".join(
              f"{a['clean'][s]:.4f} / {a['noisy'][s]:.4f} / {a['cleaned'][s]:.4f}" for s in range(len(a["clean"])))
          + " |" for d, a in rows],
        "",
        "Test accuracy is the mean over seeds (`--seed_everything 0..N-1`: the initial weights; the split and the "
        "flipped labels stay the same); each seed's clean / noisy / cleaned in the last column.",
    ])
    write_section("label_noise" if args.epochs == 5 else f"label_noise_{args.epochs}_epochs", body)


if __name__ == "__main__":
    main()
