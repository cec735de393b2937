"""The epoch metrics: exact means over every sample, whatever the batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import cli
from zoo.training.metrics import Count, WeightedMean


def test_the_epoch_loss_weighs_an_uneven_last_batch_by_its_samples(tmp_path):
    """Broken variant: the epoch's loss is the mean of the batch means (a last batch of 2 counts like one of 32)."""
    run = cli("fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--data.num_train", "100",
              "--data.batch_size", "32", "--data.num_val", "66", "--trainer.max_epochs", "1")
    dm, model = run.datamodule, run.model.eval()
    with torch.no_grad():  # the mean squared error over every validation sample, computed apart
        errors = torch.cat([(model(x) - y).pow(2).flatten() for x, y in dm.val_dataloader()])
    assert len(errors) == 66  # batches of 32, 32 and 2
    assert run.trainer.callback_metrics["val/loss"].item() == pytest.approx(errors.mean().item(), rel=1e-5)
    assert run.trainer.callback_metrics["val/samples"].item() == 66


def test_weighted_mean_of_uneven_batches_is_the_mean_over_all_samples():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(103, 5, generator=g), torch.randint(0, 5, (103,), generator=g)
    mean, count = WeightedMean(), Count()
    for lo, hi in ((0, 40), (40, 80), (80, 103), (103, 103)):
        if hi > lo:
            mean.update(F.cross_entropy(logits[lo:hi], target[lo:hi]), hi - lo)
            count.update(hi - lo)
    torch.testing.assert_close(mean.compute(), F.cross_entropy(logits, target))
    assert count.compute().item() == 103


def test_a_nan_shows_in_the_epoch_mean():
    mean = WeightedMean()
    mean.update(torch.tensor(1.0), 3)
    mean.update(torch.tensor(float("nan")), 2)
    assert math.isnan(mean.compute().item())


def test_accuracy_equals_torchmetrics_micro_accuracy_over_uneven_batches():
    """The two-counter accuracy of every stage against torchmetrics' MulticlassAccuracy (micro), the metric it
    replaced: the same value over batches of 32, 32, 32 and 7, ties in the logits included."""
    from torchmetrics.classification import MulticlassAccuracy

    from zoo.training.metrics import Accuracy

    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(103, 10, generator=g), torch.randint(0, 10, (103,), generator=g)
    logits[:5] = 0.0  # all tied: the first class counts as predicted, in both
    ours, theirs = Accuracy(), MulticlassAccuracy(10, average="micro")
    for x, y in zip(logits.split(32), target.split(32)):
        ours.update(x, y)
        theirs.update(x, y)
    assert ours.compute().item() == pytest.approx(theirs.compute().item(), abs=1e-7)
    assert int(ours.total) == 103


def test_the_trainer_profiles_nothing_unless_asked(fake_fashion):
    """By default a profiler whose context is one shared empty one (no generator per hook call); a profiler asked
    for on the command line is the one Lightning makes."""
    import sys

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.profilers import SimpleProfiler

    from zoo.commands.lightning import cli_main
    from zoo.training.module import Checkpoint
    from zoo.training.profiler import NoProfiler

    root, _ = fake_fashion
    args = ["--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root), "--trainer.logger", "false"]
    argv, sys.argv = sys.argv, ["zoo"]
    try:
        default = cli_main(args, run=False).trainer.profiler
        asked = cli_main([*args, "--trainer.profiler", "simple"], run=False).trainer.profiler
    finally:
        sys.argv = argv
    assert isinstance(default, NoProfiler) and default.profile("a") is default.profile("b")
    assert isinstance(asked, SimpleProfiler)
    # the checkpoint writer's key, made once, is Lightning's own: checkpoints written before still resume
    settings = dict(monitor="val/acc", mode="max", filename="best", enable_version_counter=False)
    assert Checkpoint(**settings).state_key == ModelCheckpoint(**settings).state_key
