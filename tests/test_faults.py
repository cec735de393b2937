"""Faults as they happen: a full disk, a folder that cannot be written, kill -9 during a write or before the
first checkpoint, a command that trains nothing or fails. One line that says what to do, the right exit
status, nothing half-written and nothing left behind."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_mnist_like
from tests.test_reliability import QUIET
from tests.test_runs import ENV, zoo  # a session of its own per command: tests.fakes.KillAt kills its group
from zoo_common import atomic_write, part_name

ZOO = [sys.executable, "-m", "zoo.cli"]


def in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in a mount namespace of its own (its mounts vanish with it); skipped where that is not allowed."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -m` (a private mount namespace) to make a full or read-only filesystem")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def fashion(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    # 250 training examples / 10: 25 steps an epoch
    return ["--data", "tests.fakes.FakeFashionMNIST", "--data.root", str(tmp_path / "data"), "--data.val_size", "50",
            "--data.batch_size", "10", *QUIET]


@pytest.mark.slow  # starts several processes
def test_a_full_disk_says_so_in_one_line_and_leaves_no_part_file(tmp_path, fashion):
    disk = tmp_path / "disk"
    disk.mkdir()
    # ResNet18's checkpoint (~90 MB with its momentum) cannot fit on a 30 MB disk
    fit = [*ZOO, "fit", "--model", "ResNet18", *fashion, "--trainer.max_steps", "1", "--data.batch_size", "4"]
    out = in_namespace(f"mount -t tmpfs -o size=30m tmpfs {disk} && cd {disk} && {shlex.join(fit)}; "
                       f"echo exit=$?; find {disk} -name '*.part' | sed 's/^/left: /'", tmp_path)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert "exit=1" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    # training had started (its progress lines came first); the failure is the one last line
    assert errors == [out.stderr.splitlines()[-1]], out.stderr[-3000:]
    assert errors[0].startswith("error: the disk is full: writing ") and "last.ckpt" in errors[0]
    assert "MB free without it" in errors[0] and "--trainer.default_root_dir" in errors[0]
    assert "left:" not in out.stdout


@pytest.mark.parametrize("which", ["working directory", "image cache"])
def test_an_unwritable_folder_names_itself_and_the_option_that_moves_it(tmp_path, fashion, which):
    ro = tmp_path / "ro"
    ro.mkdir()
    if which == "working directory":
        command = [*ZOO, "fit", "--model", "SoftmaxRegression", *fashion, "--trainer.max_steps", "1"]
        hint = "--trainer.default_root_dir DIR"
    else:
        photos = tmp_path / "photos" / "train"
        for name, value in (("a", 0), ("b", 255)):
            (photos / name).mkdir(parents=True)
            from PIL import Image

            Image.new("RGB", (8, 8), (value,) * 3).save(photos / name / "x.png")
        command = [*ZOO, "fit", "--model", "SoftmaxRegression", "--data", "ImageFolder", "--data.root",
                   str(photos.parent), "--data.image_size", "8", "--data.crop_size", "8",
                   "--data.cache_dir", str(ro / "cache"), *QUIET]
        hint = "--data.cache_dir"
    cwd = ro if which == "working directory" else tmp_path
    out = in_namespace(f"mount --bind -o ro {ro} {ro} && cd {cwd} && {shlex.join(command)}; echo exit=$?", tmp_path)
    lines = out.stderr.splitlines()
    assert "exit=2" in out.stdout, out.stderr[-3000:]
    assert len(lines) == 1 and str(ro) in lines[0] and hint in lines[0], out.stderr[-3000:]


@pytest.mark.slow  # starts several processes
def test_a_kill_during_a_checkpoint_write_leaves_nothing_after_the_resume(tmp_path, fashion):
    fit = ["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "2", "--checkpoint_every_n_steps", "3"]
    out = zoo([*fit, "--trainer.callbacks+=tests.fakes.KillMidWrite", "--trainer.callbacks.at", "2"], tmp_path)
    assert out.returncode == -9, out.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").glob("*/version_*")
    assert len(list((run / "checkpoints").glob(".last.ckpt.*.part"))) == 1  # the half-written file of the kill
    out = zoo([*fit, "--ckpt_path", "last"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((tmp_path / "lightning_logs").glob("*/version_*")) == [run]
    assert not list(tmp_path.rglob("*.part"))


def test_a_stale_part_file_is_removed_and_a_live_one_kept(tmp_path):
    dest = tmp_path / "last.ckpt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale, live = part_name(dest), part_name(dest)
        stale = stale.with_name(stale.name.replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
        live = live.with_name(live.name.replace(f"-{os.getpid()}-", f"-{alive.pid}-"))
        stale.write_bytes(b"half")
        live.write_bytes(b"being written")
        atomic_write(dest, lambda out: out.write(b"whole"))
        assert dest.read_bytes() == b"whole" and not stale.exists() and live.exists()
    finally:
        alive.kill()


@pytest.mark.slow  # starts several processes
def test_a_start_killed_before_its_first_checkpoint_resumes_in_its_folder(tmp_path, fashion):
    fit = ["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "1"]
    out = zoo([*fit, "--trainer.callbacks+=tests.fakes.KillAt", "--trainer.callbacks.step", "2"], tmp_path)
    assert out.returncode == -9
    (run,) = (tmp_path / "lightning_logs").glob("*/version_*")
    assert not (run / "checkpoints").exists()
    out = zoo([*fit, "--ckpt_path", "last"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "starting it again from scratch, in its folder" in out.stdout + out.stderr
    assert list((tmp_path / "lightning_logs").glob("*/version_*")) == [run]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # the killed start's is gone


def test_a_fit_that_trains_nothing_leaves_no_folder(tmp_path, fashion):
    out = zoo(["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "0"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (tmp_path / "lightning_logs").exists()


def test_a_failed_predict_adds_no_event_file(tmp_path, fashion):
    out = zoo(["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "1"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").glob("*/version_*")
    before = sorted(run.iterdir())
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_text("not an image")
    out = zoo(["predict", "--ckpt_path", "last", "--data.predict_path", str(junk), *QUIET], tmp_path)
    assert out.returncode == 2 and "none of its files is a readable image" in out.stderr
    assert sorted(run.iterdir()) == before
