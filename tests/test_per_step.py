"""Per-step work that does not wait for the device: epoch metrics, the non-finite loss guard, normalisation."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import FashionMNIST
from zoo.callbacks import StopOnNonFiniteLoss
from zoo.training.metrics import Count, WeightedMean
from zoo_common import NonFiniteLossError


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


class Diverges(L.LightningModule):
    """A loss that turns NaN at training step ``bad_step`` (and stays so: its weight becomes NaN)."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.bad_step = bad_step

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        (x,) = batch
        scale = float("nan") if self.global_step == self.bad_step else 1.0
        return (self.w * x).pow(2).mean() * scale

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(tmp_path, bad_step: int, every_n_steps: int, log_every: int = 50) -> tuple[str, dict]:
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(40, 1)), batch_size=4)  # 10 steps
    last = ModelCheckpoint(dirpath=tmp_path, filename="last", every_n_train_steps=every_n_steps or None,
                           enable_version_counter=False)
    trainer = L.Trainer(max_epochs=3, callbacks=[StopOnNonFiniteLoss(), last], logger=False, log_every_n_steps=log_every,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit(Diverges(bad_step), data)
    path = tmp_path / "last.ckpt"
    return str(error.value), torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}


@pytest.mark.parametrize("every_n_steps", [1, 3, 0])
def test_the_first_bad_step_is_named_and_no_checkpoint_holds_its_weights(tmp_path, every_n_steps):
    # step 13 is the 4th batch of the 2nd epoch; Lightning counts global_step after the optimizer step
    message, state = fit(tmp_path, bad_step=13, every_n_steps=every_n_steps)
    assert "at step 14 (epoch 1, batch 3)" in message
    assert state, "the checkpoint of the first epoch is kept"
    assert state["global_step"] <= 13 and torch.isfinite(state["state_dict"]["w"]).all()
    if every_n_steps == 1:
        assert state["global_step"] == 13  # checked before every write: the last good step is on disk


def test_found_at_a_logging_step_without_any_checkpoint(tmp_path):
    message, state = fit(tmp_path, bad_step=2, every_n_steps=0, log_every=5)
    assert "at step 3 (epoch 0, batch 2)" in message and not state


def test_normalisation_uses_the_current_mean_and_std():
    dm = FashionMNIST(normalize=True, mean=(0.25,), std=(0.5,))
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    expected = (x.double() / 255 - 0.25) / 0.5
    for _ in range(2):  # made once, then reused
        torch.testing.assert_close(dm.transform(x).double(), expected, atol=1e-6, rtol=0)
    dm.mean, dm.std = (0.5,), (0.25,)  # as for pretrained weights' own statistics
    torch.testing.assert_close(dm.transform(x).double(), (x.double() / 255 - 0.5) / 0.25, atol=1e-6, rtol=0)
