"""Real multi-process DDP on the CPU (gloo): exact evaluation, checkpoints across process counts, two nodes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, make_mnist_like

pytestmark = pytest.mark.slow  # each test starts several Python processes

DDP_CPU = str(REPO / "configs" / "trainer" / "ddp_cpu.yaml")


def zoo(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "zoo.cli", *args, "--trainer.enable_progress_bar", "false",
           "--trainer.enable_model_summary", "false"]
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def metrics(out: subprocess.CompletedProcess, cwd: Path) -> dict:
    """The metrics JSON that this command wrote (it names it on stderr), not any other run's."""
    (line,) = [line for line in out.stderr.splitlines() if line.startswith("Metrics written to ")]
    return json.loads((cwd / line.removeprefix("Metrics written to ")).read_text())


def logged_scalars(cwd: Path, tag: str) -> list[float]:
    """Every value of ``tag`` in the TensorBoard event files under ``cwd``."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    values = []
    for path in sorted(cwd.glob("**/events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == tag:  # scalars are written as one-element float tensors
                    values.append(float(value.tensor.float_val[0]) if value.HasField("tensor") else value.simple_value)
    return values


@pytest.fixture
def data_root(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")  # 300 train, 101 test: odd on purpose
    return tmp_path / "data"


def data_args(root: Path) -> list[str]:
    return ["--data", "tests.helpers.fakes.FakeFashionMNIST", "--data.root", str(root), "--data.val_size", "51",
            "--data.batch_size", "16"]


def test_test_metrics_identical_on_one_and_two_processes(tmp_path, data_root):
    zoo("fit", "--model", "LeNetBN", *data_args(data_root), "--trainer.max_epochs", "2", cwd=tmp_path)
    ckpt = str(next((tmp_path / "lightning_logs").glob("LeNetBN-FakeFashionMNIST/version_0/checkpoints/best.ckpt")))
    one = metrics(zoo("test", "--ckpt_path", ckpt, "--trainer.devices", "1", cwd=tmp_path), tmp_path)
    two = metrics(zoo("test", "-c", DDP_CPU, "--ckpt_path", ckpt, cwd=tmp_path), tmp_path)
    assert (one["stage"], two["stage"]) == ("test", "test")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["metrics"]["test/samples"] == two["metrics"]["test/samples"] == 101
    assert two["metrics"]["test/acc"] == pytest.approx(one["metrics"]["test/acc"], abs=1e-6)
    assert two["metrics"]["test/loss"] == pytest.approx(one["metrics"]["test/loss"], abs=1e-6)
    # validation too (51 samples, also odd), through DDP's forward: each sample counted once, none padded
    two = metrics(zoo("validate", "-c", DDP_CPU, "--ckpt_path", ckpt, cwd=tmp_path), tmp_path)
    one = metrics(zoo("validate", "--ckpt_path", ckpt, "--trainer.devices", "1", cwd=tmp_path), tmp_path)
    assert (one["stage"], two["stage"]) == ("validate", "validate")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["metrics"]["val/samples"] == two["metrics"]["val/samples"] == 51
    assert two["metrics"]["val/loss"] == pytest.approx(one["metrics"]["val/loss"], abs=1e-6)
    assert two["metrics"]["val/acc"] == pytest.approx(one["metrics"]["val/acc"], abs=1e-6)


def test_ddp_fit_checkpoint_loads_in_one_process(tmp_path, data_root):
    out = zoo("fit", "-c", DDP_CPU, "--model", "LeNetBNScratch", *data_args(data_root), "--trainer.max_epochs", "2",
              cwd=tmp_path)
    assert "Trainer.fit` stopped: `max_epochs=2` reached" in out.stderr
    ckpt = tmp_path / "lightning_logs" / "LeNetBNScratch-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    # 249 training samples over 2 ranks in batches of 16: 8 steps per epoch on each rank
    assert state["global_step"] == 16 and state["epoch"] == 1
    # the validation of each epoch of the 2-process fit counted every one of the 51 samples once
    assert logged_scalars(tmp_path, "val/samples") == [51.0, 51.0]
    result = metrics(zoo("test", "--ckpt_path", str(ckpt), "--trainer.devices", "1", cwd=tmp_path), tmp_path)
    assert result["world_size"] == 1 and result["metrics"]["test/samples"] == 101


def run_together(commands: list[tuple[list[str], dict]], cwd: Path) -> list[str]:
    """Start every (command, environment) at once, as a launcher would; all must succeed."""
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd, env in commands]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output[-4000:]
    return outputs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_with_torchrun_on_loopback(tmp_path, data_root):
    """Two 'nodes' of one process each, as `torchrun --nnodes 2` starts them on two machines."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    procs = []
    for node_rank in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--node_rank", str(node_rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "zoo.cli", "fit", "--model", "LeNet", *data_args(data_root), "--trainer.max_epochs", "1",
               "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "2",
               "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false"]
        procs.append((cmd, env))
    outputs = run_together(procs, tmp_path)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in "".join(outputs)
    state = torch.load(tmp_path / "lightning_logs" / "LeNet-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt",
                       weights_only=True)
    assert state["global_step"] == 8  # 249 samples / 2 ranks / batches of 16, one epoch


