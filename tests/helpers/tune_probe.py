"""A callback that writes, per process, what a run trained with and how far: proof that the processes of a
DDP trial trained with the same values and stopped at the same epoch."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class RankProbe(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = out

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        group = trainer.optimizers[0].param_groups[0]
        weights = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        Path(self.out).mkdir(parents=True, exist_ok=True)
        Path(self.out, f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "lr": group["lr"], "momentum": group.get("momentum"), "epochs": trainer.current_epoch,
            "world_size": trainer.world_size, "weights": weights.tolist()}))
