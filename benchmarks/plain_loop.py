"""The plain PyTorch loop that ``benchmarks/epoch_time.py`` races ``zoo fit`` against.

    python benchmarks/plain_loop.py --root ../shared/datasets --model LeNet --lr 0.9 --epochs 2

The fastest honest loop a careful user writes without Lightning: Fashion-MNIST
from torchvision's dataset class, held in memory as one float tensor on the
device (converted once), the same seeded train/validation split as the zoo
(5,000 held out), shuffled index slices, SGD, and an evaluation of the
validation set after every epoch under ``torch.inference_mode`` with its sums
kept on the device (one synchronisation an epoch, to print loss and
accuracy). The network is the zoo's, so both run the same arithmetic.

``--channels-last`` puts the weights and the images in the channels-last
(NHWC) layout, as ``zoo fit`` does for the models that train faster so
(``prefers_channels_last``): the loop as fast as the zoo's network runs.

Evaluation goes in batches of 256, not one forward pass over the 5,000: on
the CPU one pass is several times slower (0.2 vs 1.3 s for LeNet on 2 cores,
the activations no longer fit the caches). No autocast or resize call is
made unless asked for (``--bf16``, ``--resize``): each costs a little every step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/datasets")
    p.add_argument("--model", default="LeNet")
    p.add_argument("--lr", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--resize", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (what --trainer.precision bf16-mixed does)")
    p.add_argument("--channels-last", action="store_true",
                   help="weights and batches in the channels-last layout (what the zoo does for the models that prefer it)")
    args = p.parse_args()

    import torchvision

    import zoo

    torch.manual_seed(0)
    device = torch.device(args.device)
    data = torchvision.datasets.FashionMNIST(args.root, train=True)
    order = torch.randperm(len(data.targets), generator=torch.Generator().manual_seed(0))
    val, train = order[:5000], order[5000:]
    x = data.data.unsqueeze(1).to(device).float().div_(255)
    y = data.targets.to(device)
    x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    size = args.resize or 28
    net = zoo.get_model(args.model)(num_classes=10, in_channels=1, input_size=size).net.to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x_train, x_val = (t.contiguous(memory_format=torch.channels_last) for t in (x_train, x_val))
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr)

    def inputs(batch: torch.Tensor) -> torch.Tensor:
        return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    forward = (lambda x: net(inputs(x))) if args.resize else net
    if args.bf16:
        plain_forward = forward

        def forward(x):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return plain_forward(x)

    for epoch in range(args.epochs):
        start = time.perf_counter()
        net.train()
        perm = torch.randperm(len(y_train), device=device)
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            loss = F.cross_entropy(forward(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        net.eval()
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        with torch.inference_mode():
            for i in range(0, len(y_val), args.batch_size):
                logits = forward(x_val[i : i + args.batch_size])
                target = y_val[i : i + args.batch_size]
                total_loss.add_(F.cross_entropy(logits.float(), target, reduction="sum"))
                correct.add_((logits.argmax(1) == target).sum())
        n = len(y_val)
        print(f"epoch {epoch}: val loss {total_loss.item() / n:.4f}, val acc {correct.item() / n:.4f}, "
              f"{time.perf_counter() - start:.2f}s", flush=True)


if __name__ == "__main__":
    main()
