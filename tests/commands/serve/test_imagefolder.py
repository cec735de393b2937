"""The user's own photos all the way out: a model trained on an image folder, exported, and served; the server
answers each photo (any size, format, a phone's EXIF rotation) as ``zoo predict`` does from the checkpoint."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("litserve")

from tests.commands.serve.test_command import answer_equals_row, post, start  # noqa: E402
from tests.helpers import ENV  # noqa: E402


def photo(rng: np.random.Generator, tint: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    noise = rng.integers(0, 80, (size[1], size[0], 3))
    return Image.fromarray(np.clip(noise + np.array(tint), 0, 255).astype(np.uint8))


def write_photos(root: Path) -> Path:
    """train/ and test/ of two classes (reddish and bluish noise) at several sizes; returns a folder of new photos."""
    rng = np.random.default_rng(0)
    tints = {"red": (170, 20, 20), "blue": (20, 20, 170)}
    for split, n in (("train", 16), ("test", 6)):
        for cls, tint in tints.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                photo(rng, tint, (24 + 3 * i, 40 - i)).save(root / split / cls / f"{i}.png")
    new = root.parent / "new photos"
    new.mkdir()
    photo(rng, tints["red"], (50, 30)).save(new / "wide red.jpg", quality=90)
    photo(rng, tints["blue"], (20, 45)).save(new / "tall blue.png")
    half = photo(rng, tints["red"], (40, 40))
    half.paste(photo(rng, tints["blue"], (40, 20)), (0, 0))
    half.save(new / "mixed.webp", lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown rotated: the readers must turn it the same way
    half.resize((48, 32)).save(new / "phone.jpg", quality=95, exif=exif)
    return new


@pytest.mark.slow  # fit, export, predict and a server: four processes
def test_an_image_folder_model_exported_and_served_answers_as_zoo_predict(tmp_path):
    new = write_photos(tmp_path / "photos")
    data = ["--data", "ImageFolder", "--data.root", str(tmp_path / "photos"), "--data.image_size", "32",
            "--data.crop_size", "32", "--data.val_size", "4", "--data.cache_dir", str(tmp_path / "cache")]

    def zoo(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env=ENV)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    zoo("fit", "--model", "LeNet", "--model.activation", "relu", "--model.pooling", "max", "--optimizer.lr", "0.1", *data,
        "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false")
    zoo("export", "--ckpt_path", "best", "--output", str(tmp_path / "folder.onnx"), "--check_images", "0")
    zoo("predict", "--ckpt_path", "best", "--data.predict_path", str(new), "--top_k", "2", "--output",
        str(tmp_path / "p.csv"))
    with open(tmp_path / "p.csv") as f:
        rows = {Path(row["file"]).name: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(p.name for p in new.iterdir())
    server, url = start(["--exported", str(tmp_path / "folder.onnx")], tmp_path)
    try:
        for name, row in rows.items():
            status, answer = post(url + "/predict", {"image": (name, (new / name).read_bytes()), "top_k": 2})
            assert status == 200, answer
            assert [p["class"] for p in answer["predictions"]] == [row["class"], row["class_2"]]
            answer_equals_row(answer, row)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(30)
