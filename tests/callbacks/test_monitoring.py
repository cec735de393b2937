"""What a run shows: TensorBoard's scalars, hyperparameters and images, and the tensorboard server serving them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import CONFIGS, cli


def _event_file(run) -> Path:
    (event,) = Path(run.trainer.logger.log_dir).glob("events.out.tfevents.*")
    return event


def test_tensorboard_logs_scalars_hparams_images(fake_fashion):
    root, _ = fake_fashion
    common = ["-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root), "--data.val_size", "50"]
    fit = cli("fit", *common, "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1")
    assert Path(fit.trainer.logger.log_dir) == Path("lightning_logs/SoftmaxRegression-FashionMNIST/version_0").resolve()
    events = EventAccumulator(str(_event_file(fit)), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_step", "train/acc", "val/loss", "val/acc", "val/samples",
            "train/samples_per_sec", "lr-SGD"} <= scalars
    assert len(events.Scalars("val/acc")) == 2 and "hp_metric" not in scalars
    assert events.Scalars("lr-SGD")[0].value == pytest.approx(0.1)
    # hyperparameters with the run's results attached: what TensorBoard's HPARAMS tab compares
    content = events.PluginTagToContent("hparams")
    for name in (b"model/num_classes", b"Batch size", b"LR"):
        assert name in content["_hparams_/session_start_info"]
    assert b"hp/best_val_acc" in content["_hparams_/experiment"]
    assert "hp/best_val_acc" in scalars
    (grid,) = events.Images("inputs/train")
    assert grid.width > 200

    test = cli("test", *common, "--ckpt_path", "best")
    assert test.trainer.logger.log_dir == fit.trainer.logger.log_dir  # the test of the run's checkpoint: in its folder
    events = EventAccumulator(test.trainer.logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"test/loss", "test/acc", "test/samples", "hp/test_acc"} <= set(events.Tags()["scalars"])
    (matrix,) = events.Images("test/confusion_matrix")
    assert matrix.width > 400 and matrix.height > 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


RUN = "SoftmaxRegression-FashionMNIST/version_0"  # TensorBoard names a run by its folder under --logdir


def test_tensorboard_serves_the_scalars_of_a_run(fake_fashion, tmp_path):
    root, _ = fake_fashion
    run = cli("fit", "-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root),
              "--data.val_size", "50", "--trainer.max_epochs", "3")
    logdir = tmp_path / "lightning_logs"
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # bounded wait for the server and its first scan of the logs
            try:
                if RUN in _get(f"{base}/data/runs"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, server.stderr.read() if server.poll() else "timeout"
            time.sleep(0.5)
        tags = _get(f"{base}/data/plugin/scalars/tags")[RUN]
        assert {"val/acc", "val/loss", "train/loss", "train/acc"} <= set(tags)
        query = urllib.parse.urlencode({"run": RUN, "tag": "val/acc"})
        served = _get(f"{base}/data/plugin/scalars/scalars?{query}")  # [[wall_time, step, value], ...]
    finally:
        server.terminate()
        server.wait(timeout=30)
    events = EventAccumulator(str(next((logdir / RUN).glob("events.out.tfevents.*"))))
    events.Reload()
    written = [(e.step, e.value) for e in events.Scalars("val/acc")]
    assert [(step, value) for _, step, value in served] == written
    assert len(written) == 3 and run.trainer.current_epoch == 3


def test_without_the_progress_bar_a_line_every_ten_seconds_with_the_time_left(capsys):
    """zoo reproduce, a batch job's log: a line at most every 10 s (none for a run shorter than that)."""
    from types import SimpleNamespace

    import torch

    from zoo.callbacks.monitoring import ProgressLines

    clock = [100.0]
    lines = ProgressLines(every_s=10)
    lines.clock = lambda: clock[0]
    trainer = SimpleNamespace(num_training_batches=100, max_steps=-1, max_epochs=4, global_rank=0, sanity_checking=False,
                              global_step=0, current_epoch=0, callback_metrics={"train/loss_step": torch.tensor(0.5)},
                              state=SimpleNamespace(fn="fit"))
    lines.on_train_start(trainer, None)
    for step in range(1, 201):  # two epochs of 100 batches, a quarter of a second each
        clock[0] += 0.25
        trainer.global_step, trainer.current_epoch = step, (step - 1) // 100
        lines.on_train_batch_end(trainer, None, None, None, (step - 1) % 100)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5  # 50 s of training
    # after 40 of 400 steps in 10 s: 360 more at the same pace
    assert out[0] == "Epoch 1/4, batch 40/100, train/loss 0.5000; 0:10 elapsed, about 1:30 left"
    assert out[-1] == "Epoch 2/4, batch 100/100, train/loss 0.5000; 0:50 elapsed, about 0:50 left"
