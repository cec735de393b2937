"""``zoo serve``: the command line, and the LitServer it starts."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from pathlib import Path

from zoo.commands.help import asks_for_help, own_options
from zoo.commands.serve import MAX_MEGAPIXELS
from zoo_common import ConfigError

USAGE = """usage: zoo serve [--exported FILE | MODEL OPTIONS] [--host H] [--port P] [--top_k K] [--max_batch_size B]
                 [--batch_timeout S] [--max_upload_mb M] [--threads T]

What to serve:
  --exported FILE                                 a file of `zoo export` (.onnx: ONNX Runtime; .pt2: torch.export)
  --ckpt_path best|last|FILE                      a checkpoint of `zoo fit`, run by PyTorch (eager)
  --model NAME --model.weights NAME --data NAME   the zoo's own trained weights, run by PyTorch

  --host H            the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)
  --port P            default 8000
  --top_k K           classes per answer unless the request says (form field top_k); default 1
  --max_batch_size B  requests that arrive together are run as one batch of up to B (default 16)
  --batch_timeout S   how long the first request of a batch waits for others, in seconds (default 0.005)
  --max_upload_mb M   larger uploads get 413 (default 10)
  --threads T         CPU threads for inference (default 1: measured fastest, idle and busy; see the docs)
  --max_megapixels N  larger images get 413, known from their header before decoding (default 40)
  --unchecked         serve an exported file whose FILE.json (its recorded sha256) is missing

POST /predict with the image as form field `image` (curl -F image=@photo.jpg http://127.0.0.1:8000/predict);
GET /health answers "ok" once the model is loaded.
"""


# One inference thread: on 2 cores, beside two busy processes, it answered 2.3x (LeNet) and 1.7x (NiN) the
# requests of a thread per core (the libraries' own choice) at a third of the p95 latency; idle, LeNet 1.8x,
# NiN 0.94x (benchmarks/serve_threads.py, RESULTS.md). The web workers and the decoding need cores too.
THREADS = 1


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="zoo serve", add_help=False, allow_abbrev=False)
    parser.add_argument("--exported", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--top_k", type=int, default=1)
    parser.add_argument("--max_batch_size", type=int, default=16)
    parser.add_argument("--batch_timeout", type=float, default=0.005)
    parser.add_argument("--max_upload_mb", type=float, default=10)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--max_megapixels", type=float, default=MAX_MEGAPIXELS)
    parser.add_argument("--unchecked", action="store_true")
    ours, rest = own_options(parser, argv)
    for name, low in (("port", 1), ("top_k", 1), ("max_batch_size", 1), ("threads", 1)):
        if getattr(ours, name) < low:
            raise ConfigError(f"--{name} {getattr(ours, name)}: give a whole number >= {low}")
    if not 0 < ours.port < 65536:
        raise ConfigError(f"--port {ours.port}: give a port between 1 and 65535")
    if ours.batch_timeout < 0 or not ours.max_upload_mb > 0 or not ours.max_megapixels > 0:
        raise ConfigError("--batch_timeout must be >= 0, --max_upload_mb and --max_megapixels > 0")
    if ours.exported and rest:
        raise ConfigError(f"--exported serves the file alone; leave out {' '.join(rest)}")
    return ours, rest


def check_address(host: str, port: int) -> None:
    """Bind the address once before the model loads: a port in use is one line now, not the web server's own
    error after the model has loaded and "Serving" has been printed."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror}); 127.0.0.1 serves this "
                          "machine only, 0.0.0.0 every network") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does: TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"--port {port}: {host}:{port} is in use (another server?); choose a free port "
                                  "with --port, or stop that server") from None
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); ports below 1024 "
                              "need root, and the host must be an address of this machine") from None


