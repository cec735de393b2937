"""Bad input of every kind, through the real ``zoo`` command in its own process: one line on stderr, exit status 2."""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import (
    CONFIGS,
    ENV,
    QUIET,
    cli,
    in_namespace,
    make_mnist_like,
    run_main,
    zoo,
)

LINREG = ["--model", "LinearRegression", "--data", "SyntheticPoints", *QUIET, "--trainer.fast_dev_run", "1"]


@pytest.fixture
def files(tmp_path):
    """A data root of fake Fashion-MNIST files, a LeNetBN checkpoint trained on it, a text file posing as one."""
    root = tmp_path / "data"
    make_mnist_like(root / "FashionMNIST" / "raw")
    run = cli("fit", "--model", "LeNetBN", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", str(root),
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
    lenet = ["--model", "LeNet", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", f["root"], *QUIET]
    return {
        "unknown model": (["fit", "--model", "LeNot", "--data", "SyntheticPoints"], "unknown model 'LeNot'; did you mean LeNet? choose one of: "),
        "unknown DataModule": (["fit", "--model", "LeNet", "--data", "Nope"], "unknown DataModule 'Nope'; choose one of: "),
        "unknown option": (["fit", *LINREG, "--no_such_option", "3"], "unrecognized arguments: --no_such_option 3"),
        "unknown model option": (["fit", *LINREG, "--model.nope", "3"], "LinearRegression has no option 'nope'"),
        "model option before the model": (["fit", "--model.head_lr_mult", "2", "-c", str(CONFIGS / "lenet_fashion_mnist.yaml")],
                                          "--model.head_lr_mult came before the model was chosen: give --model NAME "
                                          "or -c CONFIG first"),
        "data option without the data": (["fit", "--model", "LinearRegression", "--data.root", "x"],
                                         "--data.root came before the data was chosen"),
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
        "missing dataset files, fast_dev_run": (["fit", "--model", "LeNet", "--data", "MNIST", "--data.root", "nowhere",
                                                 "--trainer.fast_dev_run", "1"], "MNIST: missing 4 file(s)"),
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


def test_every_kind_of_bad_input_is_refused_with_its_message(files, tmp_path, monkeypatch, capsys):
    """The table in this process (the suite developers run on every change); the test below runs each case as
    its own ``zoo`` process, where the one line on stderr and nothing of Lightning's before it are seen."""
    monkeypatch.chdir(tmp_path)
    wrong = []
    for kind, (args, says) in cases(files).items():
        code, out = run_main(args, capsys)
        errors = [line for line in out.splitlines() if line.startswith("error: ")]
        if code != 2 or len(errors) != 1 or says not in errors[0]:
            wrong.append(f"{kind}: exit {code}: {out[-600:]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow  # 25 processes, ~5 s of imports each
def test_every_kind_of_bad_input_gives_one_line_and_exit_2(files, tmp_path):
    table = cases(files)
    with ThreadPoolExecutor(max_workers=4) as pool:  # a process spends most of its ~5 s importing
        results = dict(zip(table, pool.map(lambda args: zoo(args, tmp_path), [args for args, _ in table.values()])))
    wrong = []
    for kind, (args, says) in table.items():
        out = results[kind]
        lines = out.stderr.splitlines()
        lightnings = [line for line in out.stdout.splitlines() if line.startswith(("Running in", "GPU available"))]
        if (out.returncode != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or says not in lines[0]
                or lightnings):
            wrong.append(f"{kind}: exit {out.returncode}, {len(lines)} stderr line(s): {out.stderr[-600:]!r}")
    assert not wrong, "\n".join(wrong)


def test_traceback_on_request(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", *LINREG, "--optimizer.lr", "-1"], cwd=tmp_path,
                         env={**ENV, "ZOO_TRACEBACK": "1"}, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback (most recent call last)" in out.stderr


def test_every_error_class_exits_2_for_bad_input_and_1_for_a_full_disk():
    """Each of the zoo's error classes, through the CLI's one-line exit: bad input is 2, a full disk 1."""
    import datamodules.files  # noqa: F401  (defines DatasetError)
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


NUMERIC = ["--data.batch_size", "--data.seed", "--optimizer.lr", "--trainer.max_epochs", "--data.noise",
           "--data.num_train", "--checkpoint_every_n_steps", "--trainer.limit_train_batches", "--optimizer.momentum"]


PATHS = ["--ckpt_path", "--model.weights", "--data.predict_path"]


WRONG = ["-1", "0", "abc", "", "1e400", "nan", "-0.5", "3.7", "[1, 2]", "/nonexistent/file", "None", "true"]


def test_wrong_option_type_is_jsonargparse_message_not_a_trace(capsys):
    code, out = run_main(["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--data.batch_size", "ten"], capsys)
    assert code == 2 and "batch_size" in out and "ten" in out and "Traceback" not in out


def test_out_of_range_value(capsys):
    code, out = run_main(["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--data.batch_size", "0", *QUIET], capsys)
    assert code == 2 and "error: batch_size=0: give a number of examples >= 1" in out


def test_incompatible_model_and_data_refused_before_training(capsys):
    code, out = run_main(["fit", "--model", "SoftmaxRegression", "--data", "SyntheticPoints", *QUIET], capsys)
    assert code == 2
    assert "SoftmaxRegression cannot take the inputs of SyntheticPoints (shape (2,))" in out
    assert "Epoch" not in out and "Traceback" not in out


def test_model_needing_a_resize(fake_fashion, capsys):
    root, _ = fake_fashion
    code, out = run_main(["fit", "--model", "NiN", "--data", "FashionMNIST", "--data.root", str(root), *QUIET], capsys)
    assert code == 2 and "NiN needs inputs of at least 67 x 67: set --data.resize" in out


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt"])
def test_bad_dataset_files(fake_fashion, capsys, damage):
    root, _ = fake_fashion
    path = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        data = bytearray(path.read_bytes())
        data[500] ^= 0xFF
        path.write_bytes(bytes(data))
    code, out = run_main(["fit", "--model", "MLP", "--data", "FashionMNIST", "--data.root", str(root),
                          "--data.download", "false", "--data.val_size", "50", *QUIET], capsys)
    assert code == 2 and "train-images-idx3-ubyte" in out and "Traceback" not in out
    if damage == "missing":
        assert "missing 1 file(s)" in out
    else:
        assert "is corrupt or truncated: md5" in out and "expected f4a8" not in out  # the fake files' own md5


def test_checkpoint_of_another_architecture(fake_fashion, capsys):
    root, _ = fake_fashion
    run = cli("fit", "--model", "LeNetBN", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--trainer.max_steps", "1")
    ckpt = Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    capsys.readouterr()
    code, out = run_main(["test", "--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root),
                          "--ckpt_path", str(ckpt), *QUIET], capsys)
    assert code == 2 and "holds a LeNetBN, but the model chosen is LeNet" in out


def test_checkpoint_path_that_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("hello")
    code, out = run_main(["test", "--model", "LinearRegression", "--data", "SyntheticPoints", "--ckpt_path", str(bad)], capsys)
    assert code == 2 and "not a readable checkpoint" in out
    code, out = run_main(["test", "--ckpt_path", str(tmp_path / "nope.ckpt")], capsys)
    assert code == 2 and "no such checkpoint file" in out


def test_fuzz_wrong_values_never_leave_a_trace(capsys):
    rng = random.Random(0)
    for _ in range(40):
        options = rng.sample(NUMERIC, rng.randint(1, 3)) + rng.sample(PATHS, rng.randint(0, 1))
        args = ["fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--trainer.fast_dev_run", "1", *QUIET]
        for option in options:
            args += [option, rng.choice(WRONG)]
        code, out = run_main(args, capsys)
        assert "Traceback" not in out, (args, out[-2000:])
        assert code == 0 or ("error" in out.lower()), (args, out[-2000:])


ZOO = [sys.executable, "-m", "zoo.cli"]


@pytest.mark.slow  # starts several processes
def test_a_full_disk_says_so_in_one_line_and_leaves_no_part_file(tmp_path, fashion):
    disk = tmp_path / "disk"
    disk.mkdir()
    # ResNet18's checkpoint (~90 MB with its momentum) cannot fit on a 30 MB disk
    fit = [*ZOO, "fit", "--model", "ResNet18", *fashion, "--trainer.max_steps", "1", "--data.batch_size", "4"]
    out = in_namespace(f"mount -t tmpfs -o size=30m tmpfs {disk} && cd {disk} && {shlex.join(fit)}; "
                       f"echo exit=$?; find {disk} -name '*.part' | sed 's/^/left: /'", tmp_path)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert "exit=1" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    # training had started (its progress lines came first); the failure is the one last line
    assert errors == [out.stderr.splitlines()[-1]], out.stderr[-3000:]
    assert errors[0].startswith("error: the disk is full: writing ") and "last.ckpt" in errors[0]
    assert "MB free without it" in errors[0] and "--trainer.default_root_dir" in errors[0]
    assert "left:" not in out.stdout


@pytest.mark.parametrize("which", ["working directory", "image cache"])
def test_an_unwritable_folder_names_itself_and_the_option_that_moves_it(tmp_path, fashion, which):
    ro = tmp_path / "ro"
    ro.mkdir()
    if which == "working directory":
        command = [*ZOO, "fit", "--model", "SoftmaxRegression", *fashion, "--trainer.max_steps", "1"]
        hint = "--trainer.default_root_dir DIR"
    else:
        photos = tmp_path / "photos" / "train"
        for name, value in (("a", 0), ("b", 255)):
            (photos / name).mkdir(parents=True)
            from PIL import Image

            Image.new("RGB", (8, 8), (value,) * 3).save(photos / name / "x.png")
        command = [*ZOO, "fit", "--model", "SoftmaxRegression", "--data", "ImageFolder", "--data.root",
                   str(photos.parent), "--data.image_size", "8", "--data.crop_size", "8",
                   "--data.cache_dir", str(ro / "cache"), *QUIET]
        hint = "--data.cache_dir"
    cwd = ro if which == "working directory" else tmp_path
    out = in_namespace(f"mount --bind -o ro {ro} {ro} && cd {cwd} && {shlex.join(command)}; echo exit=$?", tmp_path)
    lines = out.stderr.splitlines()
    assert "exit=2" in out.stdout, out.stderr[-3000:]
    assert len(lines) == 1 and str(ro) in lines[0] and hint in lines[0], out.stderr[-3000:]
