"""What a user does to a training set on purpose: leave out listed examples, flip a seeded fraction of the labels
(to see what noise does, and to measure a label-error finder), hold out one of K folds (``zoo analyze --folds``).

Examples are named by their position in the split they come from (the official training set of a built-in
dataset, the sorted listing of an image folder's ``train/``) or, in an image folder, by their file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo_common import ConfigError, read_csv


class Rows:
    """Chosen rows of a (memory-mapped) tensor, indexed like the tensor: only the rows a batch asks for are read."""

    def __init__(self, tensor: torch.Tensor, rows: torch.Tensor) -> None:
        self.tensor, self.rows = tensor, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.tensor[self.rows[index]]


def take(images, positions: torch.Tensor):
    """``images[positions]``, lazily for ``Rows`` (a memory-mapped folder is not read here)."""
    return Rows(images.tensor, images.rows[positions]) if isinstance(images, Rows) else images[positions]


def read_exclude(path: str | Path, size: int, files: list[str] | None, what: str) -> torch.Tensor:
    """The positions (in ``what``, of ``size`` examples) named by a CSV file's ``index`` or ``file`` column."""
    rows, columns = read_csv(path, "--data.exclude")
    if "index" in columns:
        positions = []
        for n, row in enumerate(rows, start=2):
            value = (row.get("index") or "").strip()
            if not value.isdigit() or int(value) >= size:
                raise ConfigError(f"--data.exclude {path}, line {n}: index {value!r} is not a position in {what} "
                                  f"(0 to {size - 1})")
            positions.append(int(value))
    elif "file" in columns and files is not None:
        where = {name: i for i, name in enumerate(files)}
        unknown = [row.get("file") for row in rows if row.get("file") not in where]
        if unknown:
            raise ConfigError(f"--data.exclude {path}: {len(unknown)} file(s) are not in {what}, e.g. {unknown[0]!r} "
                              f"(names as zoo analyze writes them, relative to --data.root)")
        positions = [where[row["file"]] for row in rows]
    else:
        wanted = "an `index` column" + (" or a `file` column" if files is not None else "")
        raise ConfigError(f"--data.exclude {path}: needs {wanted} (its columns: {columns}); "
                          "label_issues.csv of zoo analyze has both")
    return torch.tensor(sorted(set(positions)), dtype=torch.long)


def plant_noise(labels: torch.Tensor, fraction: float, seed: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy labels, positions flipped): ``round(fraction * n)`` labels, chosen and changed to another class at
    random (every other class equally likely), seeded."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    flipped = torch.randperm(n, generator=g)[: round(fraction * n)].sort().values
    shift = torch.randint(1, num_classes, (len(flipped),), generator=g)
    noisy = labels.clone()
    noisy[flipped] = (labels[flipped] + shift) % num_classes
    return noisy, flipped


def fold_ids(n: int, folds: int, seed: int) -> torch.Tensor:
    """Each of ``n`` examples' fold, 0 to ``folds - 1``: a seeded shuffle dealt out in turn (sizes differ by one)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    ids = torch.empty(n, dtype=torch.long)
    ids[order] = torch.arange(n) % folds
    return ids


def check_options(label_noise: float, folds: int, fold: int) -> None:
    if not 0 <= label_noise < 1:
        raise ConfigError(f"label_noise={label_noise}: give the fraction of training labels to flip, in [0, 1)")
    if folds == 1 or folds < 0:
        raise ConfigError(f"folds={folds}: give 2 or more folds (0: none)")
    if folds and not 0 <= fold < folds:
        raise ConfigError(f"fold={fold}: give the held-out fold, 0 to {folds - 1}")