def main(argv: list[str]) -> None:
    if asks_for_help(argv, USAGE):
        return
    ours, rest = parse(argv)
    check_address(ours.host, ours.port)
    import threading

    say(f"loading {ours.exported or ' '.join(rest)}")
    threading.Thread(target=progress, args=(ours.host, ours.port), daemon=True).start()
    from zoo.commands.export.files import require_extra

    require_extra("zoo serve", "litserve")
    if ours.exported:
        from zoo.commands.serve.model import contract_of

        path = Path(ours.exported)
        run(contract_of(path, unchecked=ours.unchecked), path.resolve(), ours, f"{path}")
        return
    from zoo.commands.export import graph
    from zoo.commands.lightning import with_model

    def serve(model, datamodule, ckpt, weights):
        if not graph.is_classifier(model):
            raise ConfigError(f"{type(model).__name__} is a regression model; zoo serve answers image classifiers")
        if not ckpt and not weights:
            raise ConfigError("zoo serve needs trained weights: --ckpt_path best, --model.weights NAME, or "
                              "--exported FILE")
        what = ckpt or f"{type(model).__name__} {weights}"
        run(graph.contract(model, datamodule), graph.exportable(model, datamodule), ours, f"{what} (eager)")

    with_model(rest, serve)


_terminated = False


def say(text: str) -> None:
    print(f"zoo serve: {text}", file=sys.stderr, flush=True)


#: what the server is doing until it is ready, said every 10 s by ``progress``
phase = ["loading the model"]


def progress(host: str, port: int, every_s: float = 10.0) -> None:
    """From the start until the server answers /health: a line every ``every_s`` seconds with what it is doing
    (importing PyTorch, loading the model, starting its processes: from seconds to a minute on a busy machine),
    then one that it is ready. Runs in a thread of its own."""
    import time
    import urllib.request

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else '[::1]' if host == '::' else host}:{port}/health"
    start = last = time.monotonic()
    while True:
        if phase[0] != "loading the model":  # the server is starting: is it up?
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.read() == b"ok":
                        say(f"ready ({time.monotonic() - start:.0f} s)")
                        return
            except Exception:  # noqa: BLE001 (not up yet: refused, reset, a half answer)
                pass
        if time.monotonic() - last >= every_s:
            last = time.monotonic()
            say(f"{phase[0]} ({last - start:.0f} s)")
        time.sleep(min(0.5, every_s / 2))


_MAIN = os.getpid()  # the process that parsed the command; web workers are forked from it, handler and all


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (systemd, Docker, Kubernetes, a scheduler): the server stops as on Ctrl-C, every process with it.
    A web worker that inherited this handler (its server hands SIGTERM back to it after stopping) just ends."""
    global _terminated
    if os.getpid() != _MAIN:
        raise SystemExit(0)
    _terminated = True
    raise KeyboardInterrupt


def _stop_children(grace: float = 10.0) -> None:
    """Any process this one started that is still running (a signal during LitServe's start-up, before its own
    shutdown is armed): asked to stop, then killed."""
    import multiprocessing
    import time

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()


def run(spec: dict, source, options: argparse.Namespace, what: str) -> None:
    import litserve as ls

    from zoo.commands.serve.api import ClassifierAPI, UploadCheck, mb

    api = ClassifierAPI(spec, source, top_k=options.top_k, threads=options.threads,
                        max_megapixels=options.max_megapixels,
                        max_batch_size=options.max_batch_size, batch_timeout=options.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60,
                          middlewares=[(UploadCheck, {"max_bytes": mb(options.max_upload_mb)})])
    url = f"http://{options.host}:{options.port}"
    print(f"Serving {spec['model']} on {len(spec['classes'])} classes from {what} at {url}/predict "
          f"(health: {url}/health); Ctrl-C stops it", file=sys.stderr, flush=True)
    # LitServe stops its web servers, inference worker and manager on KeyboardInterrupt; SIGTERM reaches only
    # this process, so it is turned into one (the children would otherwise keep the port and go on answering)
    signal.signal(signal.SIGTERM, _on_sigterm)
    phase[0] = "starting the web workers and the inference worker"
    try:
        server.run(host=options.host, port=options.port, generate_client_file=False, log_level="warning")
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children()
    if _terminated:
        print("zoo serve: stopped by SIGTERM", file=sys.stderr, flush=True)
        raise SystemExit(143)
