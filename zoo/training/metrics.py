"""Epoch metrics that add nothing but arithmetic to a step: no host-device synchronisation, no checks.

torchmetrics' ``MeanMetric`` and ``SumMetric`` copy a Python weight to the
device and test every value for NaN with ``.any()``: on a GPU each of these
waits for the step's kernels to finish, several times a step. These two keep
their sums on the device, take Python numbers as kernel arguments, and
let a NaN through to the epoch's value (where it shows) instead of dropping it.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class WeightedMean(Metric):
    """Mean of per-batch values weighted by batch size (a batch's mean loss counts once per sample)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("weight", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach().float() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


class Count(Metric):
    """How many samples were seen, summed over all processes."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, n: int) -> None:
        self.n += n

    def compute(self) -> torch.Tensor:
        return self.n.float()
