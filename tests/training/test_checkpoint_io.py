"""Checkpoints written whole or not at all: atomically, and a kill during a write leaves nothing after the resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import cli, zoo


def test_checkpoints_are_written_atomically(fake_fashion, tmp_path, monkeypatch):
    from zoo.training.checkpoint_io import AtomicCheckpointIO

    root, _ = fake_fashion
    run = cli("fit", "--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--trainer.max_epochs", "1")
    assert isinstance(run.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    ckpt = Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    good = ckpt.read_bytes()

    def killed_half_way(obj, f, *args, **kwargs):  # what a kill during the write leaves: some bytes, no end
        f.write(good[: len(good) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        run.trainer.save_checkpoint(ckpt)
    monkeypatch.undo()
    assert ckpt.read_bytes() == good  # the old checkpoint is untouched and still loads
    torch.load(ckpt, map_location="cpu", weights_only=True)
    assert not [p for p in ckpt.parent.iterdir() if p.name.endswith(".part")]  # no half file left behind


@pytest.mark.slow  # starts several processes
def test_a_kill_during_a_checkpoint_write_leaves_nothing_after_the_resume(tmp_path, fashion):
    fit = ["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "2", "--checkpoint_every_n_steps", "3"]
    out = zoo([*fit, "--trainer.callbacks+=tests.helpers.fakes.KillMidWrite", "--trainer.callbacks.at", "2"], tmp_path)
    assert out.returncode == -9, out.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").glob("*/version_*")
    assert len(list((run / "checkpoints").glob(".last.ckpt.*.part"))) == 1  # the half-written file of the kill
    out = zoo([*fit, "--ckpt_path", "last"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((tmp_path / "lightning_logs").glob("*/version_*")) == [run]
    assert not list(tmp_path.rglob("*.part"))
