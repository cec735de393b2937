"""One folder per run, named by what ran: a resumed run and the evaluation of its checkpoint go on in its
folder, a command that runs nothing leaves none, and TensorBoard's HPARAMS row leads with what tells runs apart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.plugins.hparams.backend_context import _sort_and_reduce_to_hparams_limit

from tests.conftest import REPO, cli, make_mnist_like
from tests.test_reliability import QUIET, run_main

ENV = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}


def zoo(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # a session of its own: tests.fakes.KillAt kills the whole process group
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600, start_new_session=True)


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
    fit = ["fit", "--model", "MLP", "--data", "tests.fakes.FakeFashionMNIST", "--data.root", "data",
           "--data.val_size", "50", "--data.batch_size", "25", "--trainer.max_epochs", "3",
           "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "4", *QUIET]
    # killed before step 27 of epoch 2: last.ckpt is of step 24, steps 24 to 26 were logged after it
    out = zoo([*fit, "--trainer.callbacks+=tests.fakes.KillAt", "--trainer.callbacks.step", "27"], tmp_path)
    assert out.returncode == -9, out.stderr[-3000:]
    (run,) = versions(tmp_path)
    assert run == tmp_path / "lightning_logs" / "MLP-FakeFashionMNIST" / "version_0"
    # resumed with weights zeroed: its epoch is poor, so the run's best epoch is one before the kill
    resumed = zoo([*fit, "--ckpt_path", "last", "--trainer.callbacks+=tests.fakes.ZeroWeights"], tmp_path)
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
