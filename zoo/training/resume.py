"""What a checkpoint must hold, beyond weights and optimizer, for a resumed run to continue bit for bit.

- The epoch's metric states (sums and counts so far): a run resumed in the middle
  of an epoch must log that epoch's mean over all of its batches, not over the
  batches after the resume. torchmetrics leaves its states out of ``state_dict``.
- The global torch RNG (dropout draws from it).

Both are kept per process, gathered from every rank when the checkpoint is
written (Lightning builds the checkpoint on every rank and rank 0 writes it), so
that each rank of a DDP run gets its own partial sums and RNG back.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import Metric

KEY = "zoo_resume"


def _per_rank(module: L.LightningModule, t: torch.Tensor) -> list[torch.Tensor]:
    """This process's tensor from every rank, in rank order (on the CPU)."""
    if module.trainer.world_size == 1:
        return [t.detach().cpu().clone()]
    gathered = module.all_gather(t.detach().to(module.device))  # world_size x ...
    return [g.cpu().clone() for g in gathered.unbind(0)]  # each its own storage (set_rng_state needs it)


def _tensor_states(module: L.LightningModule) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: {key: value for key, value in m.metric_state.items() if isinstance(value, torch.Tensor)}
        for name, m in module.named_modules()
        if isinstance(m, Metric)
    }


def capture(module: L.LightningModule) -> dict[str, Any]:
    """The state to save; a collective under DDP: every rank calls it (as Lightning does when it saves)."""
    metrics = {
        name: {key: _per_rank(module, value) for key, value in states.items()}
        for name, states in _tensor_states(module).items()
    }
    # the CPU generator always (CPU dropout, CPU-side draws); the device's own on a GPU
    rng = {"cpu": _per_rank(module, torch.get_rng_state())}
    if module.device.type == "cuda":
        rng["cuda"] = _per_rank(module, torch.cuda.get_rng_state(module.device))
    return {"world_size": module.trainer.world_size, "metrics": metrics, "rng": rng}


def restore(module: L.LightningModule, saved: dict[str, Any]) -> None:
    """Put this rank's saved metric states and RNG back (at the start of training, before the first step)."""
    trainer = module.trainer
    if saved.get("world_size") != trainer.world_size:
        rank_zero_warn(
            f"The checkpoint was written by {saved.get('world_size')} process(es) and this run has "
            f"{trainer.world_size}: the epoch's metrics so far and the random state start afresh."
        )
        return
    rank = trainer.global_rank
    metrics = dict(module.named_modules())
    for name, states in saved["metrics"].items():
        metric = metrics.get(name)
        if not isinstance(metric, Metric):
            continue
        for key, per_rank in states.items():
            current = getattr(metric, key, None)
            if not isinstance(current, torch.Tensor):  # a state an earlier version of the metric had
                continue
            setattr(metric, key, per_rank[rank].to(device=current.device, dtype=current.dtype))
    torch.set_rng_state(saved["rng"]["cpu"][rank].clone())
    if "cuda" in saved["rng"] and module.device.type == "cuda":
        torch.cuda.set_rng_state(saved["rng"]["cuda"][rank].clone(), module.device)
