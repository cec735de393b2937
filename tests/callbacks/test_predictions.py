"""`zoo predict` on image files: PNG and JPEG, gray and color, any size; bad files named, good ones predicted."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import FashionMNIST
from tests.helpers import cli, mnist_like_arrays


@pytest.fixture
def trained(fake_fashion):
    root, _ = fake_fashion
    run = cli("fit", "--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--trainer.max_epochs", "1", "--optimizer.lr", "0.5")
    return Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt", run.model


def _rows(capsys) -> list[dict]:
    out = capsys.readouterr().out
    path = out.split("written to ")[-1].strip()
    with open(path) as f:
        return list(csv.DictReader(f))


def test_predicts_png_and_jpeg_gray_and_color(trained, tmp_path, capsys):
    ckpt, model = trained
    images = mnist_like_arrays()["t10k-images-idx3-ubyte"][:3]
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(images[0]).save(folder / "a_gray28.png")  # exactly the model's input
    Image.fromarray(np.stack([images[1]] * 3, axis=-1)).resize((64, 64)).save(folder / "b_rgb64.jpg", quality=95)
    Image.fromarray(images[2]).resize((40, 30)).save(folder / "c_gray_wide.jpeg")
    capsys.readouterr()
    cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(folder))
    rows = _rows(capsys)
    assert [Path(r["file"]).name for r in rows] == ["a_gray28.png", "b_rgb64.jpg", "c_gray_wide.jpeg"]
    for row in rows:
        assert row["class"] in FashionMNIST.classes and 0 < float(row["probability"]) <= 1
    # the 28 x 28 gray PNG reaches the model untouched: same class and probability as calling it directly
    model.eval()
    with torch.no_grad():
        probs = model(torch.from_numpy(images[0]).float().div(255).view(1, 1, 28, 28)).softmax(-1)[0]
    assert rows[0]["class"] == FashionMNIST.classes[int(probs.argmax())]
    assert float(rows[0]["probability"]) == pytest.approx(probs.max().item(), abs=1e-5)


def test_single_file(trained, tmp_path, capsys):
    ckpt, _ = trained
    path = tmp_path / "one.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(path)
    capsys.readouterr()
    cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(path))
    (row,) = _rows(capsys)
    assert row["file"] == str(path)


def test_bad_files_are_named_and_good_ones_still_predicted(trained, tmp_path, capsys):
    ckpt, _ = trained
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(folder / "good.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(folder))
    assert "2 of 3 files could not be read" in str(exit_info.value.code)
    captured = capsys.readouterr()
    path = captured.out.split("written to ")[-1].strip()
    with open(path) as f:
        predicted = {Path(r["file"]).name: r["class"] for r in csv.DictReader(f)}
    assert predicted["good.png"] in FashionMNIST.classes
    assert predicted["notes.txt"] == "" and predicted["broken.png"] == ""
    assert "notes.txt: not a readable image" in captured.err and "broken.png: not a readable image" in captured.err


def test_empty_folder_is_an_error(trained, tmp_path):
    from datamodules import DatasetError

    ckpt, _ = trained
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no files"):
        cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(tmp_path / "empty"))
    for label in ("cat", "dog"):  # a labelled folder: said so, not 'no files'
        (tmp_path / "labelled" / label).mkdir(parents=True)
        (tmp_path / "labelled" / label / "1.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"sub-folders \(cat, dog\) and no files.*are not read.*zoo test --data ImageFolder"):
        cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(tmp_path / "labelled"))


# --- CIFAR-10-shaped images, normalised data -----------------------------------------------------------


@pytest.fixture
def trained_cifar(tmp_path):
    from tests.helpers.fakes import write_fake_cifar

    root = write_fake_cifar(tmp_path / "cifar")
    run = cli("fit", "--model", "LeNet", "--data", "tests.helpers.fakes.FakeCIFAR10", "--data.root", str(root),
              "--data.val_size", "24", "--data.batch_size", "16", "--data.normalize", "true",
              "--data.crop_padding", "4", "--data.hflip", "0.5", "--trainer.max_steps", "3", "--optimizer.lr", "0.05")
    model = run.model.eval()
    return Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt", model, root


def _expected(model, pixels: np.ndarray) -> torch.Tensor:
    """The model on the evaluation transform written out: [0, 1], then CIFAR-10's mean and std, no augmentation."""
    from datamodules import CIFAR10

    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255  # N x H x W x 3 -> N x 3 x H x W
    x = (x - torch.tensor(CIFAR10.mean).view(1, 3, 1, 1)) / torch.tensor(CIFAR10.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).softmax(-1)


