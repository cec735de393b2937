"""`zoo serve`'s inference threads, measured: requests/s and latency of eager serving with each thread count,
on an idle machine and on a busy one (a CPU-bound process per core beside the server), the thread counts
alternating within each round. What `--threads`' default is chosen by.

    python benchmarks/serve_threads.py --root ../shared/datasets [--rounds 3] [--seconds 10] [--models LeNet NiN]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
CASES = [("LeNet", "FASHIONMNIST_V1"), ("NiN", "FASHIONMNIST_CPU_V1")]  # a small and a larger shipped network


def load(url: str, files: list[bytes], seconds: float, clients: int = 8) -> tuple[float, float]:
    """(requests/s, 95th percentile latency in ms) of `clients` posting for `seconds`."""
    from benchmarks.export_serve import together
    from tests.commands.serve.test_command import post

    latencies, errors, stop = [], [], time.monotonic() + seconds

    def client(c: int) -> None:
        i = c
        while time.monotonic() < stop:
            t = time.perf_counter()
            status, _ = post(url + "/predict", {"image": ("x.png", files[i % len(files)])})
            latencies.append(time.perf_counter() - t)
            if status != 200:
                errors.append(status)
            i += clients

    seconds = together(client, clients)
    assert not errors, errors[:5]
    return len(latencies) / seconds, 1000 * statistics.quantiles(latencies, n=20)[-1]


def burners(n: int) -> list[subprocess.Popen]:
    """`n` processes that keep a core each busy (another job on the machine)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count()])
    parser.add_argument("--models", nargs="+", default=[m for m, _ in CASES])
    args = parser.parse_args()
    from torchvision.datasets import FashionMNIST

    from tests.commands.serve.test_command import start

    test = FashionMNIST(str(Path(args.root).resolve()), train=False)
    pngs = []
    for i in range(64):
        buffer = io.BytesIO()
        test[i][0].save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    cores = os.cpu_count()
    print(f"{cores} cores; 8 clients, {args.seconds:g} s a measurement, {args.rounds} rounds, thread counts "
          f"alternating; busy: {cores} CPU-bound processes beside the server", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model, weights in [c for c in CASES if c[0] in args.models]:
            for busy in (False, True):
                got = {t: [] for t in args.threads}
                for _ in range(args.rounds):
                    for threads in args.threads:
                        server, url = start(["--model", model, "--model.weights", weights, "--data", "FashionMNIST",
                                             "--data.root", args.root, "--threads", str(threads)], tmp)
                        others = burners(cores) if busy else []
                        try:
                            load(url, pngs, 2)  # warm-up
                            got[threads].append(load(url, pngs, args.seconds))
                        finally:
                            for p in others:
                                p.kill()
                            os.killpg(server.pid, signal.SIGINT)
                            server.wait(30)
                for threads, runs in got.items():
                    rate = statistics.median(r for r, _ in runs)
                    p95 = statistics.median(p for _, p in runs)
                    print(f"| {model} | {'busy' if busy else 'idle'} | {threads} | {rate:.0f} | {p95:.0f} | "
                          f"{', '.join(f'{r:.0f}' for r, _ in runs)} |", flush=True)


if __name__ == "__main__":
    main()
