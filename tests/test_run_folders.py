"""Run folders claimed atomically (runs started at the same moment never share one), and the step curve
written at the step it was computed, in uninterrupted and resumed runs alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import cli, make_mnist_like
from tests.test_runs import ENV
from zoo.commands.runs import RunLogger, claim_version


def test_loggers_resolving_at_the_same_moment_get_their_own_folders(tmp_path):
    # Lightning picks max(version_N) + 1 from a listing and makes the folder later: two loggers asked before
    # either writes both took version_0
    loggers = [RunLogger(save_dir=str(tmp_path), name="LeNet-MNIST") for _ in range(3)]
    assert sorted(lg.version for lg in loggers) == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "LeNet-MNIST").iterdir()) == ["version_0", "version_1", "version_2"]


def test_claim_takes_the_next_number_after_a_collision(tmp_path, monkeypatch):
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_3").mkdir()
    assert claim_version(tmp_path) == 4
    # a rival took version_5 between our listing and our mkdir: we go on to version_6
    real_mkdir = Path.mkdir

    def rival_first(self, *args, **kwargs):
        if self.name == "version_5" and not self.exists():
            real_mkdir(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", rival_first)
    assert claim_version(tmp_path) == 6


@pytest.mark.slow  # three training processes at once
def test_two_fits_started_together_get_two_folders(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    args = [sys.executable, "-m", "zoo.cli", "fit", "--model", "SoftmaxRegression", "--data",
            "tests.fakes.FakeFashionMNIST", "--data.root", "data", "--data.val_size", "50", "--trainer.max_epochs",
            "1", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    runs = sorted((tmp_path / "lightning_logs" / "SoftmaxRegression-FakeFashionMNIST").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1", "version_2"]
    for run in runs:  # each its own config, checkpoints and one event file
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert len(list(run.glob("events.out.tfevents.*"))) == 1


def _step_curve(run: Path) -> dict[int, float]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars("train/loss_step")}


@pytest.fixture
def fashion(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    # 200 training samples / 8 = 25 batches, 23 of them an epoch
    return ["--model", "MLP", "--data", "tests.fakes.FakeFashionMNIST", "--data.root", "data",
            "--data.val_size", "100", "--data.batch_size", "8", "--trainer.limit_train_batches", "23",
            "--trainer.log_every_n_steps", "5", "--trainer.callbacks+=tests.fakes.LossRecorder"]


def test_the_step_curve_is_each_steps_own_loss(tmp_path, fashion):
    run = cli("fit", *fashion, "--trainer.max_epochs", "2")
    losses = run.trainer.callbacks[[type(c).__name__ for c in run.trainer.callbacks].index("LossRecorder")].losses
    assert sorted(losses) == list(range(46))
    curve = _step_curve(Path(run.trainer.log_dir))
    # Lightning writes step s when s + 1 is a multiple of 5: every such step, across the epoch boundary
    assert sorted(curve) == [4, 9, 14, 19, 24, 29, 34, 39, 44]
    for step, value in curve.items():
        assert value == pytest.approx(losses[step], rel=1e-6), step


def test_a_resumed_run_draws_the_same_step_curve(tmp_path, fashion):
    whole = cli("fit", *fashion, "--trainer.max_epochs", "2")
    expected = _step_curve(Path(whole.trainer.log_dir))
    cli("fit", *fashion, "--trainer.max_epochs", "1")  # version_1: one epoch, then continued to two
    resumed = cli("fit", *fashion, "--trainer.max_epochs", "2", "--ckpt_path",
                  "lightning_logs/MLP-FakeFashionMNIST/version_1/checkpoints/last.ckpt")
    assert Path(resumed.trainer.log_dir).name == "version_1"
    curve = _step_curve(Path(resumed.trainer.log_dir))
    assert sorted(curve) == sorted(expected) == [4, 9, 14, 19, 24, 29, 34, 39, 44]
    for step in expected:
        assert curve[step] == pytest.approx(expected[step], rel=1e-6), step


def test_best_and_last_take_the_run_of_the_settings_given(tmp_path, fashion):
    base = [*fashion[:-1], "--trainer.max_epochs", "1"]  # (without the loss recorder)
    cli("fit", *base, "--optimizer.lr", "0.1")  # version_0
    cli("fit", *base, "--optimizer.lr", "0.5")  # version_1, the newest
    runs = tmp_path / "lightning_logs" / "MLP-FakeFashionMNIST"
    test = cli("test", *base, "--optimizer.lr", "0.1", "--ckpt_path", "best")
    assert Path(test.config.test.ckpt_path).resolve() == runs / "version_0" / "checkpoints" / "best.ckpt"
    # a resume with other settings starts a run of its own instead of continuing another's
    other = cli("fit", *base[:-1], "2", "--optimizer.lr", "0.3", "--ckpt_path", "last")
    assert Path(other.trainer.log_dir) == runs / "version_2" and other.config.fit.ckpt_path is None
    same = cli("fit", *base[:-1], "2", "--optimizer.lr", "0.1", "--ckpt_path", "last")
    assert Path(same.trainer.log_dir) == runs / "version_0" and same.trainer.current_epoch == 2
    # with no model or data named: the newest checkpoint of any run, as before
    anyone = cli("test", "--ckpt_path", "best")
    assert Path(anyone.config.test.ckpt_path).resolve() == runs / "version_0" / "checkpoints" / "best.ckpt"


def test_a_claim_survives_its_parent_removed_meanwhile(tmp_path, monkeypatch):
    # a run that failed before training removes its empty <Model>-<Data>/ folder while another run claims in it
    root = tmp_path / "LeNet-MNIST"
    real_mkdir = Path.mkdir
    removed = []

    def parent_gone_once(self, *args, **kwargs):
        if self.name == "version_0" and not removed:
            removed.append(self)
            root.rmdir()
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", parent_gone_once)
    assert claim_version(root) == 0 and (root / "version_0").is_dir() and removed
