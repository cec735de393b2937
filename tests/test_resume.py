"""A run killed at any point and resumed with ``--ckpt_path last`` ends as the uninterrupted run ends, bit for bit.

CIFAR-10-shaped data in the real format with every augmentation on, a CNN with dropout, momentum SGD, one
and two (DDP, gloo) processes. Equal means: the same weights and optimizer state (``torch.equal``), and
every value the uninterrupted run logged was logged with the same bits (see ``tests/resume_runs.py``).
"""

from __future__ import annotations

import pytest

from tests.resume_runs import KillPoint, killed_and_resumed, prepare, reference_run, zoo_fit, fit_args, compare

pytestmark = pytest.mark.slow  # whole processes, killed and started again

# one process: 96 training examples in batches of 8 = 12 steps an epoch, last.ckpt also every 5 steps
ONE = [
    KillPoint("mid-epoch, two steps after a step checkpoint", "train_batch_start", step=7),
    KillPoint("right after a step checkpoint was written", "train_batch_start", step=10),
    KillPoint("during validation (resumes mid-epoch, before the epoch's end)", "validation_batch_start", step=12),
    KillPoint("right after an epoch-end checkpoint", "train_batch_start", step=12),
]
# two processes: 6 steps an epoch on each, last.ckpt also every 4 steps
TWO = [
    KillPoint("mid-epoch, a step after a step checkpoint", "train_batch_start", step=5),
    KillPoint("during validation", "validation_batch_start", step=6),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def references(data, tmp_path_factory):
    base = tmp_path_factory.mktemp("references")
    return {1: reference_run(data, base / "one", 1, every=5), 2: reference_run(data, base / "two", 2, every=4)}


def _check(outcome) -> None:
    assert outcome.weights, "weights differ from the uninterrupted run's"
    assert outcome.optimizer, "optimizer state differs from the uninterrupted run's"
    assert outcome.metrics, outcome.detail


@pytest.mark.parametrize("kill", ONE, ids=lambda k: k.name)
def test_one_process_killed_and_resumed_equals_uninterrupted(kill, data, references, tmp_path):
    _check(killed_and_resumed(data, tmp_path / "run", references[1], 1, 5, kill))


@pytest.mark.parametrize("kill", TWO, ids=lambda k: k.name)
def test_two_processes_killed_and_resumed_equal_uninterrupted(kill, data, references, tmp_path):
    _check(killed_and_resumed(data, tmp_path / "run", references[2], 2, 4, kill))


def test_two_seeded_runs_with_augmentation_in_separate_processes_are_identical(data, references, tmp_path):
    again = tmp_path / "again"
    again.mkdir()
    out = zoo_fit(fit_args(data, 1, every=5), again)
    assert out.returncode == 0, out.stderr[-4000:]
    weights, optimizer, metrics, detail = compare(references[1], again)
    assert weights and optimizer and metrics, detail
