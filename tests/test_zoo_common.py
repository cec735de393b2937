"""Written files get the permissions a plain ``open()`` gives them (0666 less the umask), so that on a shared
machine a teammate (or their TensorBoard) can read checkpoints, metrics and predictions where the umask allows."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli
from zoo_common import atomic_write, part_name


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_open_mode(folder: Path) -> int:
    probe = folder / "written_by_open"
    with open(probe, "w"):
        pass
    mode = _mode(probe)
    probe.unlink()
    return mode


def test_atomic_write_gives_what_open_gives(umask, tmp_path):
    atomic_write(tmp_path / "a.json", lambda out: out.write(b"{}"))
    assert _mode(tmp_path / "a.json") == _plain_open_mode(tmp_path) == 0o666 & ~umask


def test_checkpoints_metrics_and_predictions_readable_under_umask_022(fake_fashion, tmp_path):
    root, _ = fake_fashion
    old = os.umask(0o022)
    try:
        run = cli("fit", "--model", "MLP", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
                  "--trainer.max_epochs", "1")
        ckpt = Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"
        cli("validate", "--ckpt_path", str(ckpt))
        cli("predict", "--ckpt_path", str(ckpt))
    finally:
        os.umask(old)
    written = [*tmp_path.glob("**/*.ckpt"), *tmp_path.glob("**/*_metrics.json"), *tmp_path.glob("**/predictions.csv")]
    kinds = {p.suffix for p in written}
    assert kinds == {".ckpt", ".json", ".csv"}, written
    for path in written:
        assert _mode(path) == 0o644, (path, oct(_mode(path)))


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
