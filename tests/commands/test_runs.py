"""One folder per run, named by what ran: a resumed run and the evaluation of its checkpoint go on in its
folder, a command that runs nothing leaves none, and TensorBoard's HPARAMS row leads with what tells runs apart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.plugins.hparams.backend_context import (
    _sort_and_reduce_to_hparams_limit,
)

from tests.helpers import ENV, QUIET, cli, make_mnist_like, run_main, zoo
from zoo.commands.runs import RunLogger, claim_version


def versions(cwd: Path) -> list[Path]:
    return sorted((cwd / "lightning_logs").glob("**/version_*"))


def events(run: Path) -> EventAccumulator:
    """Every event file of the run folder, as TensorBoard reads them (in order, purges applied)."""
    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.slow
def test_a_killed_resumed_and_tested_run_ends_in_one_folder(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    # 250 training samples / 25 = 10 steps an epoch; last.ckpt every 4 steps
    fit = ["fit", "--model", "MLP", "--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", "data",
           "--data.val_size", "50", "--data.batch_size", "25", "--trainer.max_epochs", "3",
           "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "4", *QUIET]
    # killed before step 27 of epoch 2: last.ckpt is of step 24, steps 24 to 26 were logged after it
    out = zoo([*fit, "--trainer.callbacks+=tests.helpers.fakes.KillAt", "--trainer.callbacks.step", "27"], tmp_path)
    assert out.returncode == -9, out.stderr[-3000:]
    (run,) = versions(tmp_path)
    assert run == tmp_path / "lightning_logs" / "MLP-FakeFashionMNIST" / "version_0"
    # resumed with weights zeroed: its epoch is poor, so the run's best epoch is one before the kill
    resumed = zoo([*fit, "--ckpt_path", "last", "--trainer.callbacks+=tests.helpers.fakes.ZeroWeights"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = zoo(["test", "--ckpt_path", "best", *QUIET], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]

    assert versions(tmp_path) == [run]
    assert len(list(run.glob("events.out.tfevents.*"))) == 3  # the killed fit, the resumed fit, the test
    logged = events(run)
    # the curves go on without a step twice: what the killed run logged after its checkpoint was purged
    assert [e.step for e in logged.Scalars("train/loss_step")] == list(range(30))
    val_acc = [e.value for e in logged.Scalars("val/acc")]
    assert [e.step for e in logged.Scalars("val/acc")] == [9, 19, 29]
    assert max(val_acc) > val_acc[2]  # the setup worked: the resumed epoch is the worst
    # the best-checkpoint state carried on over the kill: best.ckpt is the best of the whole run
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (state,) = [v for k, v in last["callbacks"].items() if "'monitor': 'val/acc'" in k]
    assert state["best_model_score"].item() == pytest.approx(max(val_acc), abs=1e-7)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert best["epoch"] == val_acc.index(max(val_acc))
    # the test of its checkpoint: the metrics JSON beside the checkpoints, the result in the run's HPARAMS row
    record = json.loads((run / "test_metrics.json").read_text())
    assert tmp_path / record["ckpt_path"] == run / "checkpoints" / "best.ckpt"
    (test_acc,) = logged.Scalars("hp/test_acc")
    assert test_acc.value == pytest.approx(record["metrics"]["test/acc"], abs=1e-7)
    assert {"test/acc", "hp/best_val_acc", "hp/epochs"} <= set(logged.Tags()["scalars"])
    assert "dirpath has changed" not in resumed.stderr  # Lightning's warning that the best-checkpoint state is lost


def test_commands_that_run_nothing_leave_no_folder(fake_fashion, tmp_path, capsys, monkeypatch):
    root, _ = fake_fashion
    args = ["--model", "SoftmaxRegression", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
            "--trainer.max_epochs", "1", *QUIET]
    code, out = run_main(["fit", *args, "--data.batch_size", "0"], capsys)  # bad input
    assert code == 2 and not (tmp_path / "lightning_logs").exists()

    assert run_main(["fit", *args], capsys)[0] == 0
    (run,) = versions(tmp_path)
    assert run == tmp_path / "lightning_logs" / "SoftmaxRegression-FashionMNIST" / "version_0"
    before = sorted(p.name for p in run.iterdir())
    # a finished run: said in one line, exit 0, nothing written
    code, out = run_main(["fit", *args, "--ckpt_path", "last"], capsys)
    assert code == 0
    assert f"{run.relative_to(tmp_path) / 'checkpoints' / 'last.ckpt'} has finished: it trained 1 of --trainer.max_epochs 1 " \
           "epochs; to train longer, pass a larger --trainer.max_epochs (e.g. 2)" in out
    assert versions(tmp_path) == [run] and sorted(p.name for p in run.iterdir()) == before

    # a predict that fails, with a checkpoint from outside any run (which would log to a new folder)
    outside = tmp_path / "kept.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", outside)
    from zoo.training.module import ClassificationModule

    def broken(self, batch, batch_idx, dataloader_idx=0):
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(ClassificationModule, "predict_step", broken)
        code, out = run_main(["predict", "--ckpt_path", str(outside), *QUIET], capsys)
    assert code == 1 and "out of memory" in out
    assert versions(tmp_path) == [run]
    # the same checkpoint evaluated: works, in a new folder of its own
    code, out = run_main(["test", "--ckpt_path", str(outside), *QUIET], capsys)
    assert code == 0, out
    assert versions(tmp_path) == [run, run.parent / "version_1"]
    assert (run.parent / "version_1" / "test_metrics.json").is_file()
    assert sorted(p.name for p in run.iterdir()) == before


def test_hparams_lead_with_what_tells_runs_apart(fake_fashion, tmp_path):
    root, _ = fake_fashion
    fit = cli("fit", "--model", "MLP", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--optimizer", "Adam", "--optimizer.lr", "0.01", "--trainer.max_epochs", "2")
    run = Path(fit.trainer.log_dir)
    cli("test", "--ckpt_path", "best")
    logged = events(run)
    content = logged.PluginTagToContent("hparams")
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    # the columns as TensorBoard orders them (its own sort): what tells runs apart first, then the settings that are on
    _sort_and_reduce_to_hparams_limit(experiment)
    names = [h.name for h in experiment.hparam_infos]
    assert names[:5] == ["Batch size", "Data", "LR", "Model", "Optimizer"]
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert (values["Model"], values["Data"], values["Optimizer"], values["LR"]) == ("MLP", "FashionMNIST", "Adam", 0.01)
    assert [k for k, v in values.items() if v in (0, False, "None", "", "false")] == []
    assert "data/hflip" not in values and "model/num_classes" in values
    assert values["data/download"] == "true"  # a bool as a word, not 1.0000
    # the results: epochs, best validation and test first, each a scalar of this one run
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert metrics[:3] == ["hp/epochs", "hp/best_val_acc", "hp/test_acc"]
    scalars = {tag: logged.Scalars(tag)[-1].value for tag in logged.Tags()["scalars"]}
    assert scalars["hp/epochs"] == 2
    assert scalars["hp/best_val_acc"] == pytest.approx(fit.trainer.checkpoint_callback.best_model_score.item())
    assert scalars["hp/test_acc"] == pytest.approx(scalars["test/acc"])


def test_runs_of_the_older_layout_are_found_and_written_into(tmp_path):
    args = ["--model", "LinearRegression", "--data", "SyntheticPoints", "--trainer.max_epochs", "1"]
    cli("fit", *args)
    old = tmp_path / "lightning_logs" / "version_0"  # where runs were kept before they were named
    (tmp_path / "lightning_logs" / "LinearRegression-SyntheticPoints" / "version_0").rename(old)
    test = cli("test", "--ckpt_path", "best")
    assert Path(test.config.test.ckpt_path).resolve() == old / "checkpoints" / "best.ckpt"
    assert Path(test.trainer.log_dir) == old and (old / "test_metrics.json").is_file()
    resumed = cli("fit", *args[:4], "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert Path(resumed.trainer.log_dir) == old and resumed.trainer.current_epoch == 2
    assert versions(tmp_path) == [old]


@pytest.mark.slow  # starts several processes
def test_a_start_killed_before_its_first_checkpoint_resumes_in_its_folder(tmp_path, fashion):
    fit = ["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "1"]
    out = zoo([*fit, "--trainer.callbacks+=tests.helpers.fakes.KillAt", "--trainer.callbacks.step", "2"], tmp_path)
    assert out.returncode == -9
    (run,) = (tmp_path / "lightning_logs").glob("*/version_*")
    assert not (run / "checkpoints").exists()
    out = zoo([*fit, "--ckpt_path", "last"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "starting it again from scratch, in its folder" in out.stdout + out.stderr
    assert list((tmp_path / "lightning_logs").glob("*/version_*")) == [run]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # the killed start's is gone


def test_loggers_resolving_at_the_same_moment_get_their_own_folders(tmp_path):
    # Lightning picks max(version_N) + 1 from a listing and makes the folder later: two loggers asked before
    # either writes both took version_0
    loggers = [RunLogger(save_dir=str(tmp_path), name="LeNet-MNIST") for _ in range(3)]
    assert sorted(lg.version for lg in loggers) == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "LeNet-MNIST").iterdir()) == ["version_0", "version_1", "version_2"]


def test_claim_takes_the_next_number_after_a_collision(tmp_path, monkeypatch):
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_3").mkdir()
    assert claim_version(tmp_path) == 4
    # a rival took version_5 between our listing and our mkdir: we go on to version_6
    real_mkdir = Path.mkdir

    def rival_first(self, *args, **kwargs):
        if self.name == "version_5" and not self.exists():
            real_mkdir(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", rival_first)
    assert claim_version(tmp_path) == 6


@pytest.mark.slow  # three training processes at once
def test_two_fits_started_together_get_two_folders(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    args = [sys.executable, "-m", "zoo.cli", "fit", "--model", "SoftmaxRegression", "--data",
            "tests.helpers.fakes.FakeFashionMNIST", "--data.root", "data", "--data.val_size", "50", "--trainer.max_epochs",
            "1", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    runs = sorted((tmp_path / "lightning_logs" / "SoftmaxRegression-FakeFashionMNIST").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1", "version_2"]
    for run in runs:  # each its own config, checkpoints and one event file
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert len(list(run.glob("events.out.tfevents.*"))) == 1


def test_best_and_last_take_the_run_of_the_settings_given(tmp_path, mlp_fashion):
    base = [*mlp_fashion[:-1], "--trainer.max_epochs", "1"]  # (without the loss recorder)
    cli("fit", *base, "--optimizer.lr", "0.1")  # version_0
    cli("fit", *base, "--optimizer.lr", "0.5")  # version_1, the newest
    runs = tmp_path / "lightning_logs" / "MLP-FakeFashionMNIST"
    test = cli("test", *base, "--optimizer.lr", "0.1", "--ckpt_path", "best")
    assert Path(test.config.test.ckpt_path).resolve() == runs / "version_0" / "checkpoints" / "best.ckpt"
    # a resume with other settings starts a run of its own instead of continuing another's
    other = cli("fit", *base[:-1], "2", "--optimizer.lr", "0.3", "--ckpt_path", "last")
    assert Path(other.trainer.log_dir) == runs / "version_2" and other.config.fit.ckpt_path is None
    same = cli("fit", *base[:-1], "2", "--optimizer.lr", "0.1", "--ckpt_path", "last")
    assert Path(same.trainer.log_dir) == runs / "version_0" and same.trainer.current_epoch == 2
    # with no model or data named: the newest checkpoint of any run, as before
    anyone = cli("test", "--ckpt_path", "best")
    assert Path(anyone.config.test.ckpt_path).resolve() == runs / "version_0" / "checkpoints" / "best.ckpt"


def test_a_claim_survives_its_parent_removed_meanwhile(tmp_path, monkeypatch):
    # a run that failed before training removes its empty <Model>-<Data>/ folder while another run claims in it
    root = tmp_path / "LeNet-MNIST"
    real_mkdir = Path.mkdir
    removed = []

    def parent_gone_once(self, *args, **kwargs):
        if self.name == "version_0" and not removed:
            removed.append(self)
            root.rmdir()
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", parent_gone_once)
    assert claim_version(root) == 0 and (root / "version_0").is_dir() and removed
