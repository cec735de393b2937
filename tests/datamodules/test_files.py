"""Dataset files: IDX parsing, md5 verification, sources tried in order, the errors users see."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import threading

import numpy as np
import pytest
import torch

from datamodules import MNIST, DatasetError, FashionMNIST
from datamodules.files import ensure_files
from datamodules.idx import read_idx
from tests.helpers import SHARED_DATASETS, make_mnist_like, write_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("cls", [FashionMNIST, MNIST])
def test_idx_datamodules_load_their_files(tmp_path, monkeypatch, compress, cls):
    raw = tmp_path / "root" / cls.files.name / "raw"
    arrays, md5 = make_mnist_like(raw, compress=compress)
    monkeypatch.setattr(cls, "files", dataclasses.replace(cls.files, md5=md5, mirrors=(), local_copies=()))
    dm = cls(root=str(tmp_path / "root"), val_size=50, batch_size=64)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    x_train, y_train = dm.train_set
    x_test, y_test = dm.test_set
    assert x_train.dtype == torch.uint8 and y_train.dtype == torch.int64
    assert x_train.shape == (250, 1, 28, 28) and dm.val_set[0].shape == (50, 1, 28, 28)
    assert x_test.shape == (101, 1, 28, 28)
    torch.testing.assert_close(x_test[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    torch.testing.assert_close(y_test, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    # train + val is a partition of the official training set
    all_train = torch.cat([dm.train_set[0], dm.val_set[0]]).flatten(1)
    ref = torch.from_numpy(arrays["train-images-idx3-ubyte"]).flatten(1)
    assert sorted(map(bytes, all_train.numpy())) == sorted(map(bytes, ref.numpy()))
    assert (dm.num_classes, dm.in_channels, dm.input_size) == (10, 1, 28)


def test_split_is_seeded(fake_fashion):
    root, _ = fake_fashion
    def val_images(seed):
        dm = FashionMNIST(root=str(root), val_size=40, seed=seed)
        dm.prepare_data()
        dm.setup("fit")
        return dm.val_set[0]
    torch.testing.assert_close(val_images(1), val_images(1))
    assert not torch.equal(val_images(1), val_images(2))


def test_batches_are_index_slices_converted_on_device(fake_fashion):
    root, arrays = fake_fashion
    dm = FashionMNIST(root=str(root), val_size=0, batch_size=64)
    dm.prepare_data()
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert [len(b[0]) for b in batches] == [64, 37]
    x, y = dm.on_after_batch_transfer(batches[0], 0)
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:64]).float().unsqueeze(1) / 255
    torch.testing.assert_close(x, expected)


def test_wrong_md5_names_the_file(fake_fashion):
    root, _ = fake_fashion
    path = root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte is corrupt.*md5 [0-9a-f]{32}, expected"):
        FashionMNIST(root=str(root)).prepare_data()


def test_truncated_file_is_refused(fake_fashion):
    root, _ = fake_fashion
    path = root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte is corrupt or truncated"):
        FashionMNIST(root=str(root)).prepare_data()
    # the reader refuses it on its own too, even without the md5 check
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)


def test_truncated_gzip_is_refused(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    _, md5 = make_mnist_like(raw, compress=True)
    gz = raw / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:300])
    monkeypatch.setattr(FashionMNIST, "files", dataclasses.replace(FashionMNIST.files, md5=md5, mirrors=(), local_copies=()))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        FashionMNIST(root=str(tmp_path)).prepare_data()
    assert not (raw / "train-images-idx3-ubyte").exists()  # no half-written file left behind


def test_offline_error_names_missing_files_and_remedies(tmp_path, monkeypatch):
    files = dataclasses.replace(FashionMNIST.files, mirrors=("http://localhost.invalid/fashion/",), local_copies=(str(tmp_path / "nowhere"),))
    monkeypatch.setattr(FashionMNIST, "files", files)
    with pytest.raises(DatasetError) as err:
        FashionMNIST(root=str(tmp_path / "empty")).prepare_data()
    message = str(err.value)
    for name in files.md5:
        assert name in message
    assert "download http://localhost.invalid/fashion/train-images-idx3-ubyte.gz" in message
    assert "--data.root" in message and "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "nowhere") in message


def test_download_from_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    arrays, md5 = make_mnist_like(mirror, compress=True)
    files = dataclasses.replace(FashionMNIST.files, md5=md5, mirrors=(mirror.as_uri() + "/",), local_copies=())
    monkeypatch.setattr(FashionMNIST, "files", files)
    dm = FashionMNIST(root=str(tmp_path / "root"))
    dm.prepare_data()
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(md5)  # uncompressed, no .gz or .part left
    assert {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in raw.iterdir()} == md5


def test_local_copy_is_used_when_offline(tmp_path, monkeypatch):
    local = tmp_path / "usr_share"  # laid out like Debian's package: flat .gz files
    _, md5 = make_mnist_like(local, compress=True)
    files = dataclasses.replace(FashionMNIST.files, md5=md5, mirrors=("http://localhost.invalid/",), local_copies=(str(local),))
    monkeypatch.setattr(FashionMNIST, "files", files)
    dm = FashionMNIST(root=str(tmp_path / "root"), val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set[1]) == 290


def test_read_idx_matches_numpy(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / "x-idx3-ubyte", array)
    torch.testing.assert_close(read_idx(path), torch.from_numpy(array))


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").exists(), reason="needs the real dataset copies")
@pytest.mark.parametrize("cls", [FashionMNIST, MNIST])
def test_real_files_match_the_md5s(cls):
    dm = cls(root=str(SHARED_DATASETS), download=False)
    dm.prepare_data()  # verifies the md5s listed in the DataModule against the real files
    dm.setup("test")
    assert dm.test_set[0].shape == (10000, 1, 28, 28)
    counts = torch.bincount(dm.test_set[1]).tolist()
    # per-class test counts, as published with each dataset
    assert counts == ([1000] * 10 if cls is FashionMNIST else [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


def test_a_mirror_that_never_answers_is_given_up_for_the_local_copy(tmp_path, monkeypatch):
    stalled = socket.socket()  # accepts connections (the kernel does) and never sends a byte
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)
    local = tmp_path / "usr_share"
    _, md5 = make_mnist_like(local, compress=True)
    files = dataclasses.replace(FashionMNIST.files, md5=md5, mirrors=(f"http://127.0.0.1:{stalled.getsockname()[1]}/",),
                                local_copies=(str(local),))
    done = []
    worker = threading.Thread(target=lambda: done.append(ensure_files(files, tmp_path / "root", timeout=0.5)), daemon=True)
    worker.start()
    worker.join(120)  # a guard against hanging the suite, not a timing: without a timeout it never returns
    stalled.close()
    assert done == [tmp_path / "root" / "FashionMNIST" / "raw"]
    assert {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in done[0].iterdir()} == md5
