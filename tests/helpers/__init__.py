"""What the tests share: the checkout's paths, fake datasets in the real file formats, the CLI in-process,
torchvision weights in torch.hub's cache. Fixtures are in ``tests/conftest.py``; importable fakes for other
processes in ``tests/helpers/fakes.py``."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


CONFIGS = REPO / "configs"


SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write ``array`` (uint8) in the IDX format of MNIST: magic 0x0000080N, then big-endian dims, then data."""
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def mnist_like_arrays(n_train: int = 300, n_test: int = 101, seed: int = 0) -> dict[str, np.ndarray]:
    """Fake MNIST-style data whose label is recoverable from the image (so a model can learn it)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):  # a bright bar whose row encodes the class
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
        arrays[f"{prefix}-images-idx3-ubyte"] = images
        arrays[f"{prefix}-labels-idx1-ubyte"] = labels
    return arrays


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def make_mnist_like(folder: Path, n_train: int = 300, n_test: int = 101, seed: int = 0, compress: bool = False):
    """Write fake MNIST-style IDX files into ``folder``; return the arrays and the md5 of each uncompressed file."""
    arrays = mnist_like_arrays(n_train, n_test, seed)
    for name, array in arrays.items():
        write_idx(folder / name, array, compress=compress)
    return arrays, {name: hashlib.md5(idx_bytes(a)).hexdigest() for name, a in arrays.items()}


def cli(*args: str):
    """Run the zoo CLI in-process on the CPU, quietly; returns the LightningCLI object."""
    from zoo.commands.lightning import cli_main

    subcommand, *rest = args
    quiet = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    argv, sys.argv = sys.argv, ["zoo"]  # pytest's own arguments are not the CLI's
    try:
        return cli_main([subcommand, *quiet, *rest])
    finally:
        sys.argv = argv


def fit_then_test(config: Path, root: Path) -> float:
    """Train with a config on real data, then test its best checkpoint: the test accuracy."""
    common = ["-c", str(config), "--data.root", str(root)]
    cli("fit", *common)
    run = cli("test", *common, "--ckpt_path", "best")
    return run.trainer.callback_metrics["test/acc"].item()


def cache_torchvision_weights(monkeypatch, torch_home: Path, weights, state: dict) -> Path:
    """Save ``state`` where torch.hub caches ``weights``, named by torch.hub's convention for its own content.

    torchvision's file names carry the sha256 prefix of the real weights (``resnet18-f37072fd.pth``), which
    the zoo checks; a stand-in file gets a name with its own prefix and ``weights`` points there.
    """
    import io
    from urllib.parse import urlparse

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = Path(urlparse(weights.url).path).name  # e.g. resnet18-f37072fd.pth
    stem, suffix = name.split("-")[0], Path(name).suffix
    fake_name = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"
    monkeypatch.setattr(weights.value, "url", weights.url.rsplit("/", 1)[0] + "/" + fake_name)
    path = torch_home / "hub" / "checkpoints" / fake_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- the zoo command in another process, or in this one -------------------------------------------------------

ENV = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def zoo(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # a session of its own: tests.helpers.fakes.KillAt kills the whole process group
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600, start_new_session=True)


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """``zoo ARGS`` in this process: its exit status and everything it printed."""
    from zoo.cli import main

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


def two_tint_photos(root: Path) -> Path:
    """An image folder of two classes, four RGB photos each of one tint and another height: root/train/{a,b}/."""
    from PIL import Image

    for name, color in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        (root / "train" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (30, 20 + i), color).save(root / "train" / name / f"{i}.png")
    return root


def in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in a mount namespace of its own (its mounts vanish with it); skipped where that is not allowed."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -m` (a private mount namespace) to make a full or read-only filesystem")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)
