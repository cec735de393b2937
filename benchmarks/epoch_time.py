"""Whole epochs as a user waits for them: ``zoo fit`` against a plain PyTorch loop, whole processes.

    python benchmarks/epoch_time.py --root ../shared/datasets
    python benchmarks/epoch_time.py --root ../shared/datasets --lean --epochs 4 --rounds 7
    python benchmarks/epoch_time.py --root DATA --model ResNet18 --resize 96 --lr 0.05 --gpu   # on a GPU

Each measurement is a whole process started from the shell, timed from start
to exit: ``zoo fit -c configs/<config> --trainer.max_epochs E`` with every
default on (progress bar, model summary, metrics, TensorBoard, checkpoints,
validation each epoch) under a pseudo-terminal, as in a terminal; and
``benchmarks/plain_loop.py --epochs E``, a plain in-memory loop that also
evaluates the validation set every epoch. Each is run for 1 and for N epochs;
(time of N - time of 1) / (N - 1) is the time of one more epoch, without the
start-up (imports, reading the data). Rounds alternate which program goes
first (A B for the short runs, B A for the long ones, which cancels a steadily
changing load); the ratio (plain loop's epoch time / zoo's, higher is better
for the zoo) is the median over rounds.

``--lean`` is the other way to ask the question: the zoo with its logger,
checkpoints and progress bar off (`--trainer.logger false
--trainer.enable_checkpointing false --trainer.enable_progress_bar false`),
what is left being the training loop itself against the plain loop's.
``--plain-channels-last`` gives the plain loop the zoo's channels-last layout
too, so that the ratio is the loop's alone.
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

CONFIGS = {"LeNet": "lenet_fashion_mnist.yaml", "ResNet18": "resnet18_fashion_mnist.yaml",
           "LeNetBN": "lenet_bn_fashion_mnist.yaml", "MLP": "mlp_fashion_mnist.yaml"}


def run_in_terminal(cmd: list[str], cwd: Path, env: dict | None = None, keep: Path | None = None) -> float:
    """Seconds from start to exit of ``cmd`` with its output on a pseudo-terminal (read and dropped, or written to
    ``keep``)."""
    master, slave = pty.openpty()
    env = env or {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env = {**env, "COLUMNS": "120", "LINES": "40"}
    kept = open(keep, "wb") if keep else None
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    tail: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            tail.append(chunk)
            del tail[:-20]
            if kept:
                kept.write(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    reader.join(timeout=5)
    os.close(master)
    if kept:
        kept.close()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{b''.join(tail).decode(errors='replace')[-3000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(p)
    p.add_argument("--root", default="../shared/datasets", help="folder holding FashionMNIST/raw/")
    p.add_argument("--model", default="LeNet", choices=sorted(CONFIGS))
    p.add_argument("--lr", type=float, default=0.9, help="as in the model's config")
    p.add_argument("--resize", type=int, default=None, help="as in the model's config (ResNet18: 96)")
    p.add_argument("--epochs", type=int, default=3, help="N: the long runs' epochs (the short runs do 1)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--gpu", action="store_true", help="one GPU, bf16-mixed, on both sides")
    p.add_argument("--lean", action="store_true", help="zoo fit without logger, checkpoints and progress bar")
    p.add_argument("--plain-channels-last", action="store_true",
                   help="the plain loop in the channels-last layout too (as the zoo trains the models that prefer it)")
    p.add_argument("--section", default=None, help="RESULTS.md section name (default: epoch_time[_gpu]_<model>)")
    args = p.parse_args()

    root = str(Path(args.root).resolve())
    config = REPO / "configs" / CONFIGS[args.model]
    ours_extra = ["-c", str(REPO / "configs" / "trainer" / ("gpu.yaml" if args.gpu else "cpu.yaml"))]
    plain_extra = ["--device", "cuda", "--bf16"] if args.gpu else []
    if args.lean:
        ours_extra += ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
                       "--trainer.enable_progress_bar", "false"]
    if args.plain_channels_last:
        plain_extra += ["--channels-last"]
    if args.resize:
        ours_extra += ["--data.resize", str(args.resize)]
        plain_extra += ["--resize", str(args.resize)]

    def ours(epochs: int, cwd: Path) -> float:
        return run_in_terminal([sys.executable, "-m", "zoo.cli", "fit", "-c", str(config), *ours_extra,
                                "--data.root", root, "--trainer.max_epochs", str(epochs)], cwd)

    def plain(epochs: int, cwd: Path) -> float:
        return run_in_terminal([sys.executable, str(REPO / "benchmarks" / "plain_loop.py"), "--root", root,
                                "--model", args.model, "--lr", str(args.lr), "--epochs", str(epochs), *plain_extra], cwd)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            times = {}
            # A B B A within a round cancels a load that rises or falls steadily (the machine may be shared);
            # rounds alternate which program is A
            order = [("zoo", ours), ("plain", plain)] if r % 2 == 0 else [("plain", plain), ("zoo", ours)]
            for epochs, names in ((1, order), (args.epochs, order[::-1])):
                for name, fn in names:
                    times[name, epochs] = fn(epochs, Path(tmp))
            per_epoch = {n: (times[n, args.epochs] - times[n, 1]) / (args.epochs - 1) for n in ("zoo", "plain")}
            rows.append((times, per_epoch))
            print(f"round {r}: zoo {times['zoo', 1]:.1f}s/{times['zoo', args.epochs]:.1f}s, plain "
                  f"{times['plain', 1]:.1f}s/{times['plain', args.epochs]:.1f}s (1/{args.epochs} epochs); per epoch "
                  f"zoo {per_epoch['zoo']:.2f}s, plain {per_epoch['plain']:.2f}s, ratio "
                  f"{per_epoch['plain'] / per_epoch['zoo']:.2f}", flush=True)

    ratios = [pe["plain"] / pe["zoo"] for _, pe in rows]
    whole = [t["plain", args.epochs] / t["zoo", args.epochs] for t, _ in rows]
    med = statistics.median
    cmd = "python benchmarks/epoch_time.py --root " + args.root + (f" --model {args.model}" if args.model != "LeNet" else "")
    cmd += (f" --lr {args.lr}" if args.model != "LeNet" else "") + (f" --resize {args.resize}" if args.resize else "")
    cmd += (f" --epochs {args.epochs}" if args.epochs != 3 else "") + (f" --rounds {args.rounds}" if args.rounds != 5 else "")
    cmd += " --gpu" if args.gpu else ""
    cmd += " --lean" if args.lean else ""
    cmd += " --plain-channels-last" if args.plain_channels_last else ""
    setting = "one GPU, bf16-mixed (configs/trainer/gpu.yaml)" if args.gpu else "CPU (configs/trainer/cpu.yaml)"
    setting += ", logger, checkpoints and progress bar off" if args.lean else ""
    setting += ", the plain loop in channels-last" if args.plain_channels_last else ""
    zoo_side = ("with its logger, checkpoints and progress bar off (what is left: the training loop, metrics, the "
                "zoo's callbacks, validation each epoch)" if args.lean else "with every default on (Rich progress "
                "bar in a pseudo-terminal, summary, metrics, TensorBoard, checkpoints, validation each epoch)")
    body = "\n".join([
        f"## Whole epochs: `zoo fit` {args.model} vs a plain PyTorch loop, {setting}", "",
        f"`{cmd}`", "",
        f"Machine: {machine()}. `zoo fit -c configs/{CONFIGS[args.model]}` {zoo_side} against "
        "`benchmarks/plain_loop.py` (same network, data in memory, validation each epoch"
        + (", and in the channels-last layout, as the zoo trains this model" if args.plain_channels_last else "")
        + "). Whole processes, "
        f"1 and {args.epochs} epochs; one more epoch = (t{args.epochs} - t1) / {args.epochs - 1}. "
        f"{args.rounds} rounds; in each, the 1-epoch runs go A B and the {args.epochs}-epoch runs B A, and rounds "
        "alternate which program is A.", "",
        "| round | zoo 1 epoch (s) | plain 1 epoch (s) | zoo per further epoch (s) | plain per further epoch (s) "
        "| ratio (plain / zoo) |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {i} | {t['zoo', 1]:.2f} | {t['plain', 1]:.2f} | {pe['zoo']:.2f} | {pe['plain']:.2f} | "
          f"{pe['plain'] / pe['zoo']:.2f} |" for i, (t, pe) in enumerate(rows)],
        "",
        f"Median ratio per epoch: **{med(ratios):.2f}** (`zoo fit` runs a further epoch at {med(ratios):.2f}x the "
        f"plain loop's speed). Whole {args.epochs}-epoch processes, start-up included: {med(whole):.2f}x.",
    ])
    name = args.section or (f"epoch_time{'_gpu' if args.gpu else ''}{'_lean' if args.lean else ''}"
                            f"{'_plain_nhwc' if args.plain_channels_last else ''}_{args.model.lower()}")
    write_section(name, body)
    print(f"median ratio {med(ratios):.2f}; whole processes {med(whole):.2f}")


if __name__ == "__main__":
    main()
