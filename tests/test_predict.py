"""`zoo predict` on image files: PNG and JPEG, gray and color, any size; bad files named, good ones predicted."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import FashionMNIST
from tests.conftest import cli, mnist_like_arrays


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
