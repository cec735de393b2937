"""The weights catalogue: every entry's file is there, is what its sha256 says, fits its model and scores what its
card says; names, damaged files and downloads fail with one line."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from datamodules.idx import read_idx
from tests.helpers import ENV, REPO, SHARED_DATASETS, cli
from zoo.weights import catalogue
from zoo.weights.catalogue import CatalogueError, Entry
from zoo_common import get_model

ENTRIES = catalogue.entries()
needs_data = pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").exists(), reason="needs ../shared/datasets")


def zoo(args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=600)


def network(entry: Entry) -> torch.nn.Module:
    """The entry's model built from its card alone, untrained."""
    model = get_model(entry.model)(num_classes=len(entry.classes), in_channels=entry.input["channels"],
                                   input_size=entry.input["size"])
    return model.net.eval()


def test_the_catalogue_has_every_model_it_promises():
    assert {e.model for e in ENTRIES} >= {"SoftmaxRegression", "MLP", "LeNet", "LeNetBN", "LeNetBNScratch", "MnistCNN"}
    assert len({e.key for e in ENTRIES}) == len(ENTRIES)
    shipped = [e for e in ENTRIES if e.shipped]
    assert all(e.file_bytes < 10 * 2**20 for e in shipped)
    assert sum(e.file_bytes for e in shipped) < 30 * 2**20


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.key)
def test_each_file_is_its_sha256_and_fits_its_model(entry, tmp_path, monkeypatch):
    if not entry.shipped:  # too large for the package: fetched from its URL, or made by the command it names
        assert entry.file_bytes >= 10 * 2**20
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
        expected = "cannot be downloaded" if entry.url else f"no download yet: make it on this machine with " \
                                                            f"`zoo reproduce {entry.model} {entry.name} --data.root DIR`"
        with pytest.raises(CatalogueError, match=re.escape(expected)):
            catalogue.local_file(entry)
        return
    path = entry.packaged
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    assert entry.sha256.startswith(path.name.rsplit("-", 1)[1].split(".")[0])
    net = network(entry)
    net.load_state_dict(load_file(path), strict=True)  # every tensor, every shape
    assert sum(p.numel() for p in net.parameters()) == entry.params
    assert (REPO / "zoo" / "weights" / entry.curve).exists()
    for config in entry.configs:
        assert (REPO / config).exists()


def plain_accuracy(entry: Entry, limit: int | None = None) -> float:
    """The test accuracy by hand: the IDX test files, the safetensors file, a plain forward pass."""
    raw = SHARED_DATASETS / entry.data / "raw"
    images, labels = read_idx(raw / "t10k-images-idx3-ubyte")[:limit], read_idx(raw / "t10k-labels-idx1-ubyte")[:limit]
    x = images.unsqueeze(1).float() / 255
    if entry.data_args.get("normalize"):
        x = (x - entry.data_args["mean"][0]) / entry.data_args["std"][0]
    net = network(entry)
    net.load_state_dict(load_file(entry.packaged))
    with torch.no_grad():
        predicted = torch.cat([net(b).argmax(1) for b in x.split(1000)])
    return (predicted == labels.long()).double().mean().item()


@needs_data
@pytest.mark.parametrize("key", ["SoftmaxRegression.FASHIONMNIST_V1", "LeNet.FASHIONMNIST_V1", "MnistCNN.MNIST_V1"])
def test_the_card_test_accuracy_is_what_a_plain_loop_measures_from_the_file(key):
    entry = next(e for e in ENTRIES if e.key == key)
    assert entry.metrics["test_samples"] == 10000
    assert plain_accuracy(entry) == pytest.approx(entry.metrics["test_acc"], abs=5e-7)