def test_srun_tasks_under_slurm_environment(tmp_path, data_root):
    """What `srun` starts for `--nodes 1 --ntasks-per-node 2`: two tasks that Lightning places by SLURM's variables."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
               "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1",
               "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0", "SLURM_JOB_ID": "4242",
               "SLURM_JOB_NAME": "zoo-test", "SLURM_NODELIST": "localhost", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        cmd = [sys.executable, "-m", "zoo.cli", "fit", "-c", DDP_CPU, "--model", "SoftmaxRegression",
               *data_args(data_root), "--trainer.max_epochs", "1", "--trainer.num_nodes", env["SLURM_JOB_NUM_NODES"],
               "--trainer.devices", env["SLURM_NTASKS_PER_NODE"], "--trainer.enable_progress_bar", "false"]
        procs.append((cmd, env))
    outputs = run_together(procs, tmp_path)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in "".join(outputs)
    # under SLURM, the run's version is the job's id
    run = tmp_path / "lightning_logs" / "SoftmaxRegression-FakeFashionMNIST" / "version_4242"
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 8


def _running_stats(cwd: Path) -> dict[str, torch.Tensor]:
    (path,) = cwd.glob("**/last.ckpt")
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def test_sync_batchnorm_gives_the_scratch_batchnorm_global_statistics(tmp_path, data_root):
    """One step on 2 processes x 16 samples with synced statistics = one step on 1 process x 32 of the same
    samples (rank r's batch k is the global order's positions 2 (16 k + i) + r): the same running statistics."""
    step = ["--model", "LeNetBNScratch", *data_args(data_root), "--trainer.max_steps", "1",
            "--trainer.limit_val_batches", "0"]
    for name in ("one", "synced", "unsynced"):
        (tmp_path / name).mkdir()
    zoo("fit", *step, "--data.batch_size", "32", "--trainer.devices", "1", cwd=tmp_path / "one")
    synced = zoo("fit", "-c", DDP_CPU, *step, cwd=tmp_path / "synced")  # ddp_cpu.yaml sets sync_batchnorm: true
    unsynced = zoo("fit", "-c", DDP_CPU, *step, "--trainer.sync_batchnorm", "false", cwd=tmp_path / "unsynced")
    one, two, apart = (_running_stats(tmp_path / n) for n in ("one", "synced", "unsynced"))
    assert len(one) == 8  # 4 BatchNorm layers
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    # each process's own statistics are another thing, and the run says so
    assert not all(torch.allclose(apart[k], one[k], rtol=1e-3, atol=1e-4) for k in one)
    warning = "from-scratch BatchNorm uses each process's own batch statistics"
    assert warning in unsynced.stderr and warning not in synced.stderr


def _predictions(out: subprocess.CompletedProcess) -> dict[str, tuple[str, float]]:
    path = out.stdout.split("written to ")[-1].strip()
    with open(path) as f:
        rows = list(csv.DictReader(f))
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)), files  # each file exactly once
    return {r["file"]: (r["class"], float(r["probability"])) for r in rows}


def test_predict_on_two_processes_writes_every_file_once_with_its_own_prediction(tmp_path, data_root):
    from PIL import Image

    from tests.helpers import mnist_like_arrays

    zoo("fit", "--model", "MLP", *data_args(data_root), "--trainer.max_epochs", "3", "--optimizer.lr", "0.3",
        cwd=tmp_path)
    folder = tmp_path / "images"  # 13 files: an odd number, so the two processes hold 7 and 6
    folder.mkdir()
    for i, image in enumerate(mnist_like_arrays()["t10k-images-idx3-ubyte"][:13]):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    ckpt = str(tmp_path / "lightning_logs" / "MLP-FakeFashionMNIST" / "version_0" / "checkpoints" / "last.ckpt")
    one = _predictions(zoo("predict", "--ckpt_path", ckpt, "--data.predict_path", str(folder),
                           "--trainer.devices", "1", cwd=tmp_path))
    two = _predictions(zoo("predict", "-c", DDP_CPU, "--ckpt_path", ckpt, "--data.predict_path", str(folder),
                           cwd=tmp_path))
    assert sorted(one) == sorted(two) == sorted(str(p) for p in folder.iterdir())
    assert len(set(one.values())) == len(one)  # every file its own prediction, so a mix-up would show
    for name, (cls, prob) in one.items():
        assert two[name][0] == cls and two[name][1] == pytest.approx(prob, abs=1e-6), name
