"""Shared fixtures: CPU only, runs inside a temporary folder, fake datasets in the real file formats (the plain
helpers are in ``tests/helpers``)."""

from __future__ import annotations

import dataclasses
import os

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the suite must behave the same on a GPU machine
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # raised by Lightning's own calls

# Lightning gives its loggers a handler on the stderr of the moment it is imported: imported here, before any
# test captures output, not inside a test whose captured stream is closed when it ends ("--- Logging error ---")
import lightning.pytorch  # noqa: E402, F401

from tests.helpers import QUIET, make_mnist_like  # noqa: E402


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


@pytest.fixture
def fashion(tmp_path):
    """Command-line words for a small fake Fashion-MNIST in the real format (any model)."""
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    # 250 training examples / 10: 25 steps an epoch
    return ["--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", str(tmp_path / "data"), "--data.val_size", "50",
            "--data.batch_size", "10", *QUIET]


@pytest.fixture
def mlp_fashion(tmp_path):
    """Command-line words for an MLP on a small fake Fashion-MNIST, its step losses recorded."""
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    # 200 training samples / 8 = 25 batches, 23 of them an epoch
    return ["--model", "MLP", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", "data",
            "--data.val_size", "100", "--data.batch_size", "8", "--trainer.limit_train_batches", "23",
            "--trainer.log_every_n_steps", "5", "--trainer.callbacks+=tests.helpers.fakes.LossRecorder"]
