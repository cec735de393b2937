"""Interruption and resume, determinism, and every kind of bad input: a clear message, a non-zero exit, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, cli, make_mnist_like
from zoo.cli import main

ENV = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture
def data_root(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    return tmp_path / "data"


def fit_args(root: Path, epochs: int) -> list[str]:
    # LeNet on 112 px inputs: slow enough per step to be killed mid-epoch; 250 / 8 = 32 steps an epoch
    return ["fit", "--model", "LeNet", "--data", "tests.fakes.FakeFashionMNIST", "--data.root", str(root),
            "--data.val_size", "50", "--data.batch_size", "8", "--data.resize", "112", "--optimizer.lr", "0.1",
            "--optimizer.momentum", "0.9", "--trainer.max_epochs", str(epochs), "--checkpoint_every_n_steps", "5",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


# the resumed run saves what its first step starts from (tests.fakes.FirstStepState)
FIRST_STEP = ["--trainer.callbacks+=tests.fakes.FirstStepState"]


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
    assert subprocess.run([sys.executable, "-m", "zoo.cli", *fit_args(data_root, 2)], cwd=reference, env=ENV,
                          capture_output=True).returncode == 0
    ref = final(reference)
    assert ref["global_step"] == 64

    run = tmp_path / "killed"
    run.mkdir()
    proc = start(fit_args(data_root, 2), run)
    ckpt = run / "lightning_logs" / "LeNet-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt"
    step = wait_for_step(ckpt, proc, at_least=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # written atomically: always loads
    assert 5 <= step <= saved["global_step"] < 64  # killed part-way, with a periodic checkpoint on disk

    out = subprocess.run([sys.executable, "-m", "zoo.cli", *fit_args(data_root, 2), "--ckpt_path", "last",
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
        "trainer:\n  callbacks:\n  - class_path: tests.fakes.KillAt\n"
        "    init_args: {hook: train_batch_start, step: 7, signal: TERM}\n")
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "-c", "term.yaml", *fit_args(data_root, 1)[1:]],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert out.returncode == 143, out.stderr[-3000:]
    assert "stopped by SIGTERM" in out.stderr
    ckpt = tmp_path / "lightning_logs" / "LeNet-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 8
    assert "last.ckpt at step 8; resume with --ckpt_path last" in out.stderr
    out = subprocess.run([sys.executable, "-m", "zoo.cli", *fit_args(data_root, 1), "--ckpt_path", "last", *FIRST_STEP],
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


def run_main(args: list[str], capsys) -> tuple[int, str]:
    argv, sys.argv = sys.argv, ["zoo"]
    try:
        main(["--help"] if not args else args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out + captured.err


QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_wrong_option_type_is_jsonargparse_message_not_a_trace(capsys):
    code, out = run_main(["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--data.batch_size", "ten"], capsys)
    assert code == 2 and "batch_size" in out and "ten" in out and "Traceback" not in out


def test_out_of_range_value(capsys):
    code, out = run_main(["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--data.batch_size", "0", *QUIET], capsys)
    assert code == 2 and "error: batch_size=0: give a number of examples >= 1" in out


def test_incompatible_model_and_data_refused_before_training(capsys):
    code, out = run_main(["fit", "--model", "SoftmaxRegression", "--data", "SyntheticPoints", *QUIET], capsys)
    assert code == 2
    assert "SoftmaxRegression cannot take the inputs of SyntheticPoints (shape (2,))" in out
    assert "Epoch" not in out and "Traceback" not in out


def test_model_needing_a_resize(fake_fashion, capsys):
    root, _ = fake_fashion
    code, out = run_main(["fit", "--model", "NiN", "--data", "FashionMNIST", "--data.root", str(root), *QUIET], capsys)
    assert code == 2 and "NiN needs inputs of at least 67 x 67: set --data.resize" in out


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt"])
def test_bad_dataset_files(fake_fashion, capsys, damage):
    root, _ = fake_fashion
    path = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        data = bytearray(path.read_bytes())
        data[500] ^= 0xFF
        path.write_bytes(bytes(data))
    code, out = run_main(["fit", "--model", "MLP", "--data", "FashionMNIST", "--data.root", str(root),
                          "--data.download", "false", "--data.val_size", "50", *QUIET], capsys)
    assert code == 2 and "train-images-idx3-ubyte" in out and "Traceback" not in out
    if damage == "missing":
        assert "missing 1 file(s)" in out
    else:
        assert "is corrupt or truncated: md5" in out and "expected f4a8" not in out  # the fake files' own md5


def test_checkpoint_of_another_architecture(fake_fashion, capsys):
    root, _ = fake_fashion
    run = cli("fit", "--model", "LeNetBN", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--trainer.max_steps", "1")
    ckpt = Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    capsys.readouterr()
    code, out = run_main(["test", "--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root),
                          "--ckpt_path", str(ckpt), *QUIET], capsys)
    assert code == 2 and "holds a LeNetBN, but the model chosen is LeNet" in out


def test_checkpoint_path_that_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("hello")
    code, out = run_main(["test", "--model", "LinearRegression", "--data", "SyntheticPoints", "--ckpt_path", str(bad)], capsys)
    assert code == 2 and "not a readable checkpoint" in out
    code, out = run_main(["test", "--ckpt_path", str(tmp_path / "nope.ckpt")], capsys)
    assert code == 2 and "no such checkpoint file" in out


def test_diverging_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    code, out = run_main(["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--optimizer.lr", "3.0",
                          "--trainer.max_epochs", "5", "--checkpoint_every_n_steps", "5", *QUIET], capsys)
    assert code == 2 and "the training loss became" in out and "at step" in out
    assert "the last good checkpoint is" in out
    ckpt = Path("lightning_logs/LinearRegression-SyntheticPoints/version_0/checkpoints/last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())


NUMERIC = ["--data.batch_size", "--data.seed", "--optimizer.lr", "--trainer.max_epochs", "--data.noise",
           "--data.num_train", "--checkpoint_every_n_steps", "--trainer.limit_train_batches", "--optimizer.momentum"]
PATHS = ["--ckpt_path", "--model.weights", "--data.predict_path"]
WRONG = ["-1", "0", "abc", "", "1e400", "nan", "-0.5", "3.7", "[1, 2]", "/nonexistent/file", "None", "true"]


def test_fuzz_wrong_values_never_leave_a_trace(capsys):
    rng = random.Random(0)
    for _ in range(40):
        options = rng.sample(NUMERIC, rng.randint(1, 3)) + rng.sample(PATHS, rng.randint(0, 1))
        args = ["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--trainer.fast_dev_run", "1", *QUIET]
        for option in options:
            args += [option, rng.choice(WRONG)]
        code, out = run_main(args, capsys)
        assert "Traceback" not in out, (args, out[-2000:])
        assert code == 0 or ("error" in out.lower()), (args, out[-2000:])


def test_checkpoints_are_written_atomically(fake_fashion, tmp_path, monkeypatch):
    from zoo.training.checkpoint_io import AtomicCheckpointIO

    root, _ = fake_fashion
    run = cli("fit", "--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--trainer.max_epochs", "1")
    assert isinstance(run.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    ckpt = Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    good = ckpt.read_bytes()

    def killed_half_way(obj, f, *args, **kwargs):  # what a kill during the write leaves: some bytes, no end
        f.write(good[: len(good) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        run.trainer.save_checkpoint(ckpt)
    monkeypatch.undo()
    assert ckpt.read_bytes() == good  # the old checkpoint is untouched and still loads
    torch.load(ckpt, map_location="cpu", weights_only=True)
    assert not [p for p in ckpt.parent.iterdir() if p.name.endswith(".part")]  # no half file left behind
