"""The errors of one set: per-class precision, recall and F1, the confusion matrix and its most confused pairs,
the examples with the highest loss; and the rows of the course's manual review."""

from __future__ import annotations

from pathlib import Path

import torch
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from zoo.commands.analyze.predictions import Examples
from zoo.training.images import captioned_grid, confusion_image, save_png
from zoo_common import atomic_write_text, csv_text


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def per_class(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> list[list]:
    """Rows of class, precision, recall, F1, support (torchmetrics, one value per class)."""
    k = len(classes)
    preds = probs.argmax(dim=1)
    scores = [f(preds, labels, num_classes=k, average="none", validate_args=False)
              for f in (multiclass_precision, multiclass_recall, multiclass_f1_score)]
    support = torch.bincount(labels, minlength=k)
    return [[classes[c], *(round(float(s[c]), 4) for s in scores), int(support[c])] for c in range(k)]


def confusion(probs: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    return multiclass_confusion_matrix(probs.argmax(dim=1), labels, num_classes=k, validate_args=False)


def most_confused(matrix: torch.Tensor, classes: list[str], limit: int = 20) -> list[list]:
    """Rows of true class, predicted class, count, share of the true class: the off-diagonal cells, largest first."""
    off = matrix.clone()
    off.fill_diagonal_(0)
    totals = matrix.sum(dim=1)
    order = torch.argsort(off.flatten(), descending=True, stable=True)[:limit]
    rows = []
    for flat in order.tolist():
        i, j = divmod(flat, len(classes))
        if off[i, j] == 0:
            break
        rows.append([classes[i], classes[j], int(off[i, j]), round(float(off[i, j] / totals[i]), 4)])
    return rows


def losses(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example from its probabilities."""
    return -torch.log(probs.gather(1, labels[:, None]).squeeze(1).clamp_min(1e-12))


def example_rows(data: Examples, chosen: list[int], probs: torch.Tensor, classes: list[str]) -> list[list]:
    """index, file, given label, predicted label, its probability, the given label's probability, loss."""
    rows = []
    loss = losses(probs, data.labels)
    for i in chosen:
        position, file = data.ids(i)
        given, predicted = int(data.labels[i]), int(probs[i].argmax())
        rows.append([position, file, classes[given], classes[predicted], round(float(probs[i, predicted]), 4),
                     round(float(probs[i, given]), 4), round(float(loss[i]), 4)])
    return rows


EXAMPLE_HEADER = ["index", "file", "given_label", "predicted_label", "predicted_probability", "given_probability", "loss"]


def grid(datamodule, data: Examples, chosen: list[int], lines) -> torch.Tensor:
    """The chosen examples as the model saw them (before normalisation), each captioned by ``lines(i)``."""
    rows = torch.tensor(chosen, dtype=torch.long)
    images = data.images[rows].float().div(255) if len(rows) else torch.zeros(0, 1, 8, 8)
    crop = getattr(datamodule, "crop_size", None)
    if crop and images.shape[-1] != crop:
        from datamodules.augment import center_crop

        images = center_crop(images, crop)
    return captioned_grid(images, [lines(i) for i in chosen], ncol=8 if len(chosen) > 16 else 4)


def top_losses(data: Examples, probs: torch.Tensor, count: int) -> list[int]:
    return torch.argsort(losses(probs, data.labels), descending=True, stable=True)[:count].tolist()


def review_sample(data: Examples, probs: torch.Tensor, count: int, seed: int) -> list[int]:
    """``count`` misclassified examples drawn at random (seeded), in the order drawn."""
    wrong = torch.nonzero(probs.argmax(dim=1) != data.labels).flatten()
    order = torch.randperm(len(wrong), generator=torch.Generator().manual_seed(seed))[:count]
    return wrong[order].tolist()


def caption(data: Examples, probs: torch.Tensor, classes: list[str], i: int, number: int | None = None,
            verb: str = "predicted") -> list[str]:
    """An example's lines under its picture: its number in a sheet, file or index, given and most probable class."""
    position, file = data.ids(i)
    predicted = int(probs[i].argmax())
    name = f"#{number} " if number is not None else ""
    return [f"{name}{file or f'index {position}'}", f"given: {classes[int(data.labels[i])]}",
            f"{verb}: {classes[predicted]} {float(probs[i, predicted]):.2f}"]


def write_errors(out: Path, datamodule, data: Examples, probs: torch.Tensor, classes: list[str],
                 top: int, review: int, seed: int) -> dict[str, torch.Tensor]:
    """per_class.csv, confusion.png, most_confused.csv, top_losses.csv/.png, review.csv/.png; the pictures back."""
    write_csv(out / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
              per_class(probs, data.labels, classes))
    matrix = confusion(probs, data.labels, len(classes))
    pictures = {"confusion": confusion_image(matrix, classes)}
    write_csv(out / "most_confused.csv", ["true_label", "predicted_label", "count", "share_of_true_label"],
              most_confused(matrix, classes))
    worst = top_losses(data, probs, top)
    write_csv(out / "top_losses.csv", EXAMPLE_HEADER, example_rows(data, worst, probs, classes))
    pictures["top_losses"] = grid(datamodule, data, worst, lambda i: caption(data, probs, classes, i))
    chosen = review_sample(data, probs, review, seed)
    rows = example_rows(data, chosen, probs, classes)
    write_csv(out / "review.csv", ["number", *EXAMPLE_HEADER, "category"],
              [[n, *row, ""] for n, row in enumerate(rows, start=1)])
    numbers = {i: n for n, i in enumerate(chosen, start=1)}
    pictures["review"] = grid(datamodule, data, chosen, lambda i: caption(data, probs, classes, i, numbers[i]))
    for name, picture in pictures.items():
        save_png(picture, out / f"{name}.png")
    return pictures
