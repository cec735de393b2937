"""Pictures for TensorBoard: a labelled grid of input images and a drawn confusion matrix."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid


def labelled_grid(images: torch.Tensor, captions: list[str], ncol: int = 8, cell: int = 64) -> torch.Tensor:
    """Images in [0, 1] (N x C x H x W) as one uint8 3 x H x W grid, each image with its caption above it."""
    n, c = images.shape[:2]
    images = images.expand(n, 3, *images.shape[2:]) if c == 1 else images[:, :3]
    scale = max(1, cell // images.shape[-1])  # small images get nearest-neighbour upscaling to stay legible
    images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest") if scale > 1 else images
    strip = 12
    tiles = []
    for image, caption in zip(images, captions):
        tile = Image.new("RGB", (image.shape[-1], image.shape[-2] + strip), "black")
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        tile.paste(Image.fromarray(pixels), (0, strip))
        ImageDraw.Draw(tile).text((1, 0), caption[: image.shape[-1] // 6], fill="white")
        tiles.append(torch.from_numpy(np.asarray(tile).copy()).permute(2, 0, 1))
    return make_grid(torch.stack(tiles), nrow=ncol, padding=2)


def confusion_image(matrix: torch.Tensor, classes: list[str]) -> torch.Tensor:
    """A confusion matrix (rows: true class, columns: predicted) drawn with counts, class names and per-class accuracy."""
    cm = matrix.cpu().long().numpy()
    n = len(cm)
    names = [str(c) for c in classes] if len(classes) == n else [str(i) for i in range(n)]
    cell, left, top = 40, 8 + 7 * max(len(s) for s in names), 30
    width, height = left + cell * n + 90, top + cell * n + 20
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    totals = cm.sum(axis=1)
    for i in range(n):
        draw.text((4, top + i * cell + cell // 2 - 5), names[i], fill="black")
        draw.text((left + i * cell + 2, top - 14), names[i][:6], fill="black")
        for j in range(n):
            share = cm[i, j] / totals[i] if totals[i] else 0.0
            shade = int(255 * (1 - share))
            color = (shade, shade, 255) if i == j else (255, shade, shade)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color, outline=(200, 200, 200))
            draw.text((box[0] + 4, box[1] + cell // 2 - 5), str(cm[i, j]), fill="black" if share < 0.6 else "white")
        acc = cm[i, i] / totals[i] if totals[i] else float("nan")
        draw.text((left + n * cell + 8, top + i * cell + cell // 2 - 5), f"{acc:.1%}", fill="black")
    draw.text((left + n * cell + 8, top - 14), "accuracy", fill="black")
    draw.text((left, top + n * cell + 5), "rows: true class, columns: predicted", fill="gray")
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
