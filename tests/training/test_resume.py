"""A run killed at any point and resumed with ``--ckpt_path last`` ends as the uninterrupted run ends, bit for bit.

CIFAR-10-shaped data in the real format with every augmentation on, a CNN with dropout, momentum SGD, one
and two (DDP, gloo) processes. Equal means: the same weights and optimizer state (``torch.equal``), and
every value the uninterrupted run logged was logged with the same bits (see ``tests/helpers/resume_runs.py``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ENV, cli, make_mnist_like
from tests.helpers.resume_runs import (
    KillPoint,
    compare,
    fit_args,
    killed_and_resumed,
    prepare,
    reference_run,
    zoo_fit,
)

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


def test_a_resumed_run_keeps_its_learning_rate_schedule(tmp_path):
    """Broken variant: the scheduler's state is dropped on resume (the schedule starts over). MultiStepLR, as
    StepLR's chained form would hide it: it halves whatever rate the optimizer's state holds."""
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    args = ["--model", "SoftmaxRegression", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", "data",
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




@pytest.fixture
def data_root(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    return tmp_path / "data"


def lenet_fit_args(root: Path, epochs: int) -> list[str]:
    # LeNet on 112 px inputs: slow enough per step to be killed mid-epoch; 250 / 8 = 32 steps an epoch
    return ["fit", "--model", "LeNet", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", str(root),
            "--data.val_size", "50", "--data.batch_size", "8", "--data.resize", "112", "--optimizer.lr", "0.1",
            "--optimizer.momentum", "0.9", "--trainer.max_epochs", str(epochs), "--checkpoint_every_n_steps", "5",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


# the resumed run saves what its first step starts from (tests.helpers.fakes.FirstStepState)
FIRST_STEP = ["--trainer.callbacks+=tests.helpers.fakes.FirstStepState"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_step(ckpt: Path, proc: subprocess.Popen, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        if ckpt.exists():
            step = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
            if step >= at_least:
                return step
        time.sleep(0.02)
    raise AssertionError("no checkpoint in time")


def final(cwd: Path) -> dict:
    """The last.ckpt of the run in ``cwd`` that trained longest."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in cwd.glob("**/last.ckpt")]
    return max(states, key=lambda s: s["global_step"])


def best_score(state: dict) -> float:
    (mc,) = [v for k, v in state["callbacks"].items() if "'monitor': 'val/acc'" in k]
    return mc["best_model_score"].item()


def assert_same_tensors(a, b, what: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            assert_same_tensors(a[k], b[k], f"{what}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{what}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), what
    else:
        assert a == b, what


def assert_first_step_starts_from(saved: dict, cwd: Path) -> None:
    """The resumed run's first step started from the checkpoint's weights and momentum buffers, at its step."""
    first = torch.load(cwd / "first_step_state.pt", map_location="cpu", weights_only=True)
    assert first["global_step"] == saved["global_step"]
    assert_same_tensors(saved["state_dict"], first["state_dict"], "weights")
    (optimizer,) = saved["optimizer_states"]
    assert_same_tensors(optimizer["state"], first["optimizer"]["state"], "optimizer state")
    assert all("momentum_buffer" in s for s in optimizer["state"].values())


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path, data_root):
    reference = tmp_path / "reference"
    reference.mkdir()
    assert subprocess.run([sys.executable, "-m", "zoo.cli", *lenet_fit_args(data_root, 2)], cwd=reference, env=ENV,
                          capture_output=True).returncode == 0
    ref = final(reference)
    assert ref["global_step"] == 64

    run = tmp_path / "killed"
    run.mkdir()
    proc = start(lenet_fit_args(data_root, 2), run)
    ckpt = run / "lightning_logs" / "LeNet-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt"
    step = wait_for_step(ckpt, proc, at_least=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # written atomically: always loads
    assert 5 <= step <= saved["global_step"] < 64  # killed part-way, with a periodic checkpoint on disk

    out = subprocess.run([sys.executable, "-m", "zoo.cli", *lenet_fit_args(data_root, 2), "--ckpt_path", "last",
                          *FIRST_STEP], cwd=run, env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"--ckpt_path last: {Path('lightning_logs/LeNet-FakeFashionMNIST/version_0/checkpoints/last.ckpt')}" in out.stderr
    assert "not resumable" not in out.stderr  # Lightning's warning for loaders that restart their epoch
    assert_first_step_starts_from(saved, run)
    got = final(run)
    # killed wherever the timing put it, the run ends where the uninterrupted one ends, bit for bit
    assert (got["global_step"], got["epoch"]) == (ref["global_step"], ref["epoch"])
    assert_same_tensors(ref["state_dict"], got["state_dict"], "weights")
    assert_same_tensors(ref["optimizer_states"], got["optimizer_states"], "optimizer")
    assert best_score(got) == best_score(ref)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_run_resumes_from_it(tmp_path, data_root):
    # SIGTERM arrives before step 7; the step finishes, last.ckpt is saved at step 8 and the run stops
    (tmp_path / "term.yaml").write_text(
        "trainer:\n  callbacks:\n  - class_path: tests.helpers.fakes.KillAt\n"
        "    init_args: {hook: train_batch_start, step: 7, signal: TERM}\n")
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "-c", "term.yaml", *lenet_fit_args(data_root, 1)[1:]],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert out.returncode == 143, out.stderr[-3000:]
    assert "stopped by SIGTERM" in out.stderr
    ckpt = tmp_path / "lightning_logs" / "LeNet-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 8
    assert "last.ckpt at step 8; resume with --ckpt_path last" in out.stderr
    out = subprocess.run([sys.executable, "-m", "zoo.cli", *lenet_fit_args(data_root, 1), "--ckpt_path", "last", *FIRST_STEP],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_first_step_starts_from(saved, tmp_path)
    assert final(tmp_path)["global_step"] == 32  # resumed where the signal stopped it, then finished epoch 0


def test_two_seeded_runs_give_identical_weights(fake_fashion):
    root, _ = fake_fashion
    args = ["fit", "--model", "LeNetBN", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
            "--trainer.max_epochs", "2", "--data.batch_size", "32"]
    a = {k: v.clone() for k, v in cli(*args).model.state_dict().items()}
    b = cli(*args).model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
