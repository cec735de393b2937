"""CIFAR-10 on files the tests write in the real format (Python pickles, a tar.gz of cifar-10-batches-py/)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from datamodules import CIFAR10, DatasetError
from datamodules.cifar import load_batch

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root, per_batch=20, n_test=21, seed=0):
    """cifar-10-batches-py/ as torchvision downloads it: five training pickles, a test pickle, batches.meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    arrays = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        record = {"batch_label": f"{name} of 5", "labels": labels, "data": data,
                  "filenames": [f"img_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(record, protocol=2))
        arrays[name] = (data, labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": CLASSES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return arrays, md5


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    arrays, md5 = write_cifar(tmp_path / "root")
    monkeypatch.setattr(CIFAR10, "files", dataclasses.replace(CIFAR10.files, md5=md5, urls=()))
    return tmp_path / "root", arrays


def test_loads_shapes_dtype_labels_and_classes(cifar_root):
    root, arrays = cifar_root
    dm = CIFAR10(root=str(root), val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    x, y = dm.test_set
    assert x.shape == (21, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    data, labels = arrays["test_batch"]
    # a row is the red plane, then green, then blue, each 32 x 32 row-major
    torch.testing.assert_close(x[5, 1], torch.from_numpy(data[5, 1024:2048].reshape(32, 32)))
    assert y.tolist() == labels
    assert len(dm.train_set[1]) + len(dm.val_set[1]) == 100
    assert list(dm.classes) == CLASSES and (dm.num_classes, dm.in_channels, dm.input_size) == (10, 3, 32)


def test_md5_mismatch_names_file(cifar_root):
    root, _ = cifar_root
    path = root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match=r"data_batch_3 is corrupt or truncated: md5 [0-9a-f]{32}, expected"):
        CIFAR10(root=str(root)).prepare_data()


def test_offline_error(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "files", dataclasses.replace(CIFAR10.files, urls=("http://localhost.invalid/c.tgz",)))
    with pytest.raises(DatasetError) as err:
        CIFAR10(root=str(tmp_path)).prepare_data()
    message = str(err.value)
    assert "CIFAR10: missing 7 file(s)" in message and "data_batch_1" in message and "test_batch" in message
    assert "download http://localhost.invalid/c.tgz" in message and "--data.root" in message


def test_download_and_extract_archive(tmp_path, monkeypatch):
    src = tmp_path / "src"
    arrays, md5 = write_cifar(src)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(buffer.getvalue())
    files = dataclasses.replace(CIFAR10.files, md5=md5, urls=(archive.as_uri(),),
                                archive_md5=hashlib.md5(buffer.getvalue()).hexdigest())
    monkeypatch.setattr(CIFAR10, "files", files)
    dm = CIFAR10(root=str(tmp_path / "root"), val_size=10)
    dm.prepare_data()
    dm.setup("test")
    assert dm.test_set[1].tolist() == arrays["test_batch"][1]
    # a corrupt archive is refused by its md5
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue()[:100])
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz is corrupt"):
        CIFAR10(root=str(tmp_path / "root2"), download=False).prepare_data()


def test_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(DatasetError, match=r"refusing to load (__builtin__|builtins)\.print"):
        load_batch(path)


def test_augmentation_only_in_training(cifar_root):
    from tests.helpers import cli

    root, _ = cifar_root
    run = cli("fit", "--model", "LeNet", "--data", "CIFAR10", "--data.root", str(root), "--data.val_size", "10",
              "--trainer.max_steps", "0")
    dm = run.datamodule
    batch = next(iter(dm.val_dataloader()))
    run.trainer.training = True
    train_view = dm.on_after_batch_transfer(batch, 0)[0]
    run.trainer.validating = True
    val_view = dm.on_after_batch_transfer(batch, 0)[0]
    plain = (batch[0].float() / 255 - torch.tensor(dm.mean).view(1, 3, 1, 1)) / torch.tensor(dm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(val_view, plain)
    assert not torch.allclose(train_view, plain)
    assert run.model.hparams.in_channels == 3 and run.model.hparams.input_size == 32


def test_training_logs_one_grid_of_augmented_inputs(cifar_root):
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.helpers import cli

    root, _ = cifar_root
    run = cli("fit", "--model", "LeNet", "--data", "CIFAR10", "--data.root", str(root), "--data.val_size", "10",
              "--data.batch_size", "16", "--trainer.max_epochs", "2")
    (event,) = Path(run.trainer.logger.log_dir).glob("events.out.tfevents.*")
    events = EventAccumulator(str(event), size_guidance={"images": 0})
    events.Reload()
    (image,) = events.Images("inputs/train")  # once per run, though the run had many batches
    assert image.step == 0 and image.width > 16 * 32 / 4 and image.height > 32


def test_archive_with_links_or_names_out_of_root_is_refused(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        for name in ("cifar-10-batches-py/escape/data_batch_1", "../data_batch_2"):
            member = tarfile.TarInfo(name)
            member.size = 4
            tar.addfile(member, io.BytesIO(b"evil"))
    root = tmp_path / "root"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setattr(CIFAR10, "files", dataclasses.replace(CIFAR10.files, urls=(),
                                                              archive_md5=hashlib.md5(buffer.getvalue()).hexdigest()))
    with pytest.raises(DatasetError, match=r"cannot extract .*cifar-10-python.tar.gz: .*(outside|link)"):
        CIFAR10(root=str(root), download=False).prepare_data()
    assert list(outside.iterdir()) == [] and not (tmp_path / "data_batch_2").exists()


def test_every_option_reaches_its_own_attribute():
    # each value distinct, so two options swapped on the way to the base class would show
    dm = CIFAR10(root="somewhere", batch_size=7, val_size=11, seed=13, normalize=False, mean=(0.1, 0.2, 0.3),
                 std=(0.4, 0.5, 0.6), resize=40, download=False, crop_padding=2, hflip=0.25, brightness=0.3,
                 contrast=0.35, saturation=0.45, hue=0.15, predict_path="photos", exclude="out.csv", label_noise=0.05,
                 label_noise_seed=17, folds=3, fold=2)
    assert dm.predict_path == "photos"
    assert (dm.exclude, dm.label_noise, dm.label_noise_seed, dm.folds, dm.fold) == ("out.csv", 0.05, 17, 3, 2)
    assert (dm.root, dm.batch_size, dm.val_size, dm.seed, dm.normalize) == ("somewhere", 7, 11, 13, False)
    assert (dm.mean, dm.std, dm.resize, dm.download) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 40, False)
    a = dm.augmentation
    assert (a.crop_padding, a.hflip, a.brightness, a.contrast, a.saturation, a.hue) == (2, 0.25, 0.3, 0.35, 0.45, 0.15)
    assert dict(dm.hparams) == {"root": "somewhere", "batch_size": 7, "val_size": 11, "seed": 13, "normalize": False,
                                "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6), "resize": 40, "download": False,
                                "crop_padding": 2, "hflip": 0.25, "brightness": 0.3, "contrast": 0.35,
                                "saturation": 0.45, "hue": 0.15, "predict_path": "photos", "exclude": "out.csv",
                                "label_noise": 0.05, "label_noise_seed": 17, "folds": 3, "fold": 2}
