"""Shared fixtures: CPU only, runs inside a temporary folder, fake datasets in the real file formats."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the suite must behave the same on a GPU machine
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # raised by Lightning's own calls

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Runs write lightning_logs/ and data/ into a fresh folder per test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """A data root with small Fashion-MNIST files in the real IDX format, md5s registered for them."""
    from datamodules import FashionMNIST

    root = tmp_path / "fake_data"
    arrays, md5 = make_mnist_like(root / "FashionMNIST" / "raw")
    files = dataclasses.replace(FashionMNIST.files, md5=md5, mirrors=(), local_copies=())
    monkeypatch.setattr(FashionMNIST, "files", files)
    return root, arrays


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
