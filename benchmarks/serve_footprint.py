"""What `zoo serve` costs before it answers: processes, memory and the time to be ready.

    python benchmarks/serve_footprint.py --root ../shared/datasets [--rounds 3]

For an ONNX LeNet, an ONNX ResNet18 and an eager LeNet (weights by name):
the server is started as a user starts it, timed until ``GET /health``
answers ``ok``; one image is classified; then every process of the server
(the command and all it started) is read from /proc: resident memory (RSS:
what ``top`` shows, shared pages counted in each process) and proportional
memory (PSS: each shared page divided among the processes sharing it, so the
sum is what the server really holds), and which processes have PyTorch
loaded (``libtorch_cpu`` in their memory map). Median over rounds.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

CASES = {  # what is served: the model options of `zoo export` (ONNX) or of `zoo serve` (eager)
    "LeNet, ONNX": ["--model", "LeNet", "--model.weights", "FASHIONMNIST_V1", "--data", "FashionMNIST"],
    # untrained: its shipped weights are made by `zoo reproduce`, and the footprint does not depend on the values
    "ResNet18, ONNX": ["--model", "ResNet18", "--model.weights", "{untrained}", "--data", "FashionMNIST"],
    "LeNet, eager": ["--model", "LeNet", "--model.weights", "FASHIONMNIST_V1", "--data", "FashionMNIST"],
}


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
    found, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        todo += children
    return found


def footprint(pid: int) -> dict:
    """Summed RSS and PSS (MB) of the process tree, its size, and how many of its processes map libtorch."""
    rss = pss = 0
    with_torch = []
    names = []
    for p in tree(pid):
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            maps = Path(f"/proc/{p}/maps").read_text()
            names.append(Path(f"/proc/{p}/comm").read_text().strip())
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.split()[1:2]}
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        if "libtorch_cpu" in maps:
            with_torch.append(names[-1])
    return {"rss": rss / 1024, "pss": pss / 1024, "processes": len(names), "torch": len(with_torch)}


def classify(url: str, png: bytes) -> None:
    boundary = "zooboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200, answer.read()


def serve_once(args: list[str], cwd: str, port: int, png: bytes) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    log = open(Path(cwd) / "serve.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", *args, "--port", str(port)], cwd=cwd, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise SystemExit(f"zoo serve {' '.join(args)} ended with {server.returncode}:\n{log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.05)
        ready = time.perf_counter() - start
        classify(url, png)
        time.sleep(1)  # the processes settle after their first request
        return {"ready": ready, **footprint(server.pid)}
    finally:
        log.close()
        try:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(30)
            deadline = time.monotonic() + 30  # every process of its group gone: nothing of it in the next round
            while time.monotonic() < deadline:
                os.killpg(server.pid, 0)  # ProcessLookupError once none is left
                time.sleep(0.2)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(p)
    p.add_argument("--root", default="../shared/datasets", help="folder holding FashionMNIST/raw/")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=8791)
    p.add_argument("--section", default="serve_footprint")
    p.add_argument("--title", default="", help="words after the section's title (e.g. 'before')")
    args = p.parse_args()
    root = str(Path(args.root).resolve())

    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), 128).save(buffer, format="PNG")
    png = buffer.getvalue()
    results: dict[str, list[dict]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        serve_args = {}
        untrained = Path(tmp) / "resnet18_untrained.pt"
        subprocess.run([sys.executable, "-c", "import sys, torch, zoo; torch.save(zoo.ResNet18(in_channels=1)"
                        ".state_dict(), sys.argv[1])", str(untrained)], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        for name, model in CASES.items():
            model = [a.format(untrained=untrained) for a in model]
            if name.endswith("ONNX"):
                out = Path(tmp) / f"{model[1]}.onnx"
                subprocess.run([sys.executable, "-m", "zoo.cli", "export", *model, "--data.root", root, "--output",
                                str(out)], cwd=tmp, check=True, capture_output=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
                serve_args[name] = ["--exported", str(out)]
            else:
                serve_args[name] = [*model, "--data.root", root]
        for r in range(args.rounds):
            for name in CASES if r % 2 == 0 else list(CASES)[::-1]:
                results[name].append(serve_once(serve_args[name], tmp, args.port + len(results[name]) * 10
                                                + list(CASES).index(name), png))
                m = results[name][-1]
                print(f"round {r}, {name}: ready {m['ready']:.1f} s, {m['processes']} processes ({m['torch']} with "
                      f"torch), RSS {m['rss']:.0f} MB, PSS {m['pss']:.0f} MB", flush=True)

    med = statistics.median
    rows = [f"| {name} | {med(m['ready'] for m in ms):.1f} | {ms[0]['processes']} | {ms[0]['torch']} | "
            f"{med(m['rss'] for m in ms):.0f} | {med(m['pss'] for m in ms):.0f} |" for name, ms in results.items()]
    cmd = f"python benchmarks/serve_footprint.py --root {args.root}" + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
    body = "\n".join([
        f"## Serving: processes, memory, time to ready{(' (' + args.title + ')') if args.title else ''}", "",
        f"`{cmd}`", "",
        f"Machine: {machine()}. `zoo serve` started from the shell, timed until `/health` answers; after one "
        "request, the server's processes read from /proc: RSS summed (shared pages counted in every process) and "
        f"PSS summed (each shared page divided among its sharers: what the server holds). Median of {args.rounds} "
        "rounds.", "",
        "| served | ready (s) | processes | with torch loaded | RSS (MB) | PSS (MB) |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ])
    write_section(args.section, body)


if __name__ == "__main__":
    main()
