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
