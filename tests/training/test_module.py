"""The shared LightningModule: the step curve is each step's own loss, also across a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import cli


def _step_curve(run: Path) -> dict[int, float]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars("train/loss_step")}


def test_the_step_curve_is_each_steps_own_loss(tmp_path, mlp_fashion):
    run = cli("fit", *mlp_fashion, "--trainer.max_epochs", "2")
    losses = run.trainer.callbacks[[type(c).__name__ for c in run.trainer.callbacks].index("LossRecorder")].losses
    assert sorted(losses) == list(range(46))
    curve = _step_curve(Path(run.trainer.log_dir))
    # Lightning writes step s when s + 1 is a multiple of 5: every such step, across the epoch boundary
    assert sorted(curve) == [4, 9, 14, 19, 24, 29, 34, 39, 44]
    for step, value in curve.items():
        assert value == pytest.approx(losses[step], rel=1e-6), step


def test_a_resumed_run_draws_the_same_step_curve(tmp_path, mlp_fashion):
    whole = cli("fit", *mlp_fashion, "--trainer.max_epochs", "2")
    expected = _step_curve(Path(whole.trainer.log_dir))
    cli("fit", *mlp_fashion, "--trainer.max_epochs", "1")  # version_1: one epoch, then continued to two
    resumed = cli("fit", *mlp_fashion, "--trainer.max_epochs", "2", "--ckpt_path",
                  "lightning_logs/MLP-FakeFashionMNIST/version_1/checkpoints/last.ckpt")
    assert Path(resumed.trainer.log_dir).name == "version_1"
    curve = _step_curve(Path(resumed.trainer.log_dir))
    assert sorted(curve) == sorted(expected) == [4, 9, 14, 19, 24, 29, 34, 39, 44]
    for step in expected:
        assert curve[step] == pytest.approx(expected[step], rel=1e-6), step


def test_best_ckpt_is_the_epoch_of_the_best_val_acc_and_last_ckpt_the_last(tmp_path, monkeypatch):
    """val/acc scripted to 0.5, 0.9, 0.7: best.ckpt holds the second epoch (higher is better), last.ckpt the third."""
    import torch

    from tests.helpers import make_mnist_like

    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    (tmp_path / "script.yaml").write_text("trainer:\n  callbacks:\n    - class_path: tests.helpers.fakes.ScriptedMetric\n"
                                          "      init_args: {name: val/acc, values: [0.5, 0.9, 0.7]}\n")
    monkeypatch.chdir(tmp_path)
    run = cli("fit", "--model", "SoftmaxRegression", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root",
              "data", "--data.val_size", "50", "--trainer.max_epochs", "3", "-c", "script.yaml")
    folder = Path(run.trainer.checkpoint_callback.dirpath)
    best = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=False)
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)
    assert (best["epoch"], last["epoch"]) == (1, 2)
    assert best["global_step"] < last["global_step"]