@needs_data
def test_zoo_test_with_a_weights_name_prints_the_card_accuracy(tmp_path):
    entry = catalogue.find("LeNet", "FASHIONMNIST_V1")
    out = zoo(["test", "--model", "LeNet", "--model.weights", "FASHIONMNIST_V1", "--data", "FashionMNIST",
               "--data.root", str(SHARED_DATASETS)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"test acc {entry.metrics['test_acc']:.4f} on 10,000 images; its card: {entry.metrics['test_acc']:.4f}" in out.stdout + out.stderr


def _card_predictions(entry, images: torch.Tensor) -> list[str]:
    """The card's network on the card's preprocessing, written out here: the classes it gives ``images``."""
    net = network(entry).eval()
    net.load_state_dict(load_file(entry.packaged))
    x = images.float() / 255
    if entry.data_args.get("normalize"):
        x = (x - torch.tensor(entry.data_args["mean"]).view(1, -1, 1, 1)) / torch.tensor(entry.data_args["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        return [entry.classes[i] for i in net(x).argmax(1)]


@pytest.mark.parametrize("model, name, data", [("LeNet", "FASHIONMNIST_V1", ["--data", "FashionMNIST"]),
                                               ("LeNet", "FASHIONMNIST_V1", []),
                                               ("LeNetBN", "CIFAR10PHOTOS_V1", [])],
                         ids=["fashion-with-data", "fashion-card-data", "photos-card-data"])
def test_predict_with_a_weights_name_needs_only_the_images(tmp_path, model, name, data):
    """Class names and data settings come from the card (its DataModule too, when --data is left out); no
    dataset is needed anywhere to classify one's own images."""
    entry = catalogue.find(model, name)
    channels, size = entry.input["channels"], entry.input["size"]
    g = torch.Generator().manual_seed(0)
    (tmp_path / "imgs").mkdir()
    images = torch.randint(0, 256, (6, channels, size, size), dtype=torch.uint8, generator=g)
    import torchvision

    for i, image in enumerate(images):
        torchvision.io.write_png(image, str(tmp_path / "imgs" / f"{i}.png"))
    cli("predict", "--model", model, "--model.weights", name, *data, "--data.predict_path", "imgs", "--output", "p.csv")
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == _card_predictions(entry, images)
    assert not (tmp_path / "data").exists() and not (tmp_path / "images").exists()  # no dataset was fetched


def test_zoo_test_with_a_weights_name_on_a_folder_with_only_test(tmp_path):
    entry = catalogue.find("LeNetBN", "CIFAR10PHOTOS_V1")
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (len(entry.classes) * 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = [entry.classes[i % len(entry.classes)] for i in range(len(images))]
    import torchvision

    for i, (image, label) in enumerate(zip(images, labels)):
        (tmp_path / "photos" / "test" / label).mkdir(parents=True, exist_ok=True)
        torchvision.io.write_png(image, str(tmp_path / "photos" / "test" / label / f"{i}.png"))
    run = cli("test", "--model", "LeNetBN", "--model.weights", "CIFAR10PHOTOS_V1", "--data.root", "photos",
              "--data.cache_dir", "cache")
    predicted = _card_predictions(entry, images)
    expected = sum(p == y for p, y in zip(predicted, labels)) / len(labels)
    assert run.trainer.callback_metrics["test/acc"].item() == pytest.approx(expected)
    assert int(run.trainer.callback_metrics["test/samples"]) == len(labels)


def one_line(out) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize("name, expected", [
    ("FASHIONMNIST_V2", f"LeNet has no weights called 'FASHIONMNIST_V2'; its names: "
                        f"{', '.join(catalogue.names_for('LeNet'))} (`zoo weights` lists them all)"),
    ("CIFAR10PHOTOS_V1", "(CIFAR10PHOTOS_V1 belongs to"),
])
def test_a_wrong_name_is_one_line_exit_2(tmp_path, name, expected):
    if name == "CIFAR10PHOTOS_V1" and not catalogue.find("LeNetBN", name):
        pytest.skip("no CIFAR-10 photos weights in this catalogue")
    line = one_line(zoo(["test", "--model", "LeNet", "--model.weights", name, "--data", "FashionMNIST"], tmp_path))
    assert expected in line


def test_a_tampered_file_is_refused_with_one_line(tmp_path, monkeypatch, capsys):
    entry = catalogue.find("LeNet", "FASHIONMNIST_V1")
    files = tmp_path / "files"
    shutil.copytree(catalogue.PACKAGED, files)
    damaged = bytearray((files / entry.file).read_bytes())
    damaged[-1] ^= 1  # one bit of the last weight
    (files / entry.file).write_bytes(bytes(damaged))
    monkeypatch.setattr(catalogue, "PACKAGED", files)
    monkeypatch.chdir(tmp_path)
    from zoo.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["test", "--model", "LeNet", "--model.weights", "FASHIONMNIST_V1", "--data", "FashionMNIST"])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the file the catalogue names for LeNet FASHIONMNIST_V1" in err[0]
    assert "reinstall d2l-zoo" in err[0]


def fake_entry(tmp_path, **changes) -> tuple[Entry, bytes]:
    """An entry for a file not in the package, its bytes at a file:// URL."""
    blob_path = tmp_path / "served" / "softmax.safetensors"
    blob_path.parent.mkdir()
    save_file({"1.weight": torch.ones(10, 784), "1.bias": torch.zeros(10)}, str(blob_path))
    blob = blob_path.read_bytes()
    record = {**catalogue.find("SoftmaxRegression", "FASHIONMNIST_V1").record, "name": "TEST_V1", "shipped": False,
              "file": "softmax-test.safetensors", "sha256": hashlib.sha256(blob).hexdigest(),
              "url": blob_path.as_uri(), **changes}
    return Entry(record), blob


def test_a_file_with_a_url_is_fetched_into_the_hub_cache_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    entry, blob = fake_entry(tmp_path)
    state, _ = catalogue.load(entry)
    assert entry.cached == tmp_path / "torch" / "hub" / "checkpoints" / "d2l-zoo" / "softmax-test.safetensors"
    assert entry.cached.read_bytes() == blob and torch.equal(state["1.weight"], torch.ones(10, 784))


def test_a_download_that_is_not_the_file_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    entry, _ = fake_entry(tmp_path, sha256="0" * 64)
    with pytest.raises(CatalogueError, match="is not the catalogue's file; nothing was saved|not the catalogue's file"):
        catalogue.local_file(entry)
    assert not list((tmp_path / "torch").rglob("*.safetensors"))


def test_a_file_without_a_download_says_the_command_that_makes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    entry, _ = fake_entry(tmp_path, url=None)
    with pytest.raises(CatalogueError, match=r"no download yet: make it on this machine with `zoo reproduce "
                                             r"SoftmaxRegression TEST_V1 --data.root DIR`"):
        catalogue.local_file(entry)


def test_zoo_weights_lists_every_entry_and_shows_a_card(tmp_path):
    out = zoo(["weights"], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    for entry in ENTRIES:
        assert any(r.split()[:2] == [entry.model, entry.name] and f"{entry.metrics['test_acc']:.4f}" in r for r in rows)
    card = zoo(["weights", "LeNet", "FASHIONMNIST_V1"], tmp_path)
    assert json.loads(card.stdout) == catalogue.find("LeNet", "FASHIONMNIST_V1").record


def data_root(entry: Entry) -> list[str]:
    root = SHARED_DATASETS / "cifar10-images" if entry.data == "ImageFolder" else SHARED_DATASETS
    return ["--data.root", str(root)]


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.shipped], ids=lambda e: e.key)
def test_every_shipped_file_scores_its_card_on_the_real_test_set(entry, tmp_path):
    """`zoo test --model.weights NAME` with the data alone: sizes, normalisation and classes come from the card."""
    cache = ["--data.cache_dir", str(tmp_path / "cache")] if entry.data == "ImageFolder" else []
    out = zoo(["test", "--model", entry.model, "--model.weights", entry.name, "--data", entry.data,
               *data_root(entry), *cache], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    m = entry.metrics
    assert (f"test acc {m['test_acc']:.4f} on {m['test_samples']:,} images; its card: {m['test_acc']:.4f} on "
            f"{m['test_samples']:,} (the same)") in out.stdout + out.stderr
    metrics = json.loads(next(tmp_path.rglob("test_metrics.json")).read_text())["metrics"]
    assert metrics["test/loss"] == pytest.approx(m["test_loss"], abs=1e-6)


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("key", ["SoftmaxRegression.FASHIONMNIST_V1", "LeNet.FASHIONMNIST_V1"])
def test_zoo_reproduce_retrains_the_same_bits(key, tmp_path):
    entry = next(e for e in ENTRIES if e.key == key)
    out = zoo(["reproduce", entry.model, entry.name, "--data.root", str(SHARED_DATASETS), "--out", "runs"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"sha256 of the retrained file: {entry.sha256}" in out.stdout
    assert "Identical: the retrained weights are the card's, bit for bit." in out.stdout
    assert (tmp_path / "runs" / key / "fit.log").exists()


def test_the_documentation_table_is_the_catalogue():
    from zoo.weights.table import readme_table

    readme = (REPO / "docs" / "weights.md").read_text()
    assert f"<!-- weights_table:start -->\n{readme_table()}\n<!-- weights_table:end -->" in readme


@pytest.mark.parametrize("args, expected", [
    (["reproduce"], "the following arguments are required: model, name, --data.root"),
    (["reproduce", "LeNet", "NOPE_V1", "--data.root", "x"], "LeNet has no weights called 'NOPE_V1'"),
    (["weights", "LeNet"], "zoo weights MODEL NAME (one card)"),
    (["weights", "LeNet", "NOPE_V1"], "LeNet has no weights called 'NOPE_V1'"),
])
def test_bad_weights_commands_are_one_line_exit_2(tmp_path, args, expected):
    assert expected in one_line(zoo(args, tmp_path))


def test_the_card_sets_the_input_on_its_own_data_and_the_normalisation_on_other_data():
    from datamodules import MNIST, ImageFolder
    from zoo.weights.data_settings import apply_card

    entry = catalogue.find("MnistCNN", "MNIST_V1")
    own = {"normalize": False, "mean": None, "std": None, "resize": 32}
    apply_card(entry, own, MNIST, "test")
    assert own == {"normalize": True, "mean": [0.1307], "std": [0.3081], "resize": None}
    gray_folder = {"normalize": True, "mean": None, "std": None, "image_size": 64, "crop_size": 56, "channels": 3,
                   "classes": ["a", "b"]}
    apply_card(entry, gray_folder, ImageFolder, "fit")  # fine-tuning onto 3-channel photos: the statistics repeated
    assert gray_folder == {"normalize": True, "mean": [0.1307] * 3, "std": [0.3081] * 3, "image_size": 64,
                           "crop_size": 56, "channels": 3, "classes": ["a", "b"]}


@needs_data
@pytest.mark.slow
def test_zoo_reproduce_on_other_bits_compares_the_accuracy(tmp_path, monkeypatch, capsys):
    """Where the platform differs the bits differ: the retrained file's test accuracy is compared instead."""
    from zoo.commands import reproduce

    real = catalogue.find("SoftmaxRegression", "FASHIONMNIST_V1")
    other = Entry({**real.record, "sha256": "f" * 64, "hardware": {**real.hardware, "cpu": "another CPU"}})
    monkeypatch.setattr(catalogue, "entries", lambda: (other,))
    assert reproduce.reproduce([real.model, real.name, "--data.root", str(SHARED_DATASETS),
                                "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert f"sha256 of the retrained file: {real.sha256}" in out and "Different bits" in out
    assert f"Test acc {real.metrics['test_acc']:.4f}, the card's {real.metrics['test_acc']:.4f}: within 0.01" in out


def test_a_card_keeps_the_normalisation_its_checkpoint_trained_with():
    """The card's data settings come from the checkpoint's saved DataModule options: mean and std among them
    (without them a model trained on normalised inputs is evaluated on raw ones)."""
    from zoo.weights.card import data_contract

    saved = {"_class_path": "datamodules.MNIST", "root": "data", "batch_size": 64, "normalize": True,
             "mean": (0.1307,), "std": (0.3081,), "resize": None, "hflip": 0.0}
    data, contract, classes = data_contract({"datamodule_hyper_parameters": saved})
    assert data == "MNIST" and classes == [str(d) for d in range(10)]
    assert contract == {"normalize": True, "mean": (0.1307,), "std": (0.3081,), "resize": None}
    for entry in catalogue.entries():  # and every shipped card that normalises says with what, per channel
        if entry.data_args.get("normalize"):
            assert len(entry.data_args["mean"]) == len(entry.data_args["std"]) == entry.input["channels"], entry.key


def test_each_card_names_the_command_its_recipe_trains_with():
    """The card's `command` is what `zoo reproduce` runs (the recipe's): the files trained in the usual layout
    keep `--model.channels_last false` in both, or a retrain would round differently."""
    from zoo.weights.recipes import RECIPES
    from zoo.weights.train import fit_command

    recipes = {r.key: r for r in RECIPES}
    assert {e.key for e in ENTRIES} == set(recipes)
    for entry in ENTRIES:
        assert entry.command == "zoo " + " ".join(fit_command(recipes[entry.key], "DATA_ROOT")), entry.key
    assert "--model.channels_last false" in next(e for e in ENTRIES if e.key == "LeNet.FASHIONMNIST_V1").command
