"""Image folders as real ones are: symbolic-link loops, dangling links and names that are not UTF-8, in
``zoo fit`` (ImageFolder) and ``zoo predict`` alike. Each is named and left out, or used; nothing crashes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules import ImageFolder
from tests.helpers import cli

NOT_UTF8 = b"\xff\xfeshot.png"  # a Latin-1 name as an old camera or archive writes it


def photo(path: Path | bytes, value: int) -> None:
    rng = np.random.default_rng(value)
    array = np.clip(rng.normal(value, 10, (12, 12, 3)), 0, 255).astype(np.uint8)
    with open(path, "wb") as f:
        Image.fromarray(array).save(f, format="PNG")


@pytest.fixture
def odd_tree(tmp_path):
    root = tmp_path / "photos"
    for label, value in (("dark", 40), ("light", 210)):
        folder = root / "train" / label
        folder.mkdir(parents=True)
        for i in range(5):
            photo(folder / f"{i}.png", value)
    dark = os.fsencode(root / "train" / "dark")
    photo(dark + b"/" + NOT_UTF8, 40)  # used: it opens like any other
    os.symlink("loop.png", root / "train" / "dark" / "loop.png")  # a link to itself
    os.symlink("gone.png", root / "train" / "light" / "dangling.png")
    os.symlink("..", root / "train" / "light" / "up")  # a folder link back up: not a class's image
    os.mkdir(os.fsencode(root / "train") + b"/\xe9t\xe9")  # a class folder whose name is not UTF-8
    photo(os.fsencode(root / "train") + b"/\xe9t\xe9/a.png", 120)
    return root


def test_fit_names_and_leaves_out_what_it_cannot_use(odd_tree, tmp_path):
    with pytest.warns(UserWarning) as warned:
        dm = ImageFolder(root=str(odd_tree), image_size=8, crop_size=8, val_size=0, cache_dir=str(tmp_path / "cache"))
        dm.setup("fit")
    assert dm.classes == ("dark", "light")
    train = odd_tree / "train"
    assert set(dm.left_out) == {str(train / "dark" / "loop.png"), str(train / "light" / "dangling.png"),
                                os.fsdecode(os.fsencode(train) + b"/\xe9t\xe9")}
    assert "symbolic links" in dm.left_out[str(train / "dark" / "loop.png")]
    messages = "\n".join(str(w.message) for w in warned)
    assert "\\xe9t\\xe9" in messages and "not UTF-8" in messages  # printable, with the fix
    messages.encode("utf-8")  # the warnings print on any terminal
    # six dark images (the non-UTF-8 one among them), five light
    assert sorted(dm.train_set[1].tolist()) == [0] * 6 + [1] * 5


def test_fit_and_predict_through_the_command(odd_tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cli("fit", "--model", "SoftmaxRegression", "--data", "ImageFolder", "--data.root", str(odd_tree),
        "--data.image_size", "8", "--data.crop_size", "8", "--data.val_size", "2", "--trainer.max_epochs", "1")
    shots = tmp_path / "shots"
    shots.mkdir()
    photo(shots / "a.png", 210)
    photo(os.fsencode(shots) + b"/" + NOT_UTF8, 40)
    os.symlink("loop.png", shots / "loop.png")
    with pytest.raises(SystemExit) as exit_:
        cli("predict", "--ckpt_path", "best", "--data.predict_path", str(shots))
    assert "1 of 3 files could not be read" in str(exit_.value.code)
    assert "loop.png" in capsys.readouterr().err
    (csv_file,) = tmp_path.glob("lightning_logs/*/version_0/predictions*.csv")
    rows = csv_file.read_bytes().splitlines()[1:]
    names = sorted(row.split(b",")[0] for row in rows)
    # the name as its own bytes: a reader of the file finds that very file
    assert names == sorted([os.fsencode(shots / "a.png"), os.fsencode(shots) + b"/" + NOT_UTF8,
                            os.fsencode(shots / "loop.png")])
    loop_row = next(row for row in rows if row.startswith(os.fsencode(shots / "loop.png")))
    assert loop_row.split(b",")[1] == b""  # no prediction for it
