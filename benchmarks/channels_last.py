"""Which memory layout each model trains faster in: the usual (NCHW) or channels-last (NHWC).

    python benchmarks/channels_last.py [--rounds 5] [--models LeNet ResNet18] [--device cpu]

For every convolutional model of the zoo at the size its CPU config trains
at: the same network (same initial weights) in both layouts, taking turns
within each round, each timed over a block of training steps (forward, loss,
backward, SGD step on one fixed batch) and a block of evaluation forwards
under ``inference_mode``; the median over rounds of ms per step. The ratio is
usual / channels-last (above 1: channels-last faster). A model's
``prefers_channels_last`` (``zoo/models/``) is set from this table; whole
epochs with the chosen layout are measured by ``benchmarks/epoch_time.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import add_write_flag, machine, write_section  # noqa: E402

# (model, input size, batch, input channels): the sizes of configs/*_fashion_mnist*.yaml on the CPU
CASES = [("LeNet", 28, 256, 1), ("LeNetBN", 28, 256, 1), ("LeNetBNScratch", 28, 256, 1), ("MnistCNN", 28, 256, 1),
         ("NiN", 67, 128, 1), ("GoogLeNet", 28, 128, 1), ("ResNet18", 28, 256, 1), ("ResNet18", 32, 128, 3)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_write_flag(p)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="*", default=None, help="only these (default: all in the table)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    import zoo

    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for name, size, batch, channels in CASES:
        if args.models and name not in args.models:
            continue
        cls = zoo.get_model(name)
        x = torch.rand(batch, channels, size, size, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        nets = {}
        for layout in ("usual", "channels_last"):
            torch.manual_seed(0)
            net = cls(num_classes=10, in_channels=channels, input_size=size).net.to(device)
            if layout == "channels_last":
                net = net.to(memory_format=torch.channels_last)
            nets[layout] = (net, torch.optim.SGD(net.parameters(), lr=0.01))
        inputs = {"usual": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
        steps = 30 if size <= 28 and name.startswith(("LeNet", "MnistCNN")) else 5
        times: dict[tuple[str, str], list[float]] = {(lay, part): [] for lay in nets for part in ("train", "eval")}
        for r in range(args.rounds + 1):  # round 0 warms up (allocations, oneDNN's kernel choice)
            for layout in (("usual", "channels_last") if r % 2 else ("channels_last", "usual")):
                net, optimizer = nets[layout]
                xb = inputs[layout]
                net.train()
                sync()
                start = time.perf_counter()
                for _ in range(steps):
                    loss = F.cross_entropy(net(xb), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                sync()
                train = (time.perf_counter() - start) / steps
                net.eval()
                start = time.perf_counter()
                with torch.inference_mode():
                    for _ in range(steps):
                        net(xb)
                sync()
                evaluate = (time.perf_counter() - start) / steps
                if r:
                    times[layout, "train"].append(train)
                    times[layout, "eval"].append(evaluate)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        row = (name, size, batch, channels, med["usual", "train"], med["channels_last", "train"],
               med["usual", "eval"], med["channels_last", "eval"], cls.prefers_channels_last)
        rows.append(row)
        print(f"{name} {size}px batch {batch}: train {row[4]:.1f} / {row[5]:.1f} ms ({row[4] / row[5]:.2f}), "
              f"eval {row[6]:.1f} / {row[7]:.1f} ms ({row[6] / row[7]:.2f}); prefers channels-last: {row[8]}",
              flush=True)

    cmd = "python benchmarks/channels_last.py" + (f" --rounds {args.rounds}" if args.rounds != 5 else "")
    cmd += f" --device {args.device}" if args.device != "cpu" else ""
    body = "\n".join([
        "## Memory layout per model: the usual (NCHW) or channels-last (NHWC)", "",
        f"`{cmd}`", "",
        f"Machine: {machine()}. The same network in both layouts, taking turns, {args.rounds} rounds after a warm-up; "
        "ms per training step (forward, loss, backward, SGD on one batch) and per evaluation forward "
        "(`inference_mode`), medians. Ratio: usual / channels-last (above 1: channels-last faster). The last column "
        "is the model's `prefers_channels_last`, the layout `zoo fit` uses unless `--model.channels_last` says "
        "otherwise.", "",
        "| model | input | batch | train, usual (ms) | train, channels-last (ms) | ratio | eval, usual (ms) "
        "| eval, channels-last (ms) | ratio | trains channels-last |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {n} | {c}x{s}x{s} | {b} | {tu:.1f} | {tc:.1f} | {tu / tc:.2f} | {eu:.1f} | {ec:.1f} | {eu / ec:.2f} "
          f"| {'yes' if pref else 'no'} |" for n, s, b, c, tu, tc, eu, ec, pref in rows],
    ])
    write_section("channels_last" + ("_" + args.device if args.device != "cpu" else ""), body)


if __name__ == "__main__":
    main()
