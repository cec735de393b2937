"""zoo reproduce's verdict, without the training: a run whose best checkpoint holds the card's tensors is
identical bit for bit (the sha256 of the safetensors file it makes is the card's); one that differs is
compared by its test accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.commands import reproduce
from zoo.weights import catalogue

ENTRY = catalogue.find("SoftmaxRegression", "FASHIONMNIST_V1")


def fake_training(tensors: dict[str, torch.Tensor]):
    """A stand-in for the recipe's training: a run folder whose best.ckpt holds ``tensors`` as the network's."""
    def train(recipe, root, folder, log, show=None) -> Path:
        show("Epoch 1/10, batch 7/235, train/loss 2.1000; 0:10 elapsed, about 5:40 left")  # the fit's progress line
        run = Path(folder) / "run"
        (run / "checkpoints").mkdir(parents=True)
        torch.save({"state_dict": {f"net.{k}": v for k, v in tensors.items()}}, run / "checkpoints" / "best.ckpt")
        return run
    return train


def test_the_cards_tensors_are_identical_bit_for_bit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "train", fake_training(load_file(ENTRY.packaged)))
    assert reproduce.reproduce([ENTRY.model, ENTRY.name, "--data.root", str(tmp_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"sha256 of the retrained file: {ENTRY.sha256}" in out and "Identical" in out
    assert "\n  Epoch 1/10, batch 7/235, train/loss 2.1000; 0:10 elapsed, about 5:40 left\n" in out


@pytest.mark.parametrize("accuracy, code", [(None, 0), (-0.02, 1)])
def test_other_tensors_are_compared_by_their_test_accuracy(tmp_path, monkeypatch, capsys, accuracy, code):
    tensors = load_file(ENTRY.packaged)
    tensors["1.bias"] = tensors["1.bias"] + 1e-6  # one weight's last bits
    monkeypatch.setattr(reproduce, "train", fake_training(tensors))
    card = ENTRY.metrics["test_acc"]
    monkeypatch.setattr(reproduce, "measure_test", lambda words, cwd: {"test/acc": card + (accuracy or 0.0)})
    assert reproduce.reproduce([ENTRY.model, ENTRY.name, "--data.root", str(tmp_path), "--out", str(tmp_path)]) == code
    out = capsys.readouterr().out
    assert "Different bits" in out and "Identical" not in out and ENTRY.sha256 not in out.split("card:")[0]
    assert ("NOT within" in out) == (code == 1)


def test_the_retraining_shows_the_fits_progress_and_is_never_quiet_for_long(tmp_path, monkeypatch):
    """zoo reproduce once printed its command and then nothing for 5 minutes: the fit's progress lines are passed
    on, and while it prints none (starting, validating) a line says what it is doing (here every 0.3 s)."""
    import io
    import time

    from zoo.weights import recipes
    from zoo.weights import train as training

    best = tmp_path / "out" / "lightning_logs" / "M-D" / "version_0" / "checkpoints" / "best.ckpt"

    class Fit:  # the fit's output as it comes: a slow start, a progress line, a long validation
        def __init__(self, command, **kwargs):
            self.returncode = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def poll(self):
            return self.returncode

        @property
        def stdout(self):
            time.sleep(1.0)
            yield "Run folder: somewhere (TensorBoard logs, config.yaml, checkpoints/)\n"
            yield "Epoch 1/2, batch 3/4, train/loss 0.5000; 0:10 elapsed, about 0:03 left\n"
            time.sleep(1.0)
            best.parent.mkdir(parents=True)
            best.write_bytes(b"")
            self.returncode = 0

    monkeypatch.setattr(training, "QUIET_S", 0.3)
    monkeypatch.setattr(training.subprocess, "Popen", Fit)
    shown, log = [], io.StringIO()
    run = training.train(recipes.find("LeNet", "FASHIONMNIST_V1"), tmp_path, tmp_path / "out", log, show=shown.append)
    assert run == best.parent.parent
    assert "Run folder: somewhere" in log.getvalue()  # the whole output in the log
    first = shown.index("Epoch 1/2, batch 3/4, train/loss 0.5000; 0:10 elapsed, about 0:03 left")
    assert first >= 2 and all(s.startswith("starting: importing PyTorch") for s in shown[:first - 1]), shown
    assert len(shown) - first >= 2 and all(s.startswith("still training") for s in shown[first + 1:]), shown
