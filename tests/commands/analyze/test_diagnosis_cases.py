"""The diagnosis on runs whose answer is known by construction: a model too small and trained too briefly
(avoidable bias), a large MLP on 1,000 images for many epochs (variance), an image folder whose dev set is the
same classes in grayscale, with a train-dev part held out of train/ (data mismatch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import QUIET, SHARED_DATASETS, cli
from zoo.commands.analyze.command import main as analyze

needs_mnist = pytest.mark.skipif(not (SHARED_DATASETS / "MNIST").exists(), reason="needs ../shared/datasets/MNIST")
MNIST = ["--data", "MNIST", "--data.root", str(SHARED_DATASETS)]


def diagnosis(run_words: list[str], *analyze_words: str) -> dict:
    run = Path(cli("fit", *run_words, *QUIET).trainer.log_dir)
    analyze(["--ckpt_path", str(run / "checkpoints" / "best.ckpt"), "--top", "0", "--review", "5", *analyze_words])
    return json.loads((run / "analysis" / "val" / "diagnosis.json").read_text())


@needs_mnist
def test_a_model_too_small_trained_too_briefly_is_avoidable_bias():
    result = diagnosis(["--model", "SoftmaxRegression", *MNIST, "--trainer.max_epochs", "1",
                        "--trainer.limit_train_batches", "3", "--optimizer.lr", "0.02"], "--train_samples", "5000")
    assert result["errors"]["train"] > 30, result["errors"]
    assert result["large"] == ["avoidable bias"], result


@needs_mnist
@pytest.mark.slow  # 20 s
def test_a_large_mlp_on_1000_images_for_many_epochs_is_variance(tmp_path):
    # leave out all but 1,000 of the 55,000 training examples: the official positions the split gave them
    from datamodules import MNIST as Data

    dm = Data(root=str(SHARED_DATASETS))
    dm.prepare_data()
    dm.setup("fit")
    out = tmp_path / "all_but_1000.csv"
    out.write_text("index\n" + "".join(f"{i}\n" for i in dm.index["train"][1000:].tolist()))
    result = diagnosis(["--model", "MLP", "--model.hidden_sizes", "[1024]", *MNIST, "--data.exclude", str(out),
                        "--data.batch_size", "100", "--trainer.max_epochs", "60", "--optimizer.lr", "0.1",
                        "--trainer.check_val_every_n_epoch", "60"])
    assert result["examples"]["train"] == 1000
    assert result["errors"]["train"] < 1.0 and result["errors"]["train_dev"] > 6, result["errors"]
    assert result["large"] == ["variance"], result


def write_photos(root: Path, split: str, per_class: int, gray: bool, seed: int) -> None:
    # red and green of the same luminance: in grayscale the two classes look alike
    rng = np.random.default_rng(seed)
    for name, color in (("red", (200, 0, 0)), ("green", (0, 102, 0))):
        (root / split / name).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, (28, 28, 3))
            pixels = np.clip(np.array(color) + noise, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            (image.convert("L").convert("RGB") if gray else image).save(root / split / name / f"{i:03d}.png")


def test_a_dev_set_from_another_distribution_is_data_mismatch(tmp_path):
    root = tmp_path / "photos"
    write_photos(root, "train", 60, gray=False, seed=0)
    write_photos(root, "val", 20, gray=True, seed=1)
    run = Path(cli("fit", "--model", "LeNet", "--model.activation", "relu", "--data", "ImageFolder", "--data.root",
                   str(root), "--data.image_size", "28", "--data.crop_size", "28", "--data.random_resized_crop", "false",
                   "--data.hflip", "0", "--data.train_dev_size", "20", "--data.batch_size", "10",
                   "--data.cache_dir", str(tmp_path / "cache"), "--optimizer.lr", "0.05", "--trainer.max_epochs", "4",
                   *QUIET).trainer.log_dir)
    analyze(["--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--top", "0", "--review", "5"])
    result = json.loads((run / "analysis" / "val" / "diagnosis.json").read_text())
    assert set(result["errors"]) == {"train", "train_dev", "dev"}
    assert result["examples"] == {"train": 100, "train_dev": 20, "dev": 40}
    assert result["errors"]["train"] <= 5 and result["errors"]["train_dev"] <= 10, result["errors"]
    assert result["large"] == ["data mismatch"], result
    # the examples are named by their files in val/
    with open(run / "analysis" / "val" / "review.csv", newline="") as f:
        assert all(row["file"].startswith("val/") for row in csv.DictReader(f))


@needs_mnist
@pytest.mark.slow  # 10 s
def test_the_zoos_mnist_weights_on_the_official_test_set(tmp_path):
    """The command of the issue: label issues of MNIST's test set, named by their index in it."""
    from datamodules import MNIST as Data

    out = tmp_path / "DIR"
    analyze(["--model", "MnistCNN", "--model.weights", "MNIST_V1", *MNIST, "--split", "test", "--output", str(out),
             "--train_samples", "2000"])
    result = json.loads((out / "diagnosis.json").read_text())
    assert set(result["errors"]) == {"train", "train_dev", "test"} and result["split"] == "test"
    with open(out / "label_issues.csv", newline="") as f:
        issues = list(csv.DictReader(f))
    assert len(issues) >= 100
    flagged = [r for r in issues if r["flagged"] == "True"]
    assert flagged and issues[: len(flagged)] == flagged  # most likely wrong first
    scores = [float(r["label_quality"]) for r in flagged]
    assert scores == sorted(scores)
    official = Data(root=str(SHARED_DATASETS)).load(train=False)[1]
    assert all(Data.classes[official[int(r["index"])]] == r["given_label"] for r in issues)
    # the test error is 1 - the card's test accuracy (the card was measured on the same 10,000 images)
    from zoo.weights.catalogue import find

    assert result["errors"]["test"] == pytest.approx(100 * (1 - find("MnistCNN", "MNIST_V1").metrics["test_acc"]), abs=0.01)
