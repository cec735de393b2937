"""A person's view of the logs: the tensorboard server, on a loopback port, serves the run's scalars."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CONFIGS, cli


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
