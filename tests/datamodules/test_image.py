"""The DataModules' batches: each epoch its own augmentation, data drawn from the data's own seed."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from datamodules import CIFAR10, FashionMNIST, SyntheticPoints
from tests.helpers.fakes import write_fake_cifar


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


def test_normalisation_uses_the_current_mean_and_std():
    dm = FashionMNIST(normalize=True, mean=(0.25,), std=(0.5,))
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    expected = (x.double() / 255 - 0.25) / 0.5
    for _ in range(2):  # made once, then reused
        torch.testing.assert_close(dm.transform(x).double(), expected, atol=1e-6, rtol=0)
    dm.mean, dm.std = (0.5,), (0.25,)  # as for pretrained weights' own statistics
    torch.testing.assert_close(dm.transform(x).double(), (x.double() / 255 - 0.5) / 0.25, atol=1e-6, rtol=0)
