"""Bad input of every kind, through the real ``zoo`` command in its own process: one line on stderr, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, REPO, cli, make_mnist_like

ENV = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
LINREG = ["--model", "LinearRegression", "--data", "SyntheticPoints", *QUIET, "--trainer.fast_dev_run", "1"]


@pytest.fixture
def files(tmp_path):
    """A data root of fake Fashion-MNIST files, a LeNetBN checkpoint trained on it, a text file posing as one."""
    root = tmp_path / "data"
    make_mnist_like(root / "FashionMNIST" / "raw")
    run = cli("fit", "--model", "LeNetBN", "--data", "tests.fakes.FakeFashionMNIST", "--data.root", str(root),
              "--data.val_size", "50", "--trainer.max_steps", "1")
    notes = tmp_path / "notes.ckpt"
    notes.write_text("hello")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(3000))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  class_path: zoo.LeNet\n  init_args: {activation: [relu, }\n")
    return {"root": str(root), "ckpt": str(Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"),
            "notes": str(notes), "noise": str(noise), "bad_yaml": str(bad_yaml)}


def cases(f: dict) -> dict[str, tuple[list[str], str]]:
    """kind of bad input: (the command's words, what its one line must say)."""
    lenet = ["--model", "LeNet", "--data", "tests.fakes.FakeFashionMNIST", "--data.root", f["root"], *QUIET]
    return {
        "unknown model": (["fit", "--model", "LeNot", "--data", "SyntheticPoints"], "unknown model 'LeNot'; did you mean LeNet? choose one of: "),
        "unknown DataModule": (["fit", "--model", "LeNet", "--data", "Nope"], "unknown DataModule 'Nope'; choose one of: "),
        "unknown option": (["fit", *LINREG, "--no_such_option", "3"], "unrecognized arguments: --no_such_option 3"),
        "unknown model option": (["fit", *LINREG, "--model.nope", "3"], "LinearRegression has no option 'nope'"),
        "wrong type": (["fit", *LINREG, "--trainer.max_epochs", "abc"], "--trainer.max_epochs abc: expected int"),
        "wrong type, data": (["fit", *LINREG, "--data.batch_size", "ten"], "--data.batch_size ten: expected int"),
        "out of range, optimizer": (["fit", *LINREG, "--optimizer.lr", "-1"], "--optimizer SGD: Invalid learning rate: -1.0"),
        "out of range, data": (["fit", *LINREG, "--data.batch_size", "0"], "batch_size=0: give a number of examples >= 1"),
        "missing config": (["fit", "-c", "nope.yaml"], "-c/--config: File does not exist"),
        "missing checkpoint": (["test", "--ckpt_path", "nope.ckpt"], "--ckpt_path nope.ckpt: no such checkpoint file"),
        "missing images": (["predict", "--ckpt_path", f["ckpt"], "--data.predict_path", "nope", *QUIET],
                           "--data.predict_path nope: no such file or folder"),
        "bad checkpoint": (["test", "--ckpt_path", f["notes"]], "not a readable checkpoint"),
        "checkpoint of another architecture": (["test", *lenet, "--ckpt_path", f["ckpt"]], "holds a LeNetBN, but the model chosen is LeNet"),
        "weights of another architecture": (["fit", *lenet, "--model.weights", f["ckpt"]], "holds a LeNetBN, not a LeNet"),
        "GPU preset without a GPU": (["fit", "-c", str(CONFIGS / "trainer" / "gpu.yaml"), *LINREG], "use -c configs/trainer/cpu.yaml"),
        "GPU DDP preset without a GPU": (["fit", "-c", str(CONFIGS / "trainer" / "ddp.yaml"), *LINREG], "use -c configs/trainer/ddp_cpu.yaml"),
        # the message's fix on its one line, and nothing of Lightning's before it
        "missing dataset files": (["fit", "--model", "LeNet", "--data", "MNIST", "--data.root", "nowhere", *QUIET],
                                  "MNIST: missing 4 file(s) under nowhere/MNIST/raw (train-images-idx3-ubyte, "),
        "missing dataset files, the fix": (["fit", "--model", "LeNet", "--data", "MNIST", "--data.root", "nowhere"],
                                           "provide them: point --data.root at a folder holding MNIST/raw/<file>"),
        "negative epochs": (["fit", *LINREG[:-2], "--trainer.max_epochs", "-5"],
                            "--trainer.max_epochs: `max_epochs` must be a non-negative integer or -1. You passed in -5."),
        "YAML syntax error": (["fit", "-c", f["bad_yaml"]], f"-c {f['bad_yaml']}, line 3, column 34: not valid YAML"),
        "text as weights": (["fit", *lenet, "--model.weights", f["notes"]], "is not a PyTorch weights file"),
        "random bytes as weights": (["fit", *lenet, "--model.weights", f["noise"]], "is not a PyTorch weights file"),
        "mistyped predict option": (["predict", "--ckpt_path", f["ckpt"], "--no_such", "3"],
                                    "unrecognized arguments: --no_such 3; `zoo predict --help` lists the options"),
        "mistyped test option of the model": (["test", "--ckpt_path", f["ckpt"], "--model.nope", "3"],
                                              "`zoo test --model.help LeNetBN` lists its options"),
    }


def zoo(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


def test_every_kind_of_bad_input_gives_one_line_and_exit_2(files, tmp_path):
    table = cases(files)
    with ThreadPoolExecutor(max_workers=4) as pool:  # a process spends most of its ~5 s importing
        results = dict(zip(table, pool.map(lambda args: zoo(args, tmp_path), [args for args, _ in table.values()])))
    wrong = []
    for kind, (args, says) in table.items():
        out = results[kind]
        lines = out.stderr.splitlines()
        if out.returncode != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or says not in lines[0]:
            wrong.append(f"{kind}: exit {out.returncode}, {len(lines)} stderr line(s): {out.stderr[-600:]!r}")
    assert not wrong, "\n".join(wrong)


def test_traceback_on_request(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", *LINREG, "--optimizer.lr", "-1"], cwd=tmp_path,
                         env={**ENV, "ZOO_TRACEBACK": "1"}, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback (most recent call last)" in out.stderr



def test_every_error_class_exits_2_for_bad_input_and_1_for_a_full_disk():
    """Each of the zoo's error classes, through the CLI's one-line exit: bad input is 2, a full disk 1."""
    import datamodules  # noqa: F401  (defines DatasetError)
    import zoo.weights.pretrained  # noqa: F401  (defines WeightsError)
    from zoo.commands.messages import exit_with_one_line
    from zoo_common import DiskFullError, ZooError

    def every(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from every(sub)

    classes = set(every(ZooError))
    assert len(classes) >= 6
    for cls in classes:
        with pytest.raises(SystemExit) as exit_:
            exit_with_one_line(cls("what is wrong; what to do"))
        assert exit_.value.code == (1 if cls is DiskFullError else 2), cls
