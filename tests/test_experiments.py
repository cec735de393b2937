"""The first two experiments end to end: what they learn, what they log, how their checkpoints come back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CONFIGS, SHARED_DATASETS, cli, fit_then_test


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


def test_tensorboard_logs_scalars_hparams_images(fake_fashion):
    root, _ = fake_fashion
    common = ["-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root), "--data.val_size", "50"]
    fit = cli("fit", *common, "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1")
    assert Path(fit.trainer.logger.log_dir) == Path("lightning_logs/SoftmaxRegression-FashionMNIST/version_0").resolve()
    events = EventAccumulator(str(_event_file(fit)), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_step", "train/acc", "val/loss", "val/acc", "val/samples",
            "train/samples_per_sec", "lr-SGD"} <= scalars
    assert len(events.Scalars("val/acc")) == 2 and "hp_metric" not in scalars
    assert events.Scalars("lr-SGD")[0].value == pytest.approx(0.1)
    # hyperparameters with the run's results attached: what TensorBoard's HPARAMS tab compares
    content = events.PluginTagToContent("hparams")
    for name in (b"model/num_classes", b"Batch size", b"LR"):
        assert name in content["_hparams_/session_start_info"]
    assert b"hp/best_val_acc" in content["_hparams_/experiment"]
    assert "hp/best_val_acc" in scalars
    (grid,) = events.Images("inputs/train")
    assert grid.width > 200

    test = cli("test", *common, "--ckpt_path", "best")
    assert test.trainer.logger.log_dir == fit.trainer.logger.log_dir  # the test of the run's checkpoint: in its folder
    events = EventAccumulator(test.trainer.logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"test/loss", "test/acc", "test/samples", "hp/test_acc"} <= set(events.Tags()["scalars"])
    (matrix,) = events.Images("test/confusion_matrix")
    assert matrix.width > 400 and matrix.height > 400


def test_confusion_image_draws_counts_and_class_accuracy():
    from zoo.training.images import confusion_image

    cm = torch.tensor([[8, 2], [1, 9]])
    image = confusion_image(cm, ["cat", "dog"])
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    # the correct-prediction cells are blue, the errors red, each as dark as its share of the row
    cell = image[:, 30 + 20, 8 + 7 * 3 + 20]  # row 0, column 0: 80% of the cats
    assert cell[2] == 255 and cell[0] < 80


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
    assert Path(run.config.test.ckpt_path) == Path("lightning_logs/SoftmaxRegression-FashionMNIST/version_0/checkpoints/best.ckpt")
    from zoo_common import ConfigError

    with pytest.raises(ConfigError, match="no best.ckpt of SoftmaxRegression of SyntheticPoints"):
        cli("test", "--model", "SoftmaxRegression", "--data", "SyntheticPoints", "--ckpt_path", "best")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").exists(), reason="needs the real Fashion-MNIST copy")
def test_softmax_regression_on_real_fashion_mnist():
    acc = fit_then_test(CONFIGS / "softmax_fashion_mnist.yaml", SHARED_DATASETS)
    assert acc >= 0.82, acc  # the book's run ends near 0.83


def test_early_stopping_from_the_command_line():
    run = cli("fit", "-c", str(CONFIGS / "linreg_synthetic.yaml"), "--trainer.max_epochs", "50",
              "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/loss",
              "--trainer.callbacks.patience", "2")
    assert run.trainer.early_stopping_callback is not None
    assert run.trainer.current_epoch < 50  # stopped once val/loss stalled
