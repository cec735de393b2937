"""``zoo analyze`` end to end on small data in the real formats: every file it writes, against the model's own
evaluation; the fold models of the training set; the errors it refuses with one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.helpers import QUIET, cli, make_mnist_like
from tests.helpers.fakes import FakeFashionMNIST
from zoo.commands.analyze.command import main as analyze

FILES = ("diagnosis.json", "per_class.csv", "confusion.png", "most_confused.csv", "top_losses.csv", "top_losses.png",
         "review.csv", "review.png", "label_issues.csv", "label_issues.png")


@pytest.fixture
def data(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    return ["--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", str(tmp_path / "data"),
            "--data.val_size", "100", "--data.batch_size", "20"]


def fit(data, *extra) -> Path:
    run = cli("fit", "--model", "MLP", *data, *QUIET, "--trainer.max_epochs", "2", "--optimizer.lr", "0.05", *extra)
    return Path(run.trainer.log_dir)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_file_agrees_with_the_models_own_evaluation(data, capsys):
    run = fit(data)
    best = str(run / "checkpoints" / "best.ckpt")
    analyze(["--ckpt_path", best, "--top", "30", "--review", "12", "--top_losses", "8"])
    out = run / "analysis" / "val"
    assert all((out / name).is_file() for name in FILES)
    result = json.loads((out / "diagnosis.json").read_text())
    # the validation error is 1 - the accuracy `zoo validate` measures with Lightning's loop
    validated = cli("validate", "--ckpt_path", best, *QUIET).trainer.callback_metrics["val/acc"].item()
    assert result["errors"]["train_dev"] == pytest.approx(100 * (1 - validated), abs=1e-4)
    assert result["split"] == "val" and result["examples"] == {"train": 200, "train_dev": 100}
    assert result["gaps"]["variance"] == pytest.approx(result["errors"]["train_dev"] - result["errors"]["train"])
    shown = capsys.readouterr().out
    assert "avoidable bias" in shown and result["diagnosis"] in shown
    # examples are named by their place in the official training set, with the label given there
    dm = FakeFashionMNIST(root=data[3], val_size=100)
    dm.prepare_data()
    dm.setup("fit")
    official = dm.load(train=True)[1]
    issues = rows(out / "label_issues.csv")
    assert len(issues) >= 30 and {int(r["index"]) for r in issues} <= set(dm.index["val"].tolist())
    assert all(dm.classes[official[int(r["index"])]] == r["given_label"] for r in issues)
    flags = [r["flagged"] == "True" for r in issues]
    assert flags == sorted(flags, reverse=True)  # the flagged first
    review = rows(out / "review.csv")
    assert all(r["given_label"] != r["predicted_label"] and r["category"] == "" for r in review)
    assert len(review) == min(12, round(result["errors"]["train_dev"]))  # 100 validation examples: % = count
    per_class = rows(out / "per_class.csv")
    assert sum(int(r["support"]) for r in per_class) == 100
    losses = [float(r["loss"]) for r in rows(out / "top_losses.csv")]
    assert losses == sorted(losses, reverse=True) and len(losses) == 8
    # TensorBoard: the diagnosis and the pictures, in the run analysed
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = next(run.glob("events.out.tfevents.*.analysis"))
    acc = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    assert {"analysis/val/confusion", "analysis/val/top_losses", "analysis/val/label_issues"} <= set(acc.Tags()["images"])
    assert "analysis/val/diagnosis/text_summary" in acc.Tags()["tensors"]


@pytest.mark.slow  # three `zoo fit` processes
def test_the_training_set_by_fold_models_against_planted_noise(data, capsys):
    run = fit(data, "--data.label_noise", "0.2", "--data.label_noise_seed", "1")
    planted = rows(run / "label_noise.csv")
    assert len(planted) == 40  # 20 % of 200
    official = FakeFashionMNIST(root=data[3]).load(train=True)[1]
    assert all(int(r["clean_label"]) == official[int(r["index"])] != int(r["noisy_label"]) for r in planted)
    best = str(run / "checkpoints" / "best.ckpt")
    words = ["--ckpt_path", best, "--split", "train", "--folds", "2", "--top", "50", "--output", str(run / "an")]
    analyze(words)
    folds = [run / "an" / "folds" / f"fold_{k}" for k in range(2)]
    assert all((f / "checkpoints" / "best.ckpt").is_file() and (f / "fold_done").exists() for f in folds)
    # each fold model trained without its fold: what its run held out is what the analysis predicted it for
    held = [torch.load(f / "checkpoints" / "best.ckpt", weights_only=True)["datamodule_hyper_parameters"] for f in folds]
    assert [h["folds"] for h in held] == [2, 2] and [h["fold"] for h in held] == [0, 1]
    assert all(h["label_noise"] == 0.2 for h in held)  # the run's own config
    result = json.loads((run / "an" / "diagnosis.json").read_text())
    check = result["label_issues"]["against_planted_noise"]
    found = {int(r["index"]) for r in rows(run / "an" / "label_issues.csv") if r["flagged"] == "True"}
    truth = {int(r["index"]) for r in planted}
    assert check["found"] == len(found & truth) and check["planted"] == 40
    assert check["precision"] >= 0.5, check  # a 2-epoch MLP on 100 images a fold: far better than 20 % by chance
    # run again: the folds are done, nothing is trained; a fold whose mark is gone resumes from its last.ckpt
    (folds[1] / "fold_done").unlink()
    capsys.readouterr()
    analyze(words)
    said = capsys.readouterr().out
    assert f"Fold 1 of 2: trained before, in {folds[0]}" in said and f"Fold 2 of 2: resuming {folds[1]}" in said


@pytest.mark.parametrize("words, message", [
    (["--split", "dev"], "--split dev: choose train, val or test"),
    (["--folds", "1", "--split", "train"], "--folds 1: give 2 or more"),
    (["--folds", "3"], "--folds 3 is for --split train"),
    (["--review", "-1"], "--review -1: give a count >= 0"),
    (["--reference_error", "100"], "--reference_error 100.0: give a per cent in [0, 100)"),
])
def test_bad_options_are_one_line_and_exit_2(words, message, capsys):
    from zoo.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["analyze", *words])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_split_the_data_does_not_have(tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main

    for cls, color in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
        (tmp_path / "photos" / "train" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (32, 32), color).save(tmp_path / "photos" / "train" / cls / f"{i}.png")
    common = ["--model", "LeNet", "--data", "ImageFolder", "--data.root", str(tmp_path / "photos"), "--data.image_size",
              "28", "--data.crop_size", "28", "--data.val_size", "4", "--data.batch_size", "4",
              "--data.cache_dir", str(tmp_path / "cache")]
    run = cli("fit", *common, *QUIET, "--trainer.max_epochs", "1")
    with pytest.raises(SystemExit) as stop:
        main(["analyze", "--ckpt_path", str(Path(run.trainer.log_dir) / "checkpoints" / "best.ckpt"), "--split", "test"])
    assert stop.value.code == 2
    assert "test" in capsys.readouterr().err
