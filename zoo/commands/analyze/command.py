"""``zoo analyze``: what to do next about a trained model, the way the course teaches it: bias, variance and
mismatch from the errors; the errors themselves; a manual review; the labels that are likely wrong."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.commands.help import asks_for_help, own_options
from zoo_common import ConfigError

USAGE = """usage: zoo analyze [--split train|val|test] [--output DIR] [OPTIONS] MODEL OPTIONS
       zoo analyze --tally review.csv [--error PERCENT]

MODEL OPTIONS choose the model as `zoo test` does:
  --ckpt_path best|last|FILE                      a checkpoint of `zoo fit` (its model and data come with it)
  --model NAME --model.weights NAME --data NAME   the zoo's own trained weights (`zoo weights` lists them)
and the data's options (--data.root DIR, ...).

  --split S            the set whose errors are analysed: train, val (default) or test
  --output DIR         default: analysis/<split>/ in the checkpoint's run folder, or
                       exports/<Model>.<WEIGHTS>.analysis/<split>/ for trained weights by name
  --reference_error E  human-level error in per cent, standing in for the Bayes error (default 0)
  --min_gap G          a gap counts as large from G points (and a quarter of the error) on (default 0.5)
  --train_samples N    the training error from N examples drawn at random (default 0: all of them)
  --top_losses N       examples with the highest loss in top_losses.csv/.png (default 32)
  --review N           misclassified examples drawn at random into review.csv for a person to categorise (100)
  --top N              rows of label_issues.csv at least, most likely mislabelled first (default 100; 0: none)
  --folds K            --split train: train K models (the run's own config, each without one fold) for
                       out-of-sample probabilities; each fold is a run folder, resumed if interrupted
  --seed S             seed of the samples drawn (default 0)
  --tally FILE         count the categories of a filled-in review.csv and print each one's ceiling

Writes diagnosis.json, per_class.csv, confusion.png, most_confused.csv, top_losses.csv/.png, review.csv/.png,
label_issues.csv/.png into DIR, and the diagnosis, confusion matrix and pictures to the run's TensorBoard.
"""

SPLITS = ("train", "val", "test")


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="zoo analyze", add_help=False, allow_abbrev=False)
    parser.add_argument("--split", default="val")
    parser.add_argument("--output", default=None)
    parser.add_argument("--reference_error", type=float, default=0.0)
    parser.add_argument("--min_gap", type=float, default=0.5)
    parser.add_argument("--train_samples", type=int, default=0)
    parser.add_argument("--top_losses", type=int, default=32)
    parser.add_argument("--review", type=int, default=100)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--folds", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tally", default=None)
    parser.add_argument("--error", type=float, default=None)
    ours, rest = own_options(parser, argv)
    if ours.split not in SPLITS:
        raise ConfigError(f"--split {ours.split}: choose train, val or test")
    if ours.folds and ours.split != "train":
        raise ConfigError(f"--folds {ours.folds} is for --split train (the model's own probabilities are already "
                          f"out of sample on {ours.split})")
    if ours.folds < 0 or ours.folds == 1:
        raise ConfigError(f"--folds {ours.folds}: give 2 or more (5 is usual)")
    for name in ("train_samples", "top_losses", "review", "top"):
        if getattr(ours, name) < 0:
            raise ConfigError(f"--{name} {getattr(ours, name)}: give a count >= 0")
    if not 0 <= ours.reference_error < 100:
        raise ConfigError(f"--reference_error {ours.reference_error}: give a per cent in [0, 100)")
    return ours, rest


def main(argv: list[str]) -> None:
    if asks_for_help(argv, USAGE):
        return
    ours, rest = parse(argv)
    if ours.tally:
        from zoo.commands.analyze.review import tally

        print(tally(ours.tally, ours.error))
        return
    if ours.top:
        from zoo.commands.analyze.labels import require_cleanlab

        require_cleanlab()
    print("Loading the model and the data ...", file=sys.stderr, flush=True)
    from zoo.commands.lightning import with_model

    with_model(rest, lambda model, data, ckpt, weights: analyze(model, data, ckpt, weights, ours))


def default_output(ckpt: str | None, model: str, weights: str | None, split: str) -> Path:
    from zoo.training.runs import run_folder

    if ckpt:
        run = run_folder(ckpt)
        return (run if run else Path(ckpt).resolve().parent) / "analysis" / split
    return Path("exports") / f"{model}.{weights}.analysis" / split


def roles(datamodule) -> dict[str, str]:
    """What each held-out set is to the diagnosis: the validation split is a train-dev set when carved out of
    the training data, a dev set when the data has one of its own (an image folder's val/)."""
    own_dev = "val" in getattr(datamodule, "listing", {})
    out = {"train": "train", "val": "dev" if own_dev else "train_dev"}
    if getattr(datamodule, "train_dev_set", None) is not None:
        out["train_dev"] = "train_dev"
    return out


NAMES = {"train": "training", "train_dev": "train-dev", "dev": "dev", "test": "test"}


def analyze(module, datamodule, ckpt: str | None, weights: str | None, options: argparse.Namespace) -> Path:
    import torch

    from zoo.commands.analyze import diagnosis, errors, labels
    from zoo.commands.analyze.predictions import error_rate, examples, probabilities
    from zoo.training.runs import run_folder
    from zoo_common import atomic_write_text

    if not ckpt and not weights:
        raise ConfigError("zoo analyze needs a trained model: --ckpt_path best (a run of `zoo fit`), or "
                          "--model.weights NAME (`zoo weights` lists the zoo's)")
    if not hasattr(datamodule, "example_files"):
        raise ConfigError(f"zoo analyze reads classifiers of images; {type(datamodule).__name__} is not an image "
                          "DataModule")
    model_name = type(module).__name__
    out = Path(options.output) if options.output else default_output(ckpt, model_name, weights, options.split)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--output {out}: cannot make the folder ({e.strerror}); choose another with --output DIR") from None
    datamodule.prepare_data()
    datamodule.setup("fit")
    if options.split == "test":
        datamodule.setup("test")
    classes = [str(c) for c in datamodule.classes] or [str(i) for i in range(datamodule.num_classes)]
    sets = {name: examples(datamodule, name) for name in roles(datamodule)}
    if options.split == "test":
        sets["test"] = examples(datamodule, "test")
    full_train = sets["train"]  # label issues of the training set are found on all of it
    if options.train_samples and options.train_samples < len(full_train):
        chosen = torch.randperm(len(full_train), generator=torch.Generator().manual_seed(options.seed))
        sets["train"] = full_train.subset(chosen[: options.train_samples].sort().values)
    role = {**roles(datamodule), "test": "test"}
    probs, errors_by_role, sizes = {}, {}, {}
    for name, data in sets.items():
        print(f"Predicting the {NAMES[role[name]]} set ({len(data):,} examples) ...", file=sys.stderr, flush=True)
        probs[name] = probabilities(module, datamodule, data)
        errors_by_role[role[name]] = error_rate(probs[name], data.labels)
        sizes[role[name]] = len(data)
    order = ("train", "train_dev", "dev", "test")
    errors_by_role = {k: errors_by_role[k] for k in order if k in errors_by_role}
    result = diagnosis.diagnose(errors_by_role, options.reference_error, options.min_gap)
    data, p = sets[options.split], probs[options.split]
    result.update(split=options.split, split_error=error_rate(p, data.labels), examples=sizes, model=model_name,
                  source={"ckpt_path": str(Path(ckpt).resolve())} if ckpt else {"weights": f"{model_name}.{weights}"},
                  data=type(datamodule).__name__)
    if getattr(datamodule, "flipped", None):
        result["notes"] = [f"{len(datamodule.flipped['index']):,} training labels were flipped on purpose "
                           f"(--data.label_noise {datamodule.label_noise}): the training error counts them as errors"]
    print(diagnosis.table(result, NAMES))
    for note in result.get("notes", []):
        print(note)

    pictures = errors.write_errors(out, datamodule, data, p, classes, options.top_losses, options.review, options.seed)
    if options.top:
        issues_on, issues_p = data, p
        if options.split == "train":
            if not options.folds:
                print("Label issues of the training set need out-of-sample probabilities: add --folds K (e.g. 5).")
                issues_on = None
            else:
                issues_on, issues_p = full_train, fold_probs(module, datamodule, full_train, ckpt, out, options)
        if issues_on is not None:
            found, picture = labels.write_label_issues(out, issues_on, issues_p, classes, options.top, datamodule)
            pictures["label_issues"] = picture
            flagged = len(found)
            result["label_issues"] = {"flagged": flagged, "examples": len(issues_on),
                                      "folds": options.folds if options.split == "train" else 0}
            planted = planted_check(datamodule, issues_on, found) if options.split == "train" else None
            if planted:
                result["label_issues"]["against_planted_noise"] = planted
            print(f"Label issues: {flagged:,} of {len(issues_on):,} examples flagged; ranked in {out / 'label_issues.csv'}"
                  + (f" (against the planted flips: precision {planted['precision']:.3f}, recall {planted['recall']:.3f})"
                     if planted else ""))
    atomic_write_text(out / "diagnosis.json", json.dumps(result, indent=2) + "\n")
    run = run_folder(ckpt) if ckpt else None
    if run is not None:
        to_tensorboard(run, ckpt, options.split, result, pictures)
    print(f"Written to {out}: diagnosis.json, per_class.csv, confusion.png, most_confused.csv, top_losses.csv/.png, "
          f"review.csv/.png{', label_issues.csv/.png' if 'label_issues' in result else ''}. Fill in review.csv's "
          f"category column, then: zoo analyze --tally {out / 'review.csv'}")
    return out


def fold_probs(module, datamodule, data, ckpt: str | None, out: Path, options):
    from zoo.commands.analyze import labels
    from zoo.training.runs import run_folder

    run = run_folder(ckpt) if ckpt else None
    if run is None:
        raise ConfigError("--folds trains the run's own config again: give --ckpt_path of a `zoo fit` run "
                          "(best, last, or a file in a run's checkpoints/ folder)")
    root = getattr(datamodule, "root", None)
    overrides = ["--data.root", str(Path(root).resolve())] if root else []
    runs = [labels.train_fold(run / "config.yaml", out, options.folds, k, overrides) for k in range(options.folds)]
    print(f"Predicting each fold with the model that did not train on it ({len(data):,} examples) ...",
          file=sys.stderr, flush=True)
    return labels.fold_probabilities(module, datamodule, data, runs)


def planted_check(datamodule, data, found) -> dict | None:
    """With --data.label_noise: the flagged examples (``found``: positions) against the flips planted."""
    flipped = getattr(datamodule, "flipped", None)
    if not flipped:
        return None
    planted = set(flipped["index"].tolist()) & set(data.index.tolist())
    flagged = set(found.tolist())
    hits = len(flagged & planted)
    return {"planted": len(planted), "flagged": len(flagged), "found": hits,
            "precision": hits / len(flagged) if flagged else 0.0, "recall": hits / len(planted) if planted else 0.0}


def to_tensorboard(run: Path, ckpt: str, split: str, result: dict, pictures: dict) -> None:
    """The diagnosis as text, the pictures as images, in the run analysed (its own event file)."""
    from torch.utils.tensorboard import SummaryWriter

    from zoo.training.runs import read_checkpoint

    step = int(read_checkpoint(ckpt).get("global_step", 0))
    lines = ["| set | error (%) |", "| --- | --- |"]
    lines += [f"| {NAMES.get(k, k)} | {v:.2f} |" for k, v in result["errors"].items()]
    lines += ["", "| gap | points |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result["gaps"].items()]
    lines += ["", f"**{result['diagnosis']}**", ""]
    lines += [f"- {step['problem']}: " + "; ".join(step["try"]) for step in result["next_steps"]]
    writer = SummaryWriter(log_dir=str(run), filename_suffix=".analysis")
    try:
        writer.add_text(f"analysis/{split}/diagnosis", "\n".join(lines), step)
        for name, picture in pictures.items():
            writer.add_image(f"analysis/{split}/{name}", picture, step)
    finally:
        writer.close()
