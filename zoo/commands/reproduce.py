"""``zoo reproduce MODEL NAME --data.root DIR``: retrain a catalogue entry from its recipe and compare.

On the card's kind of machine (the zoo is bit-exact on the CPU) the retrained file has the card's sha256;
elsewhere its test accuracy is compared with the card's within ``TOLERANCE``.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from zoo.weights import catalogue
from zoo.weights.recipes import find
from zoo.weights.train import REPO, train
from zoo_common import ConfigError, atomic_write

TOLERANCE = 0.01  # absolute test accuracy, where the bits cannot match


# the card's measurements import torch and Lightning: loaded once the training has started, so that the command
# and its first line come at once
def measure_test(words: list[str], cwd: Path) -> dict:
    from zoo.weights.card import measure_test as measure

    return measure(words, cwd)


def hardware() -> dict:
    from zoo.weights.card import hardware as here

    return here()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, as every zoo command's bad input
        raise ConfigError(f"zoo reproduce: {message}; usage: zoo reproduce MODEL NAME --data.root DIR")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="zoo reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the model, e.g. LeNet")
    parser.add_argument("name", help="the weights name, e.g. FASHIONMNIST_V1 (`zoo weights` lists them)")
    parser.add_argument("--data.root", dest="root", required=True,
                        help="the folder holding the datasets (MNIST/, FashionMNIST/, cifar10-images/)")
    parser.add_argument("--out", default=None, help="keep the run in this folder (default: a temporary one)")
    return parser.parse_args(argv)


def reproduce(argv: list[str]) -> int:
    args = parse(argv)
    entry = catalogue.find(args.model, args.name)
    recipe = find(args.model, args.name)
    if entry is None or recipe is None:
        raise ConfigError(catalogue.unknown_name(args.model, args.name))
    if not all((REPO / c).exists() for c in entry.configs):
        raise ConfigError(f"zoo reproduce needs the repository's configs/ ({entry.configs[0]} is not beside this "
                          "installation): run it from a clone installed with pip install -e .")
    minutes = max(1, round(entry.train_seconds / 60))
    print(f"Retraining {entry.model} {entry.name} (about {minutes} min on {entry.hardware['cpu']}):\n  "
          + entry.command.replace("DATA_ROOT", args.root), flush=True)
    root = str(Path(args.root).resolve())  # the training runs in the checkout, not here
    with tempfile.TemporaryDirectory(prefix="zoo-reproduce-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        folder = out / entry.key
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "fit.log", "w") as log:
            try:
                run = train(recipe, root, folder, log, show=lambda line: print(f"  {line}", flush=True))
            except subprocess.CalledProcessError:
                tail = (folder / "fit.log").read_text().strip().splitlines()[-1:]
                raise ConfigError(f"the training failed: {tail[0] if tail else 'no output'} "
                                  f"(its log: {folder / 'fit.log' if args.out else 'pass --out DIR to keep it'})") from None
        print(f"Trained in {run}" if args.out else "Trained.", flush=True)
        import torch

        from zoo.weights.card import weights_bytes

        checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
        blob = weights_bytes(checkpoint, entry.model, entry.name)
        sha = hashlib.sha256(blob).hexdigest()
        print(f"sha256 of the retrained file: {sha}\nsha256 on the card:           {entry.sha256}")
        if sha == entry.sha256:
            print("Identical: the retrained weights are the card's, bit for bit.")
            if not entry.shipped and not entry.cached.exists():
                entry.cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(entry.cached, lambda f: f.write(blob))
                print(f"Kept at {entry.cached}: --model.weights {entry.name} now finds it.")
            return 0
        mine, theirs = hardware(), entry.hardware
        print(f"Different bits (this machine: {mine['cpu']}, {mine['torch_threads']} threads; the card's: "
              f"{theirs['cpu']}, {theirs['torch_threads']} threads). Comparing test accuracy instead.")
        acc = measure_test(["--ckpt_path", str(run / "checkpoints" / "best.ckpt")], REPO)["test/acc"]
        card = entry.metrics["test_acc"]
        ok = abs(acc - card) <= TOLERANCE
        print(f"Test acc {acc:.4f}, the card's {card:.4f}: {'within' if ok else 'NOT within'} {TOLERANCE} of it.")
        return 0 if ok else 1


def main(argv: list[str]) -> None:
    sys.exit(reproduce(argv))
