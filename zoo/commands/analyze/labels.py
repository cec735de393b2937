"""Likely label errors by confident learning (cleanlab), from out-of-sample probabilities: the model's own for a
set it did not train on; for the training set, K models each trained without one fold (``--folds K``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from zoo.commands.analyze.errors import caption, grid, write_csv
from zoo.commands.analyze.predictions import Examples
from zoo.training.images import save_png
from zoo_common import ConfigError, die_with_parent

QUIET_S = 10.0


def require_cleanlab() -> None:
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        raise ConfigError("label issues need cleanlab: pip install -e '.[analyze]' (or leave them out with --top 0)") from None


def rank(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, score, flagged): examples from most to least likely mislabelled; the label quality score
    (cleanlab's self-confidence: the probability of the given label, low = suspect); cleanlab's
    ``find_label_issues`` verdict (confident learning, pruned by the estimated noise rates)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    p, y = probs.double().numpy(), labels.numpy()
    p = p / p.sum(axis=1, keepdims=True)
    score = torch.from_numpy(get_label_quality_scores(y, p, method="self_confidence"))
    flagged = torch.from_numpy(find_label_issues(y, p, filter_by="prune_by_noise_rate"))
    # flagged examples first, each group by score (ties: position)
    order = torch.from_numpy((score.numpy() + 2.0 * (~flagged.numpy())).argsort(kind="stable"))
    return order, score, flagged


def write_label_issues(out: Path, data: Examples, probs: torch.Tensor, classes: list[str], top: int,
                       datamodule) -> tuple[torch.Tensor, torch.Tensor]:
    """label_issues.csv (at least ``top`` rows, every flagged one) and label_issues.png; (the flagged examples'
    positions in their source, the picture)."""
    order, score, flagged = rank(probs, data.labels)
    count = max(top, int(flagged.sum()))
    rows = []
    for i in order[:count].tolist():
        position, file = data.ids(i)
        suggested = int(probs[i].argmax())
        rows.append([position, file, classes[int(data.labels[i])], classes[suggested], round(float(score[i]), 5),
                     bool(flagged[i]), round(float(probs[i, suggested]), 4)])
    write_csv(out / "label_issues.csv", ["index", "file", "given_label", "suggested_label", "label_quality",
                                         "flagged", "suggested_probability"], rows)
    shown = order[:min(count, 32)].tolist()
    picture = grid(datamodule, data, shown, lambda i: caption(data, probs, classes, i, verb="suggested"))
    save_png(picture, out / "label_issues.png")
    return data.index[flagged], picture


# --- out-of-sample probabilities of the training set: K models, each without one fold -----------------------


def fold_folder(out: Path, fold: int) -> Path:
    return out / "folds" / f"fold_{fold}"


def train_fold(config: Path, out: Path, folds: int, fold: int, overrides: list[str]) -> Path:
    """Train (or resume, or find done) the model without fold ``fold``; its run folder. Each is an ordinary run:
    ``zoo fit --config`` of the analysed run's config.yaml, the fold held out by ``--data.folds/--data.fold``."""
    run = fold_folder(out, fold)
    done = run / "fold_done"
    if done.exists():
        print(f"Fold {fold + 1} of {folds}: trained before, in {run}", flush=True)
        return run
    last = run / "checkpoints" / "last.ckpt"
    words = ["--config", str(config), "--data.folds", str(folds), "--data.fold", str(fold),
             "--trainer.enable_progress_bar", "false", *overrides]
    if last.exists():
        words += ["--ckpt_path", str(last)]
        print(f"Fold {fold + 1} of {folds}: resuming {run}", flush=True)
    else:
        shutil.rmtree(run, ignore_errors=True)  # a start killed before its first checkpoint
        words += ["--trainer.logger.init_args.save_dir", str(run.parent.parent),
                  "--trainer.logger.init_args.name", run.parent.name, "--trainer.logger.init_args.version", run.name]
        print(f"Fold {fold + 1} of {folds}: training without it in {run}", flush=True)
    command = [sys.executable, "-m", "zoo.cli", "fit", *words]
    # the fold imports what this process can (a DataModule of the user's own, found on this process's path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run.parent.mkdir(parents=True, exist_ok=True)
    log_path = run.parent / f"fold_{fold}.log"
    said, stopped = [time.monotonic()], []
    with open(log_path, "a") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, errors="replace", preexec_fn=die_with_parent,
                                                      env=env) as child:
        def quiet_too_long() -> None:
            while child.poll() is None:
                if time.monotonic() - said[0] >= QUIET_S:
                    said[0] = time.monotonic()
                    print(f"  fold {fold + 1}: starting or validating ...", flush=True)
                time.sleep(1)

        def stop(signum, frame) -> None:  # the fold saves last.ckpt and stops; then this command stops
            stopped.append(signum)
            child.send_signal(signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            threading.Thread(target=quiet_too_long, daemon=True).start()
            for line in child.stdout:
                log.write(line)
                if line.startswith("Epoch "):
                    said[0] = time.monotonic()
                    print(f"  fold {fold + 1}: {line.rstrip()}", flush=True)
            child.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
    if stopped:
        kept = " (its last.ckpt kept)" if last.exists() else ""
        print(f"stopped by SIGTERM during fold {fold + 1} of {folds}{kept}; run the same zoo analyze again to resume",
              file=sys.stderr, flush=True)
        raise SystemExit(143)
    if child.returncode:
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise ConfigError(f"fold {fold + 1} of {folds} failed: {tail[0] if tail else 'no output'} (its log: {log_path}; "
                          "run zoo analyze again to resume)")
    done.write_text("")
    return run


def fold_probabilities(module, datamodule, data: Examples, runs: list[Path]) -> torch.Tensor:
    """Each training example's probabilities from the fold model that did not train on it. The folds are the
    ones ``--data.folds`` deals out (the same seeded shuffle of the same training examples)."""
    import copy

    from datamodules.curation import fold_ids
    from zoo.commands.analyze.predictions import probabilities

    which = fold_ids(len(data), len(runs), datamodule.seed)
    out = torch.empty(len(data), datamodule.num_classes)
    for fold, run in enumerate(runs):
        rows = torch.nonzero(which == fold).flatten()
        model = copy.deepcopy(module)
        state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
        out[rows] = probabilities(model, datamodule, data.subset(rows))
    return out
