"""Answers that need no model start at once: ``zoo --version``, ``zoo --help`` and ``zoo weights`` import neither
torch nor Lightning (seconds on a small machine). Seen in a fresh process, the way a user runs them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ENV

HEAVY = ("torch", "lightning", "jsonargparse", "torchvision", "torchmetrics", "numpy", "optuna", "onnx", "litserve")


@pytest.mark.parametrize("words", [["--version"], ["--help"], [], ["weights"], ["weights", "LeNet", "FASHIONMNIST_V1"],
                                   ["serve", "--help"], ["reproduce", "--help"]],
                         ids=["version", "help", "nothing", "weights", "card", "serve help", "reproduce help"])
def test_answers_that_need_no_model_import_no_framework(words):
    probe = (f"import sys\nfrom zoo.cli import main\ntry:\n    main({words!r})\nexcept SystemExit as e:\n"
             f"    assert e.code in (0, None)\nprint('IMPORTED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "IMPORTED []", lines[-1]
    assert len(lines) >= 2  # and it answered


def test_the_version_names_torch_and_lightning_as_installed():
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-m", "zoo.cli", "--version"], env=ENV, capture_output=True, text=True,
                         timeout=120)
    import torch

    assert out.stdout.strip() == (f"d2l-zoo {version('d2l-zoo')} (torch {torch.__version__}, "
                                  f"lightning {version('lightning')})")