def _predictions(cwd: Path) -> list[dict]:
    """The newest predictions.csv under ``cwd`` (the run's log folder holds it)."""
    path = max(cwd.glob("**/predictions*.csv"), key=lambda p: p.stat().st_mtime_ns)
    with open(path) as f:
        return list(csv.DictReader(f))


def test_predict_on_cifar_images_is_the_model_on_the_normalised_pixels(trained_cifar, tmp_path):
    from tests.helpers.fakes import CIFAR_CLASSES

    ckpt, model, _ = trained_cifar
    pixels = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "cifar_images"
    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"img{i}.png")  # lossless: the model sees these very pixels
    cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(folder))
    rows = _predictions(tmp_path)
    assert list(rows[0]) == ["file", "class", "probability"]
    assert [Path(r["file"]).name for r in rows] == [f"img{i}.png" for i in range(4)]
    probs = _expected(model, pixels)
    for row, p in zip(rows, probs):
        assert row["class"] == CIFAR_CLASSES[int(p.argmax())]
        assert float(row["probability"]) == pytest.approx(p.max().item(), abs=2e-6)


def test_test_set_predict_writes_the_index_column(trained_cifar, tmp_path):
    import pickle

    from tests.helpers.fakes import CIFAR_CLASSES

    ckpt, model, root = trained_cifar
    cli("predict", "--ckpt_path", str(ckpt))
    rows = _predictions(tmp_path)
    assert list(rows[0]) == ["index", "class", "probability"]
    assert [int(r["index"]) for r in rows] == list(range(21))  # every test image, in the file's order
    record = pickle.loads((root / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="bytes")
    pixels = np.asarray(record["data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    probs = _expected(model, pixels)
    for row, p in zip(rows, probs):
        assert row["class"] == CIFAR_CLASSES[int(p.argmax())]
        assert float(row["probability"]) == pytest.approx(p.max().item(), abs=2e-6)


def test_top_k_an_output_file_and_earlier_predictions_kept(trained_cifar, tmp_path, capsys):
    from tests.helpers.fakes import CIFAR_CLASSES

    ckpt, model, _ = trained_cifar
    pixels = np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"img{i}.png")
    run = ckpt.parent.parent
    cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(folder))
    cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(folder), "--top_k", "3")
    # the second prediction is a new file: the first is kept as it was
    assert sorted(p.name for p in run.glob("predictions*.csv")) == ["predictions.csv", "predictions_1.csv"]
    with open(run / "predictions_1.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "class", "probability", "class_2", "probability_2", "class_3", "probability_3"]
    probs = _expected(model, pixels)
    for row, p in zip(rows, probs):
        top = p.topk(3)
        assert [row["class"], row["class_2"], row["class_3"]] == [CIFAR_CLASSES[i] for i in top.indices.tolist()]
        for name, value in zip(("probability", "probability_2", "probability_3"), top.values.tolist()):
            assert float(row[name]) == pytest.approx(value, abs=2e-6)
    out = capsys.readouterr().out
    assert "img0.png" in out and f"written to {run / 'predictions_1.csv'}" in out  # shown, and where
    # --output: that file, wherever the user wants it
    target = tmp_path / "mine" / "preds.csv"
    cli("predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(folder), "--output", str(target))
    with open(target) as f:
        assert [Path(r["file"]).name for r in csv.DictReader(f)] == ["img0.png", "img1.png", "img2.png"]
    assert len(list(run.glob("predictions*.csv"))) == 2
