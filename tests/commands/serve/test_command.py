"""zoo serve as a user runs it: a subprocess on a free local port, a real HTTP client, answers equal to zoo
predict's CSV rows, bad uploads answered 4xx while the server goes on, and a bounded load test."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("litserve")

from tests.commands.serve.test_decode import png_16bit_gray  # noqa: E402
from tests.helpers import ENV, SHARED_DATASETS  # noqa: E402

WEIGHTS = ["--model", "LeNet", "--model.weights", "FASHIONMNIST_V1", "--data", "FashionMNIST"]
pytestmark = pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").is_dir(), reason="needs ../shared/datasets")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, fields: dict, content_type: str | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    """A multipart POST with the standard library: (status, JSON answer)."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
        else:
            body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=raw if raw is not None else body, method="POST", headers={
        "Content-Type": content_type or f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Test images as files: PNGs at the native size, a larger colour JPEG, a wide gray PNG."""
    from torchvision.datasets import FashionMNIST

    folder = tmp_path_factory.mktemp("photos")
    test = FashionMNIST(str(SHARED_DATASETS), train=False)
    for i in range(6):
        test[i][0].save(folder / f"test_{i}.png")
    test[6][0].convert("RGB").resize((90, 90)).save(folder / "colour big.jpg", quality=95)
    test[7][0].resize((56, 28)).save(folder / "wide.png")
    return folder


@pytest.fixture(scope="module")
def predicted(photos, tmp_path_factory):
    """zoo predict's rows for the same files, top 3."""
    out = tmp_path_factory.mktemp("predict") / "p.csv"
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "predict", *WEIGHTS, "--data.predict_path", str(photos),
                           "--top_k", "3", "--output", str(out)], capture_output=True, text=True, timeout=300,
                          cwd=out.parent, env=ENV)
    assert done.returncode == 0, done.stderr
    with open(out) as f:
        return {os.path.basename(row["file"]): row for row in csv.DictReader(f)}


class Served(str):
    """The server's URL, with the file its output goes to."""

    log: Path
    pid: int
    kind: str


def start(args: list[str], cwd, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    out = open(log, "w") if log else subprocess.PIPE
    server = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", *args, "--port", str(port),
                               "--max_upload_mb", "0.05"], cwd=cwd, env=ENV, stdout=out,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if log:
        out.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text() if log else server.stdout.read()
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    while log and "zoo serve: ready (" not in log.read_text() and time.monotonic() < deadline:
                        time.sleep(0.1)  # its own line that it is ready, the last of its start
                    return server, url
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the server did not become healthy in 120 s")


