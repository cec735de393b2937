"""zoo export: every model as ONNX and pt2, answering as the eager model; the contract enforced; the CLI's
check against the card's own test accuracy; a disagreeing file refused and nothing left behind."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime")

import datamodules.registry  # noqa: E402,F401
import zoo  # noqa: E402,F401
from tests.helpers import SHARED_DATASETS  # noqa: E402
from zoo.commands.export import formats, graph, parity  # noqa: E402
from zoo_common import get_datamodule, get_model, list_models  # noqa: E402

SIZES = {"NiN": 224, "GoogLeNet": 96, "ResNet18": 96}


def model_and_data(name: str):
    torch.manual_seed(0)
    if name == "LinearRegression":
        data = get_datamodule("SyntheticPoints")()
        return get_model(name)(num_features=data.num_features), data
    size = SIZES.get(name)
    # normalised, and resized where the model needs it: both steps must travel inside the file
    data = get_datamodule("FashionMNIST")(resize=size, normalize=True, mean=(0.29,), std=(0.35,))
    model = get_model(name)(num_classes=10, in_channels=1, input_size=data.input_size)
    model.train()
    with torch.no_grad():  # BatchNorm's running statistics away from their initial 0 and 1
        for _ in range(3):
            model(torch.rand(8, *data.input_shape) * 3 - 1)
    return model.eval(), data


def reference(model, data, x: torch.Tensor) -> torch.Tensor:
    """The eager model on the preprocessing written out here, not the DataModule's transform."""
    if x.dtype != torch.uint8:
        return model(x)
    y = x.float() / 255
    if data.resize and data.resize != y.shape[-1]:
        y = F.interpolate(y, size=(data.resize, data.resize), mode="bilinear", align_corners=False, antialias=True)
    y = (y - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1)
    return model(y)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_and_answers_as_the_eager_model(name, fmt, tmp_path):
    model, data = model_and_data(name)
    spec = graph.contract(model, data)
    path = tmp_path / f"m{formats.FORMATS[fmt]}"
    with open(path, "wb") as f:
        formats.WRITERS[fmt](graph.exportable(model, data), graph.example_input(spec, 2), spec, f)
    runner = formats.Runner(path, fmt, spec=spec)
    for n in (1, 5):  # the example had 2: the batch is dynamic
        x = graph.example_input(spec, n)
        x = x if x.dtype != torch.uint8 else torch.randint(0, 256, x.shape, dtype=torch.uint8)
        with torch.no_grad():
            expected = reference(model, data, x)
        got = runner(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max() <= parity.TOLERANCE, name
        if spec["kind"] == "classification":
            assert torch.allclose(runner.outputs(x)[1], expected.softmax(-1), atol=1e-5)
            assert spec["classes"] == list(data.classes) and spec["input"]["shape"] == ["N", 1, 28, 28]


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_inputs_other_than_the_contract_are_refused_clearly(fmt, tmp_path):
    model, data = model_and_data("LeNet")
    spec = graph.contract(model, data)
    path = tmp_path / f"m{formats.FORMATS[fmt]}"
    with open(path, "wb") as f:
        formats.WRITERS[fmt](graph.exportable(model, data), graph.example_input(spec), spec, f)
    checked, raw = formats.Runner(path, fmt, spec=spec), formats.Runner(path, fmt)
    bad = {"size": torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "channels": torch.zeros(2, 3, 28, 28, dtype=torch.uint8),
           "float": torch.zeros(2, 1, 28, 28), "empty": torch.zeros(0, 1, 28, 28, dtype=torch.uint8)}
    for what, x in bad.items():
        with pytest.raises(ValueError, match=r"takes uint8 batches of N x 1 x 28 x 28"):
            checked(x)
        if what != "empty":  # the file itself refuses them too, whoever runs it (no silent answer)
            with pytest.raises(Exception) as error:
                raw(x)
            assert any(w in str(error.value).lower() for w in ("dim", "shape", "type", "expected", "guard")), what
    # any N, as the contract says (pt2 once refused batches over 4,096)
    big = torch.randint(0, 256, (4097, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(model, data, big)
    assert (checked(big) - expected).abs().max() <= parity.TOLERANCE


def test_a_changed_file_is_refused_by_its_recorded_sha256(tmp_path):
    from zoo.commands.serve.model import contract_of
    from zoo_common import ConfigError

    model, data = model_and_data("LeNet")
    spec = graph.contract(model, data)
    path = tmp_path / "m.onnx"
    with open(path, "wb") as f:
        formats.WRITERS["onnx"](graph.exportable(model, data), graph.example_input(spec), spec, f)
    from zoo.weights.catalogue import sha256_of

    (tmp_path / "m.onnx.json").write_text(json.dumps(dict(spec, sha256=sha256_of(path))))
    assert contract_of(path)["classes"] == spec["classes"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one weight's byte
    path.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=r"sha256 .* is not the .* was changed or damaged"):
        contract_of(path)
    # without FILE.json nothing proves the file is the one checked: refused, or served when asked, saying so
    (tmp_path / "m.onnx.json").unlink()
    with pytest.raises(ConfigError, match=r"m.onnx.json is missing.*--unchecked"):
        contract_of(path)
    assert contract_of(path, unchecked=True)["classes"] == spec["classes"]


class Off:
    """A runner whose logits are off by 0.01: what a wrong layer or preprocessing would look like, small."""

    def __init__(self, runner):
        self.runner = runner

    def __call__(self, x):
        return self.runner(x) + 0.01


def test_a_file_that_disagrees_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    import argparse

    from zoo.commands.export import command

    model, data = model_and_data("LeNet")
    data.setup = lambda stage=None: None
    data.test_set = (torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (50,)))
    options = argparse.Namespace(format="onnx", output=str(tmp_path / "out" / "m.onnx"), tolerance=1e-3,
                                 check_images=0)
    real = formats.Runner
    monkeypatch.setattr(formats, "Runner", lambda *a, **k: Off(real(*a, **k)))
    with pytest.raises(parity.ParityError, match=r"disagrees with the eager model: 50 .* max \|Δlogit\| .* 1\.\d\de-02"):
        command.export(model, data, "x.ckpt", None, options)
    assert list((tmp_path / "out").iterdir()) == []  # neither the file, its contract nor a temporary file
    monkeypatch.setattr(formats, "Runner", real)
    out = command.export(model, data, "x.ckpt", None, options)
    record = json.loads((tmp_path / "out" / "m.onnx.json").read_text())
    assert out.exists() and record["parity"]["inputs"] == 50 and record["parity"]["max_abs_diff"] < 1e-4


@pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").is_dir(), reason="needs ../shared/datasets")
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_zoo_export_of_catalogue_weights_checks_the_whole_test_set(fmt, tmp_path):
    """The check's eager accuracy is the card's own test accuracy (measured by zoo test), the file's the same."""
    from zoo.weights.catalogue import find

    out = tmp_path / f"lenet.{fmt}"
    cmd = [sys.executable, "-m", "zoo.cli", "export", "--data", "FashionMNIST", "--format", fmt, "--model.weights",
           "FASHIONMNIST_V1", "--check_images", "0", "--model", "LeNet", "--data.root", str(SHARED_DATASETS),
           "--output", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.with_name(out.name + ".json").read_text())
    card = find("LeNet", "FASHIONMNIST_V1")
    assert record["parity"]["inputs"] == 10000
    assert record["parity"]["eager_accuracy"] == pytest.approx(card.metrics["test_acc"], abs=1e-6)
    assert record["parity"]["exported_accuracy"] == pytest.approx(card.metrics["test_acc"], abs=1e-4)
    assert record["source"] == {"weights": "LeNet.FASHIONMNIST_V1"} and record["format"] == fmt
    assert f"accuracy eager {card.metrics['test_acc']:.4f}" in done.stdout
    # nothing from torch's own logging (such as a warning about the temporary file's name) reaches the user
    assert not re.search(r"^[WE]\d{4} ", done.stderr, re.M), done.stderr


def test_bad_export_commands_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from tests.helpers import run_main

    monkeypatch.chdir(tmp_path)
    for args, words in ((["--format", "tflite", "--model", "LeNet"], "--format tflite: choose onnx or pt2"),
                        (["--model", "LeNet", "--data", "FashionMNIST"], "needs trained weights"),
                        (["--model", "LeNet", "--model.weights", "NOPE_V1", "--data", "FashionMNIST"], "NOPE_V1")):
        code, out = run_main(["export", *args], capsys)
        assert code == 2 and words in out, (args, out)
        assert out.strip().splitlines()[-1].startswith("error:")
    assert not any(tmp_path.rglob("*.onnx"))


@pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").is_dir(), reason="needs ../shared/datasets")
@pytest.mark.slow  # an export in a mount namespace of its own, per fault
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_or_read_only_disk_is_one_line_naming_output_and_leaves_nothing(fault, tmp_path):
    from tests.helpers import in_namespace

    disk = tmp_path / "disk"
    disk.mkdir()
    mount = (f"mount -t tmpfs -o size=64k tmpfs {disk}" if fault == "full" else
             f"mount --bind {disk} {disk} && mount -o remount,bind,ro {disk}")
    cmd = [sys.executable, "-m", "zoo.cli", "export", "--model", "LeNet", "--model.weights", "FASHIONMNIST_V1",
           "--data", "FashionMNIST", "--data.root", str(SHARED_DATASETS), "--check_images", "10",
           "--output", str(disk / "lenet.onnx")]
    out = in_namespace(f"{mount} && {shlex.join(cmd)}; echo exit=$?; find {disk} -type f | sed 's/^/left: /'",
                       tmp_path)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert f"exit={1 if fault == 'full' else 2}" in out.stdout, out.stdout + out.stderr[-2000:]
    assert errors == [out.stderr.strip().splitlines()[-1]], out.stderr[-2000:]
    assert "--output FILE" in errors[0] and "--trainer" not in errors[0] and ".part" not in errors[0]
    assert ("the disk is full" if fault == "full" else f"cannot write in {disk}") in errors[0]
    assert "left:" not in out.stdout


def test_the_check_samples_across_the_whole_test_set():
    """An image folder's test set is ordered by class: the first 1,000 images would be a few classes, and their
    accuracy not the model's. The check takes a seeded sample across all of it, images with their labels."""
    from types import SimpleNamespace

    from zoo.commands.export.command import check_images

    labels = torch.arange(10).repeat_interleave(300)  # class 0's 300 images first, then class 1's, ...
    images = labels.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).to(torch.uint8)
    data = SimpleNamespace(test_set=(images, labels), setup=lambda stage=None: None, predict_path=None)
    inputs, chosen, what = check_images(data, 1000, classifier=True)
    assert len(chosen) == 1000 and set(chosen.tolist()) == set(range(10))
    assert torch.equal(inputs[:, 0, 0, 0].long(), chosen)  # each image with its own label
    assert "a seeded sample across all 3,000" in what
    again = check_images(data, 1000, classifier=True)[1]
    assert torch.equal(again, chosen)  # the same sample every time
