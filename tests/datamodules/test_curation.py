"""Training sets curated on purpose: labels flipped at a seeded rate, listed examples left out, one fold held out;
every example named by its place in the official split (or its file)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from datamodules import ImageFolder
from datamodules.curation import fold_ids, plant_noise
from tests.helpers.fakes import FakeFashionMNIST
from zoo_common import ConfigError


def fashion(root: Path, **kwargs) -> FakeFashionMNIST:
    from tests.helpers import make_mnist_like

    if not (root / "FashionMNIST" / "raw").exists():
        make_mnist_like(root / "FashionMNIST" / "raw")
    dm = FakeFashionMNIST(root=str(root), val_size=50, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def official_labels(root: Path) -> torch.Tensor:
    return FakeFashionMNIST(root=str(root)).load(train=True)[1]


def test_planted_noise_flips_exactly_the_fraction_to_other_classes():
    labels = torch.arange(2000) % 10
    noisy, flipped = plant_noise(labels, 0.1, seed=3, num_classes=10)
    changed = torch.nonzero(noisy != labels).flatten()
    assert torch.equal(changed, flipped) and len(flipped) == 200  # every chosen label changes, no other
    again, _ = plant_noise(labels, 0.1, seed=3, num_classes=10)
    assert torch.equal(again, noisy)
    assert not torch.equal(plant_noise(labels, 0.1, seed=4, num_classes=10)[0], noisy)
    shifts = (noisy[flipped] - labels[flipped]) % 10
    assert set(shifts.tolist()) == set(range(1, 10))  # every other class is reached


def test_label_noise_touches_training_labels_only_and_names_them(tmp_path):
    clean = fashion(tmp_path)
    noisy = fashion(tmp_path, label_noise=0.2, label_noise_seed=5)
    assert torch.equal(noisy.index["train"], clean.index["train"]) and torch.equal(noisy.val_set[1], clean.val_set[1])
    truth = official_labels(tmp_path)
    assert torch.equal(clean.train_set[1], truth[clean.index["train"]])
    differ = noisy.index["train"][noisy.train_set[1] != truth[noisy.index["train"]]]
    assert sorted(differ.tolist()) == sorted(noisy.flipped["index"].tolist())
    assert len(differ) == round(0.2 * len(truth[clean.index["train"]]))
    assert torch.equal(noisy.flipped["clean"], truth[noisy.flipped["index"]])


def write_exclude(path: Path, column: str, values) -> Path:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([column, "note"])
        out.writerows([[v, "x"] for v in values])
    return path


def test_exclude_leaves_out_the_listed_training_examples(tmp_path):
    clean = fashion(tmp_path)
    listed = clean.index["train"][:7].tolist() + clean.index["val"][:2].tolist()
    dm = fashion(tmp_path, exclude=str(write_exclude(tmp_path / "out.csv", "index", listed)))
    kept = set(dm.index["train"].tolist())
    assert kept == set(clean.index["train"].tolist()) - set(listed)
    assert dm.excluded == 7 and torch.equal(dm.val_set[1], clean.val_set[1])  # validation keeps its examples
    truth = official_labels(tmp_path)
    assert torch.equal(dm.train_set[1], truth[dm.index["train"]])
    assert torch.equal(dm.train_set[0], FakeFashionMNIST(root=str(tmp_path)).load(train=True)[0][dm.index["train"]])


@pytest.mark.parametrize("column, values, message", [
    ("index", [3, 300], "index '300' is not a position in the official training set (0 to 299)"),
    ("index", ["-1"], "index '-1'"),
    ("position", [3], "needs an `index` column"),
    ("file", ["a.png"], "needs an `index` column"),  # built-in data has no files
])
def test_bad_exclude_files_say_what_is_wrong(tmp_path, column, values, message):
    path = write_exclude(tmp_path / "out.csv", column, values)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fashion(tmp_path, exclude=str(path))


def test_folds_hold_out_disjoint_parts_that_cover_the_training_set(tmp_path):
    clean = fashion(tmp_path)
    held = [fashion(tmp_path, folds=3, fold=k) for k in range(3)]
    parts = [set(dm.index["held_out"].tolist()) for dm in held]
    assert set().union(*parts) == set(clean.index["train"].tolist())
    assert sum(len(p) for p in parts) == len(clean.index["train"])
    for dm, part in zip(held, parts):
        assert set(dm.index["train"].tolist()) == set(clean.index["train"].tolist()) - part
        # zoo analyze finds each fold from the whole training set's order, as the DataModule deals them
        assert part == set(clean.index["train"][fold_ids(len(clean.index["train"]), 3, clean.seed) == dm.fold].tolist())
    with pytest.raises(ConfigError, match="fold=3"):
        FakeFashionMNIST(root=str(tmp_path), folds=3, fold=3)
    with pytest.raises(ConfigError, match="folds=1"):
        FakeFashionMNIST(root=str(tmp_path), folds=1)


def test_an_image_folder_names_examples_by_file_and_holds_out_a_train_dev_part(tmp_path):
    root = tmp_path / "photos"
    for split, n in (("train", 12), ("val", 4)):
        for cls, color in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (10, 10), color).save(root / split / cls / f"{i:02d}.png")
    options = dict(image_size=8, crop_size=8, batch_size=4, cache_dir=str(tmp_path / "cache"))
    dm = ImageFolder(str(root), train_dev_size=4, **options)
    dm.setup("fit")
    assert len(dm.train_set[1]) == 20 and len(dm.train_dev_set[1]) == 4 and len(dm.val_set[1]) == 8
    files = dm.example_files["train"]
    assert files[int(dm.index["train"][0])].startswith("train/")
    assert {files[i] for i in dm.index["train_dev"].tolist()}.isdisjoint({files[i] for i in dm.index["train"].tolist()})
    assert all(dm.example_files["val"][i].startswith("val/") for i in dm.index["val"].tolist())
    gone = [files[i] for i in dm.index["train"][:3].tolist()]
    out = ImageFolder(str(root), train_dev_size=4, exclude=str(write_exclude(tmp_path / "x.csv", "file", gone)), **options)
    out.setup("fit")
    assert {files[i] for i in out.index["train"].tolist()} == {files[i] for i in dm.index["train"].tolist()} - set(gone)
    with pytest.raises(ConfigError, match="not in"):
        bad = ImageFolder(str(root), exclude=str(write_exclude(tmp_path / "y.csv", "file", ["train/cat/99.png"])), **options)
        bad.setup("fit")
