"""Export and serving, measured: for each (model, weights), the whole test set through the eager model, the
ONNX file and the pt2 file (max |Δlogit|, accuracy: the figures `zoo export --check_images 0` records), then
per-image latency and batched throughput of eager PyTorch, ONNX Runtime and the HTTP server, side by side.

    python benchmarks/export_serve.py --root ../shared/datasets [--rounds 5]

Latency: batch 1, the median over rounds of the mean per image, the engines alternating within each round.
Throughput: batches of 64 for the engines; for the server, 8 clients posting PNG files at once (requests/s,
each request one image, decoded and answered: what a client of `zoo serve` waits for).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
CASES = [("LeNet", "FASHIONMNIST_V1"), ("ResNet18", "FASHIONMNIST_CPU_V1")]


def zoo(*args, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return done


def eager_model(model: str, weights: str, root: str):
    """The wrapped eager model, made as zoo export makes it."""
    from zoo.commands.export import graph
    from zoo.commands.lightning import with_model

    made = {}
    with_model(["--model", model, "--model.weights", weights, "--data", "FashionMNIST", "--data.root", root],
               lambda m, d, c, w: made.update(module=graph.exportable(m, d), data=d))
    return made["module"], made["data"]


def timed(run, batch: torch.Tensor, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        run(batch)
    return (time.perf_counter() - start) / repeat


def together(client, clients: int) -> float:
    """``client(c)`` for each of ``clients`` at once, in threads; the seconds until the last one ends."""
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def server_rate(url: str, files: list[bytes], clients: int = 8, per_client: int = 50) -> tuple[float, float]:
    """(requests per second with `clients` at once, median latency of one request alone, ms)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.commands.serve.test_command import post

    alone = []
    for i in range(50):
        t = time.perf_counter()
        post(url + "/predict", {"image": ("x.png", files[i % len(files)])})
        alone.append(time.perf_counter() - t)
    errors = []

    def client(c):
        for i in range(per_client):
            status, _ = post(url + "/predict", {"image": ("x.png", files[(c + i) % len(files)])})
            if status != 200:
                errors.append(status)
    rate = clients * per_client / together(client, clients)
    assert not errors, errors
    return rate, 1000 * statistics.median(alone)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = str(Path(args.root).resolve())
    from torchvision.datasets import FashionMNIST

    from tests.commands.serve.test_command import start
    from zoo.commands.export.formats import Runner

    test = FashionMNIST(root, train=False)
    pngs = []
    for i in range(64):
        buf = io.BytesIO()
        test[i][0].save(buf, format="PNG")
        pngs.append(buf.getvalue())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for model, weights in CASES:
            paths, records = {}, {}
            for fmt in ("onnx", "pt2"):
                paths[fmt] = Path(tmp) / f"{model}.{fmt}"
                t = time.perf_counter()
                zoo("export", "--model", model, "--model.weights", weights, "--data", "FashionMNIST", "--data.root",
                    root, "--format", fmt, "--check_images", "0", "--output", str(paths[fmt]), cwd=tmp)
                records[fmt] = json.loads(Path(str(paths[fmt]) + ".json").read_text())["parity"]
                print(f"{model} {weights} {fmt}: export + check of the whole test set {time.perf_counter() - t:.0f} s; "
                      f"max |Δlogit| {records[fmt]['max_abs_diff']:.2e}, accuracy eager "
                      f"{records[fmt]['eager_accuracy']:.4f}, {fmt} {records[fmt]['exported_accuracy']:.4f}, "
                      f"same top class {records[fmt]['top1_agreement']:.2%}")
            eager, data = eager_model(model, weights, root)
            runs = {"eager": lambda x: eager(x), "onnxruntime": Runner(paths["onnx"], "onnx"),
                    "pt2": Runner(paths["pt2"], "pt2")}
            one = torch.from_numpy(test.data[:1].numpy()).unsqueeze(1)
            many = torch.from_numpy(test.data[:64].numpy()).unsqueeze(1)
            latency = {k: [] for k in runs}
            rate = {k: [] for k in runs}
            with torch.inference_mode():
                for run in runs.values():  # warm-up
                    run(one), run(many)
                for _ in range(args.rounds):
                    for name, run in runs.items():
                        latency[name].append(timed(run, one, 50) * 1000)
                        rate[name].append(64 / timed(run, many, 5))
            port_args = ["--exported", str(paths["onnx"])]
            process, url = start(port_args, tmp)
            try:
                served, alone = server_rate(url, pngs)
            finally:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(30)
            print(f"{model}: per image at batch 1 (ms, median of {args.rounds} rounds) and images/s at batch 64:")
            for name in runs:
                print(f"  {name:<12} {statistics.median(latency[name]):8.3f} ms  {statistics.median(rate[name]):9.0f}/s")
            print(f"  server (ONNX) {alone:7.3f} ms for one request alone (HTTP, PNG decoding); "
                  f"{served:.0f} requests/s with 8 clients at once")


if __name__ == "__main__":
    main()
