"""Epoch metrics that add nothing but arithmetic to a step: no host-device synchronisation, no checks.

torchmetrics' ``MeanMetric`` and ``SumMetric`` copy a Python weight to the
device and test every value for NaN with ``.any()``: on a GPU each of these
waits for the step's kernels to finish, several times a step. These keep
their sums on the device, take Python numbers as kernel arguments, and
let a NaN through to the epoch's value (where it shows) instead of dropping it.
Sums grow in place (``add_``): ``self.total += x`` would also go through two
``__setattr__`` layers (torchmetrics', torch's) every step.
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
        self.total.add_(value.detach().float(), alpha=weight)
        self.weight.add_(weight)

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


class Count(Metric):
    """How many samples were seen, summed over all processes."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, n: int) -> None:
        self.n.add_(n)

    def compute(self) -> torch.Tensor:
        return self.n.float()


class Accuracy(Metric):
    """Share of samples whose highest logit is their label (micro accuracy): what torchmetrics'
    ``MulticlassAccuracy(average="micro")`` gives, at half its cost per step (its per-class counts are not needed)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.correct.add_((logits.argmax(dim=-1) == target).sum())
        self.total.add_(target.numel())

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total