@pytest.fixture(scope="module", params=["onnx", "eager"])
def server(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    if request.param == "onnx":
        done = subprocess.run([sys.executable, "-m", "zoo.cli", "export", *WEIGHTS, "--data.root",
                               str(SHARED_DATASETS), "--output", str(folder / "lenet.onnx")], cwd=folder,
                              capture_output=True, text=True, timeout=300, env=ENV)
        assert done.returncode == 0, done.stderr
        args = ["--exported", str(folder / "lenet.onnx")]
    else:
        args = WEIGHTS
    process, url = start(args, folder, folder / "server.log")
    url = Served(url)
    url.log, url.pid, url.kind = folder / "server.log", process.pid, request.param
    yield url
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def answer_equals_row(answer: dict, row: dict) -> None:
    for rank, prediction in enumerate(answer["predictions"], start=1):
        suffix = "" if rank == 1 else f"_{rank}"
        assert prediction["class"] == row[f"class{suffix}"]
        assert abs(prediction["probability"] - float(row[f"probability{suffix}"])) <= 1e-6


def test_answers_equal_zoo_predicts_rows(server, photos, predicted):
    assert len(predicted) == 8
    for name, row in predicted.items():
        status, answer = post(server + "/predict", {"image": (name, (photos / name).read_bytes()), "top_k": 3})
        assert status == 200, answer
        assert len(answer["predictions"]) == 3
        answer_equals_row(answer, row)


def test_bad_uploads_get_4xx_with_one_line_and_the_server_goes_on(server, photos, predicted):
    good = (photos / "test_0.png").read_bytes()
    truncated = good[: len(good) // 2]
    cases = [
        ({"image": ("notes.txt", b"not an image at all")}, None, None, 400, "not an image"),
        ({"image": ("empty.png", b"")}, None, None, 400, "empty"),
        ({"image": ("cut.png", truncated)}, None, None, 400, "not an image"),
        ({"image": ("huge.png", os.urandom(80_000))}, None, None, 413, "limit"),
        ({"photo": ("test_0.png", good)}, None, None, 400, "form field 'image'"),
        ({"image": ("test_0.png", good), "top_k": "many"}, None, None, 400, "top_k"),
        ({}, "image/png", good, 415, "form field named image"),
        ({}, "multipart/form-data; boundary=xyz", b"garbage", 400, "multipart"),
        ({"image": ("scan.png", png_16bit_gray(9000, 9000, rows=1))}, None, None, 413, "81.0 megapixels"),
        ({"image": ("x" * 5000 + ".png", good)}, None, None, 400, "filename is over"),
        ({"image": ("test_0.png", good), "top_k": "9" * 5000}, None, None, 400, "(5000 characters)"),
    ]
    logged = server.log.read_text()
    for fields, kind, raw, status, words in cases:
        got, answer = post(server + "/predict", fields, kind, raw)
        assert got == status and words in answer["error"], (fields.keys(), got, answer)
        assert "\n" not in answer["error"] and "/tmp/" not in answer["error"] and len(answer["error"]) < 400
        got, answer = post(server + "/predict", {"image": ("test_0.png", good)})
        assert got == 200
        answer_equals_row(answer, predicted["test_0.png"])
    # each bad upload was answered; none left a line of a library in the server's log
    time.sleep(0.5)
    assert server.log.read_text() == logged


def test_an_onnx_server_loads_no_torch_in_any_of_its_processes(server, photos, predicted):
    """The processes that move bytes (and the one that runs ONNX Runtime) have no use for PyTorch: none maps it.
    The eager server's do (it runs the model in PyTorch): proof that the check sees the library when it is there."""
    name = next(iter(predicted))
    status, answer = post(server + "/predict", {"image": (name, (photos / name).read_bytes())})
    assert status == 200, answer  # after a request: everything it needs has been loaded
    processes = [server.pid, *_descendants(server.pid)]
    maps = {}
    for pid in processes:
        try:
            maps[pid] = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
    assert len(maps) >= 3, maps.keys()  # the command, its web server, its inference worker (and more)
    with_torch = [pid for pid, text in maps.items() if "libtorch_cpu" in text]
    if server.kind == "onnx":
        assert with_torch == [], f"{len(with_torch)} of {len(maps)} processes load torch"
    else:
        assert len(with_torch) >= 2, with_torch  # the command and the inference worker at least


def test_eight_clients_at_once_lose_no_request(server, photos, predicted):
    """8 threads, 40 requests each; one client sends only bad uploads, which share batches with good ones."""
    files = {name: (photos / name).read_bytes() for name in predicted}
    names = sorted(files)
    failures, answered = [], [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        for i in range(40):
            if c == 7:
                status, answer = post(server + "/predict", {"image": ("bad.png", b"\x89PNG nothing")})
                ok = status == 400
            else:
                name = names[(c + i) % len(names)]
                status, answer = post(server + "/predict", {"image": (name, files[name]), "top_k": 3})
                try:
                    answer_equals_row(answer, predicted[name])
                    ok = status == 200
                except (AssertionError, KeyError):
                    ok = False
            with lock:
                answered[0] += 1
                if not ok:
                    failures.append((c, i, status, answer))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert answered[0] == 320 and failures == []


@pytest.mark.parametrize("host,words", [("127.0.0.1", "is in use (another server?)"),
                                        ("no-such-host.invalid", "--host no-such-host.invalid: not an address")])
def test_a_port_in_use_or_a_bad_host_is_one_line_before_the_model_loads(tmp_path, host, words):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "zoo.cli", "serve", *WEIGHTS, "--host", host, "--port",
                               str(port)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], done.stderr
    assert "Serving" not in done.stdout + done.stderr and "Weights from" not in done.stderr


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found.update(children)
        todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_to_the_server_stops_every_process_it_started_and_frees_the_port(tmp_path):
    """What systemd, Docker and Kubernetes send: the main process alone gets it; nothing it started may stay."""
    process, url = start(WEIGHTS, tmp_path)
    port = int(url.rsplit(":", 1)[1])
    try:
        children = _descendants(process.pid)
        assert len(children) >= 2, children  # web server(s), inference worker, ...
        os.kill(process.pid, signal.SIGTERM)
        process.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)], "processes of the server outlived it"
        said = process.stdout.read()
        assert process.returncode == 143 and "stopped by SIGTERM" in said
        # its last words: that line alone, no process's trace (a web worker once printed a KeyboardInterrupt's)
        after = said[said.index("Serving "):]
        assert "Traceback" not in after and "KeyboardInterrupt" not in after, after
        assert after.strip().splitlines()[-1] == "zoo serve: stopped by SIGTERM"
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # free again
    finally:  # whatever is left of its session (all of it, when the test has failed)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_one_inference_thread_unless_told():
    """The default chosen by benchmarks/serve_threads.py (RESULTS.md): one thread, not a thread per core."""
    from zoo.commands.serve.command import parse
    from zoo_common import ConfigError

    assert parse(["--exported", "m.onnx"])[0].threads == 1
    assert parse(["--exported", "m.onnx", "--threads", "3"])[0].threads == 3
    with pytest.raises(ConfigError, match="--threads 0: give a whole number >= 1"):
        parse(["--exported", "m.onnx", "--threads", "0"])


def test_a_starting_server_says_what_it_does_every_ten_seconds_then_that_it_is_ready(capsys):
    """Loading, then starting its processes: a line every 10 s (here 0.2 s) until /health answers, then 'ready'."""
    import http.server

    from zoo.commands.serve import command

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    port = free_port()
    command.phase[0] = "loading the model"
    watcher = threading.Thread(target=command.progress, args=("127.0.0.1", port, 0.2))
    watcher.start()
    time.sleep(1)
    command.phase[0] = "starting the web workers and the inference worker"
    time.sleep(1)
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    watcher.join(10)
    server.shutdown()
    said = capsys.readouterr().err.splitlines()
    assert not watcher.is_alive() and said[-1].startswith("zoo serve: ready (")
    assert sum(line.startswith("zoo serve: loading the model (") for line in said) >= 2
    assert sum(line.startswith("zoo serve: starting the web workers") for line in said) >= 2
