"""Batches by index slices: every sample once in evaluation, equal batch counts per rank in training."""

from __future__ import annotations

import pytest
import torch

from datamodules.base import BatchIndexSampler


@pytest.mark.parametrize("n,batch,ranks", [(101, 8, 2), (100, 10, 3), (7, 4, 1), (5, 4, 4), (9, 4, 2), (17, 8, 2), (3, 1, 2)])
def test_evaluation_counts_every_sample_once_in_equal_steps(n, batch, ranks):
    seen, steps = [], set()
    for rank in range(ranks):
        sampler = BatchIndexSampler(n, batch, num_replicas=ranks, rank=rank, even=False)
        batches = list(sampler)
        steps.add(len(batches))
        assert len(batches) == len(sampler)
        assert all(len(b) <= batch for b in batches)
        seen += torch.cat(batches).tolist()
    assert sorted(seen) == list(range(n))  # no sample twice, none left out
    assert len(steps) == 1  # every rank takes the same number of steps


def test_single_process_evaluation_batches_are_full():
    assert [len(b) for b in BatchIndexSampler(10, 4, even=False)] == [4, 4, 2]


@pytest.mark.parametrize("n,batch,ranks", [(101, 8, 2), (100, 10, 3), (9, 4, 4)])
def test_training_gives_ranks_equal_batches_and_covers_all(n, batch, ranks):
    samplers = [BatchIndexSampler(n, batch, shuffle=True, seed=3, num_replicas=ranks, rank=r) for r in range(ranks)]
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(samplers[0])
    covered = set(torch.cat([torch.cat(b) for b in per_rank]).tolist())
    assert covered == set(range(n))


def test_shuffle_is_seeded_and_changes_with_epoch():
    a, b = BatchIndexSampler(50, 50, shuffle=True, seed=1), BatchIndexSampler(50, 50, shuffle=True, seed=1)
    assert torch.equal(next(iter(a)), next(iter(b)))
    first = next(iter(a))
    a.set_epoch(1)
    second = next(iter(a))
    assert not torch.equal(first, second)
    assert sorted(second.tolist()) == list(range(50))


def test_drop_last():
    sampler = BatchIndexSampler(10, 4, drop_last=True)
    assert [len(b) for b in sampler] == [4, 4] and len(sampler) == 2
