"""Training a recipe: ``zoo fit`` with its config files and seed, in a folder of its own, timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from zoo.weights.recipes import DATASETS, Recipe

REPO = Path(__file__).resolve().parents[2]  # the checkout: configs/ lies beside zoo/
QUIET_S = 10  # the longest the user waits without a line


def data_root(recipe: Recipe, root: str | os.PathLike) -> str:
    """The ``--data.root`` for this recipe under the folder of datasets the user gives."""
    folder = DATASETS[recipe.data]["folder"]
    return str(Path(root) / folder) if folder else str(root)


def fit_command(recipe: Recipe, root: str | os.PathLike, out: str | os.PathLike | None = None) -> list[str]:
    """The words after ``zoo``: what trained the file (``out``, the run folder's root, left out for display)."""
    words = ["fit"]
    for config in recipe.configs:
        words += ["-c", config]
    words += ["--data.root", data_root(recipe, root), "--seed_everything", str(recipe.seed),
              "--data.seed", str(recipe.seed), *recipe.args]
    if out is not None:
        words += ["--trainer.default_root_dir", str(out)]
    return words


def run_folder(out: Path) -> Path:
    """The one run folder ``zoo fit`` made under ``out``."""
    found = sorted(out.glob("lightning_logs/*/version_*/checkpoints/best.ckpt"))
    if len(found) != 1:
        raise RuntimeError(f"expected one finished run under {out}, found {len(found)}")
    return found[0].parent.parent


def train(recipe: Recipe, root: str | os.PathLike, out: str | os.PathLike, log=None, show=None) -> Path:
    """Train ``recipe`` into ``out`` (which must not hold a run yet); returns the run folder. The wall time
    and the machine go to ``out/train.json``. With ``log`` (a text file), the run's output goes there, and its
    progress lines (one every 10 s at most) to ``show`` too."""
    out = Path(out).resolve()  # zoo fit runs in the checkout (its configs/ are relative)
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "zoo.cli", *fit_command(recipe, root, out), "--trainer.enable_progress_bar", "false"]
    start = time.time()
    if log is None:
        subprocess.run(command, cwd=REPO, check=True)
    else:
        said = [time.monotonic(), "starting: importing PyTorch, reading the data"]

        def quiet_too_long() -> None:  # the fit's own lines come every 10 s once it trains; before, this says so
            while run.poll() is None:
                if time.monotonic() - said[0] >= QUIET_S:
                    said[0] = time.monotonic()
                    show(f"{said[1]} ({time.time() - start:.0f} s)")
                time.sleep(min(0.5, QUIET_S / 3))

        with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace") as run:
            if show is not None:
                threading.Thread(target=quiet_too_long, daemon=True).start()
            for line in run.stdout:
                log.write(line)
                if line.startswith("Run folder: "):
                    said[1] = "training (the first line comes after 10 s)"
                elif line.startswith("Epoch "):
                    said[:] = [time.monotonic(), "still training (validating, or writing a checkpoint)"]
                    if show is not None:
                        show(line.rstrip())
        if run.returncode:
            raise subprocess.CalledProcessError(run.returncode, command)
    seconds = time.time() - start
    (out / "train.json").write_text(json.dumps({"seconds": round(seconds, 1), "seed": recipe.seed}))
    return run_folder(out)
