"""The first two experiments end to end: what they learn, what they log, how their checkpoints come back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CONFIGS, SHARED_DATASETS, cli


def test_linear_regression_learns_the_true_parameters(caplog):
    run = cli("fit", "-c", str(CONFIGS / "linreg_synthetic.yaml"))
    dm = run.datamodule
    assert run.trainer.current_epoch == 3
    assert (dm.batch_size, run.trainer.optimizers[0].param_groups[0]["lr"]) == (10, 0.03)
    torch.testing.assert_close(run.model.w, torch.tensor(dm.w), atol=0.01, rtol=0)
    assert abs(run.model.b.item() - dm.b) < 0.01
    assert "true    w = [2.0, -3.4], b = 4.2000" in caplog.text and "learned w = " in caplog.text


def _event_file(run) -> Path:
    (event,) = Path(run.trainer.logger.log_dir).glob("events.out.tfevents.*")
    return event


def test_tensorboard_logs_scalars_and_hparams(fake_fashion):
    root, _ = fake_fashion
    common = ["-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root), "--data.val_size", "50"]
    fit = cli("fit", *common, "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1")
    assert Path(fit.trainer.logger.log_dir).parent == Path("lightning_logs").resolve()
    events = EventAccumulator(str(_event_file(fit)))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_step", "train/acc", "val/loss", "val/acc"} <= scalars
    # hyperparameters are written as a tensorboard plugin summary (the HPARAMS tab)
    session = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    for name in (b"num_classes", b"input_size", b"batch_size", b"val_size"):
        assert name in session
    assert len(events.Scalars("val/acc")) == 2

    test = cli("test", *common, "--ckpt_path", "best")
    events = EventAccumulator(str(_event_file(test)))
    events.Reload()
    assert {"test/loss", "test/acc"} <= set(events.Tags()["scalars"])


def test_ckpt_best_comes_back_without_repeating_options(fake_fashion):
    root, _ = fake_fashion
    fit = cli("fit", "-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root),
              "--data.val_size", "50", "--trainer.max_epochs", "3")
    ckpt_dir = Path(fit.trainer.checkpoint_callback.dirpath)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best.ckpt", "last.ckpt"]
    best_val = fit.trainer.checkpoint_callback.best_model_score.item()
    # neither model nor data given: both come from the checkpoint
    run = cli("validate", "--ckpt_path", "best")
    assert type(run.model).__name__ == "SoftmaxRegression" and run.datamodule.root == str(root)
    metrics = run.trainer.callback_metrics
    assert metrics["val/acc"].item() == pytest.approx(best_val)
    # an explicit path works the same
    run = cli("validate", "--ckpt_path", str(ckpt_dir / "best.ckpt"))
    assert run.trainer.callback_metrics["val/acc"].item() == pytest.approx(best_val)


def test_ckpt_best_picks_the_run_of_the_same_model(fake_fashion, capsys):
    root, _ = fake_fashion
    cli("fit", "-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root), "--data.val_size", "50",
        "--trainer.max_epochs", "1")
    cli("fit", "-c", str(CONFIGS / "linreg_synthetic.yaml"), "--trainer.max_epochs", "1")  # a newer run of another model
    run = cli("test", "--model", "SoftmaxRegression", "--data", "FashionMNIST", "--data.root", str(root),
              "--ckpt_path", "best")
    assert "version_0" in run.config.test.ckpt_path
    with pytest.raises(SystemExit):
        cli("test", "--model", "SoftmaxRegression", "--data", "SyntheticPoints", "--ckpt_path", "best")
    assert "no best.ckpt of SoftmaxRegression of SyntheticPoints" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").exists(), reason="needs the real Fashion-MNIST copy")
def test_softmax_regression_on_real_fashion_mnist():
    common = ["-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(SHARED_DATASETS)]
    cli("fit", *common)
    run = cli("test", *common, "--ckpt_path", "best")
    acc = run.trainer.callback_metrics["test/acc"].item()
    assert acc >= 0.82, acc  # the book's run ends near 0.83
