"""A model's class probabilities over one set of a DataModule, in evaluation mode, with no augmentation."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from zoo_common import ConfigError

SAY_EVERY_S = 10.0


@dataclass
class Examples:
    """One set of examples: images (uint8, indexable by a tensor of positions), labels, and what names each
    example: its position in ``source`` and, where the source has files, their names."""

    name: str  # train, val, train_dev, test, held_out
    images: object
    labels: torch.Tensor
    index: torch.Tensor
    files: list[str] | None
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def ids(self, i: int) -> tuple[int, str]:
        """(position in the source, file name or "") of the i-th example."""
        position = int(self.index[i])
        return position, (self.files[position] if self.files else "")

    def subset(self, chosen: torch.Tensor) -> Examples:
        from datamodules.curation import take

        return Examples(self.name, take(self.images, chosen), self.labels[chosen], self.index[chosen], self.files,
                        self.source)


def examples(datamodule, name: str) -> Examples:
    """The set ``name`` of a set-up image DataModule, or a one-line error naming the sets it has."""
    sets = {"train": "train_set", "val": "val_set", "train_dev": "train_dev_set", "test": "test_set",
            "held_out": "held_out"}
    data = getattr(datamodule, sets[name], None)
    if data is None:
        have = [n for n, attr in sets.items() if getattr(datamodule, attr, None) is not None]
        raise ConfigError(f"--split {name}: {type(datamodule).__name__} has no such split here (it has {have})")
    images, labels = data
    if hasattr(datamodule, "listing"):  # an image folder: positions in its folders' sorted listings
        source = {"test": "test/", "val": "val/" if "val" in datamodule.listing else "train/"}.get(name, "train/")
    else:
        source = "the official test set" if name == "test" else "the official training set"
    files = datamodule.example_files
    return Examples(name, images, labels, datamodule.index[name], files.get(name, files.get("train")), source)


@torch.inference_mode()
def probabilities(module, datamodule, data: Examples, batch_size: int = 512) -> torch.Tensor:
    """Softmax of the model's outputs for every example (N x classes, float32 on the CPU), in batches, saying
    where it is every 10 s."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = module.to(device).eval()
    out, started, said = [], time.monotonic(), time.monotonic()
    for start in range(0, len(data), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data)))
        x = datamodule.transform(data.images[rows].to(device), train=False)
        out.append(module(x).float().softmax(dim=-1).cpu())
        if time.monotonic() - said >= SAY_EVERY_S:
            said = time.monotonic()
            print(f"  {data.name}: {start + len(rows):,} of {len(data):,} examples ({said - started:.0f} s)",
                  file=sys.stderr, flush=True)
    if not out:
        return torch.empty(0, datamodule.num_classes)
    return torch.cat(out)


def error_rate(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Per cent of examples whose most probable class is not their label."""
    return 100.0 * int((probs.argmax(dim=1) != labels).sum()) / len(labels) if len(labels) else float("nan")
