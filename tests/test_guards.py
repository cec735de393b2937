"""Guards for mistakes that left the rest of the suite green: each test here fails on the broken variant named
in its docstring (checked once by breaking the code on purpose)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import CIFAR10, ImageFolder, SyntheticPoints
from datamodules.folder import stratified_split
from tests.conftest import cli, make_mnist_like
from tests.fakes import write_fake_cifar


def test_the_stratified_split_follows_the_seed():
    """Broken variant: the split ignores ``--data.seed`` (every seed holds out the same images)."""
    labels = torch.arange(200) % 4
    split = {seed: stratified_split(labels, 0.25, seed) for seed in (0, 0, 1)}
    same, other = stratified_split(labels, 0.25, 0), split[1]
    assert torch.equal(split[0][1], same[1])  # a seed is a split
    assert not torch.equal(split[0][1].sort().values, other[1].sort().values)  # another seed, another split
    for train, val in (split[0], other):  # stratified either way: 50 of each class, 12 or 13 held out
        assert sorted(torch.bincount(labels[val]).tolist()) == [12, 12, 13, 13] or torch.bincount(labels[val]).tolist() == [13, 13, 12, 12]
        assert len(set(train.tolist()) | set(val.tolist())) == 200


def _photos(root: Path) -> Path:
    for name, color in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        (root / "train" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (30, 20 + i), color).save(root / "train" / name / f"{i}.png")
    return root


def test_a_cache_of_another_image_size_is_not_reused(tmp_path):
    """Broken variant: the cache key leaves out ``image_size`` (a stale cache of another size is loaded)."""
    root = _photos(tmp_path / "photos")
    for size in (8, 12):
        dm = ImageFolder(str(root), image_size=size, crop_size=size, val_size=0, cache_dir=str(tmp_path / "cache"))
        dm.setup("fit")
        assert tuple(dm.train_set[0][torch.arange(2)].shape) == (2, 3, size, size)


def test_predict_decodes_a_photo_as_the_training_cache_does(tmp_path):
    """Broken variant: ``zoo predict`` resizes the whole photo instead of the cache's shorter side + center crop."""
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, :10] = wide[:, 20:] = (255, 0, 0)  # red sides
    wide[:, 10:20] = (0, 0, 255)  # a blue center square: all the center crop keeps
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    root = _photos(tmp_path / "photos")
    dm = ImageFolder(str(root), image_size=8, crop_size=8, cache_dir=str(tmp_path / "cache"))
    image = dm.read_image_file(path)
    assert image.shape == (3, 8, 8)
    # blue only (bilinear filtering takes a little red in at the crop's edges)
    assert image[2].min() >= 200 and image[0].max() <= 60


def _augment(dm: CIFAR10, x: torch.Tensor, epoch: int, batch: int) -> torch.Tensor:
    progress = SimpleNamespace(current=SimpleNamespace(ready=batch))
    dm.trainer = SimpleNamespace(training=True, current_epoch=epoch, global_rank=0,
                                 fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)))
    return dm.on_after_batch_transfer((x, torch.zeros(len(x))), 0)[0]


def test_each_epoch_sees_its_own_augmentation(tmp_path):
    """Broken variant: the augmentation's per-batch seed leaves out the epoch (every epoch the same crops)."""
    dm = CIFAR10(root=str(write_fake_cifar(tmp_path)))
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    first = _augment(dm, x, epoch=0, batch=3)
    assert torch.equal(first, _augment(dm, x, epoch=0, batch=3))  # the same batch of the same epoch: the same
    assert not torch.equal(first, _augment(dm, x, epoch=1, batch=3))  # the next epoch: other draws
    assert not torch.equal(first, _augment(dm, x, epoch=0, batch=4))


def test_synthetic_points_come_from_the_data_seed_alone():
    """Broken variant: the noise (or the features) drawn from the global RNG instead of ``--data.seed``."""
    def points(seed: int, global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)
        dm = SyntheticPoints(seed=seed)
        dm.setup("fit")
        return torch.cat([torch.cat([x, y.view(len(y), -1)], 1) for x, y in dm.train_dataloader()])

    reference = points(1, 0)
    assert torch.equal(reference, points(1, 123))  # the global RNG has no say
    assert not torch.equal(reference, points(2, 0))


def test_a_resumed_run_keeps_its_learning_rate_schedule(tmp_path):
    """Broken variant: the scheduler's state is dropped on resume (the schedule starts over). MultiStepLR, as
    StepLR's chained form would hide it: it halves whatever rate the optimizer's state holds."""
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    args = ["--model", "SoftmaxRegression", "--data", "tests.fakes.FakeFashionMNIST", "--data.root", "data",
            "--data.val_size", "50", "--data.batch_size", "50", "--lr_scheduler", "MultiStepLR",
            "--lr_scheduler.milestones", "[1]", "--lr_scheduler.gamma", "0.5"]
    whole = cli("fit", *args, "--trainer.max_epochs", "3")
    first = cli("fit", *args, "--trainer.max_epochs", "1")
    last = Path(first.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    resumed = cli("fit", *args, "--trainer.max_epochs", "3", "--ckpt_path", str(last))
    lr = [run.trainer.optimizers[0].param_groups[0]["lr"] for run in (whole, resumed)]
    # halved once, after the first epoch (a schedule started over would halve again after the resume's first)
    assert lr == [pytest.approx(0.05)] * 2
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


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
