"""The callbacks that lose nothing: a non-finite loss named by its step with no checkpoint of its weights, SIGTERM, checkpoints written whole."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tests.helpers import QUIET, run_main
from zoo.callbacks import StopOnNonFiniteLoss
from zoo_common import NonFiniteLossError


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






def test_diverging_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    code, out = run_main(["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--optimizer.lr", "3.0",
                          "--trainer.max_epochs", "5", "--checkpoint_every_n_steps", "5", *QUIET], capsys)
    assert code == 2 and "the training loss became" in out and "at step" in out
    assert "the last good checkpoint is" in out
    ckpt = Path("lightning_logs/LinearRegression-SyntheticPoints/version_0/checkpoints/last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())
