"""Pictures for TensorBoard: a labelled grid of input images and a drawn confusion matrix."""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid


def rgb_at_least(images: torch.Tensor, cell: int) -> torch.Tensor:
    """N x C x H x W images in [0, 1] as RGB, small ones upscaled (nearest neighbour, whole factors) towards
    ``cell`` pixels so that they stay legible."""
    n, c = images.shape[:2]
    images = images.expand(n, 3, *images.shape[2:]) if c == 1 else images[:, :3]
    scale = max(1, cell // images.shape[-1])
    return torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest") if scale > 1 else images


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A Pillow RGB image as uint8 3 x H x W."""
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def labelled_grid(images: torch.Tensor, captions: list[str], ncol: int = 8, cell: int = 64) -> torch.Tensor:
    """Images in [0, 1] (N x C x H x W) as one uint8 3 x H x W grid, each image with its caption above it."""
    images = rgb_at_least(images, cell)
    strip = 12
    tiles = []
    for image, caption in zip(images, captions):
        tile = Image.new("RGB", (image.shape[-1], image.shape[-2] + strip), "black")
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        tile.paste(Image.fromarray(pixels), (0, strip))
        ImageDraw.Draw(tile).text((1, 0), caption[: image.shape[-1] // 6], fill="white")
        tiles.append(to_tensor(tile))
    return make_grid(torch.stack(tiles), nrow=ncol, padding=2)


def captioned_grid(images: torch.Tensor, captions: list[list[str]], ncol: int = 8, cell: int = 112) -> torch.Tensor:
    """Images in [0, 1] (N x C x H x W) as one uint8 3 x H x W grid, each with lines of text under it, whole:
    a line too long for the tile is wrapped, not cut. No images: a small picture that says so."""
    if len(images) == 0:
        empty = Image.new("RGB", (160, 24), "white")
        ImageDraw.Draw(empty).text((4, 6), "(no examples)", fill="black")
        return to_tensor(empty)
    images = rgb_at_least(images, cell)
    side = images.shape[-1]
    per_line = max(8, side // 6)  # Pillow's default font: about 6 px a character
    wrapped = [[chunk for line in lines for chunk in textwrap.wrap(line, per_line) or [""]] for lines in captions]
    strip = 11 * max((len(w) for w in wrapped), default=1) + 4
    tiles = []
    for image, lines in zip(images, wrapped):
        tile = Image.new("RGB", (side, image.shape[-2] + strip), "white")
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        tile.paste(Image.fromarray(pixels), (0, 0))
        draw = ImageDraw.Draw(tile)
        for i, line in enumerate(lines):
            draw.text((2, image.shape[-2] + 2 + 11 * i), line, fill="black")
        tiles.append(to_tensor(tile))
    return make_grid(torch.stack(tiles), nrow=ncol, padding=4, pad_value=0.5 * 255)


def confusion_image(matrix: torch.Tensor, classes: list[str]) -> torch.Tensor:
    """A confusion matrix (rows: true class, columns: predicted) drawn with counts, whole class names (the columns'
    written upwards) and per-class accuracy."""
    cm = matrix.cpu().long().numpy()
    n = len(cm)
    names = [str(c) for c in classes] if len(classes) == n else [str(i) for i in range(n)]
    cell = max(40, 8 * max(len(str(int(cm.max()))), 1) + 8)
    longest = 6 * max(len(s) for s in names) + 8
    left, top = longest + 4, longest + 4
    width, height = left + cell * n + 90, top + cell * n + 20
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    totals = cm.sum(axis=1)
    for i in range(n):
        draw.text((4, top + i * cell + cell // 2 - 5), names[i], fill="black")
        label = Image.new("RGB", (longest, 12), "white")
        ImageDraw.Draw(label).text((2, 0), names[i], fill="black")
        img.paste(label.rotate(90, expand=True), (left + i * cell + cell // 2 - 6, 2))
        for j in range(n):
            share = cm[i, j] / totals[i] if totals[i] else 0.0
            shade = int(255 * (1 - share))
            color = (shade, shade, 255) if i == j else (255, shade, shade)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color, outline=(200, 200, 200))
            draw.text((box[0] + 4, box[1] + cell // 2 - 5), str(cm[i, j]), fill="black" if share < 0.6 else "white")
        acc = cm[i, i] / totals[i] if totals[i] else float("nan")
        draw.text((left + n * cell + 8, top + i * cell + cell // 2 - 5), f"{acc:.1%}", fill="black")
    draw.text((left + n * cell + 8, top - 14), "recall", fill="black")
    draw.text((left, top + n * cell + 5), "rows: true class, columns: predicted", fill="gray")
    return to_tensor(img)


def save_png(image: torch.Tensor, path) -> None:
    """A uint8 3 x H x W image as a PNG file."""
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, format="PNG")
