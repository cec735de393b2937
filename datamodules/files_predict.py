"""Images from files for ``zoo predict``: PNG, JPEG and whatever else Pillow reads, any size, gray or color.

torch is imported where tensors are made: ``zoo serve`` decodes an upload with ``image_array`` in a process that
runs an ONNX file and has no use for it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from datamodules.files import DatasetError
from datamodules.listing import printable, scan

if TYPE_CHECKING:
    import torch


def list_images(path: str | Path) -> list[Path]:
    """The file itself, or every file in the folder (sorted); a folder with no files is an error. Entries that
    cannot be followed (a symbolic-link loop, a dangling link) are listed too: reading them fails, and
    ``zoo predict`` names them with the reason."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"--data.predict_path {printable(path)}: no such file or folder")
    listing = scan(path)
    files = sorted([Path(e.path) for e in listing.files] + [Path(p) for p in listing.skipped])
    if not files and listing.folders:  # a labelled folder (class sub-folders): not what predict reads
        names = sorted(e.name for e in listing.folders)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DatasetError(f"--data.predict_path {printable(path)}: the folder holds sub-folders ({shown}) and no "
                           "files; zoo predict classifies the files of one folder, its sub-folders are not read. To "
                           f"measure a model on images labelled by their folders, lay them out as DIR/test/<class>/ "
                           f"and run zoo test --data ImageFolder --data.root DIR")
    if not files:
        raise DatasetError(f"--data.predict_path {printable(path)}: the folder holds no files; put PNG or JPEG "
                           "images in it")
    return files


def read_image(path: Path | BinaryIO, channels: int, size: int) -> torch.Tensor:
    """One image as the model's input: uint8 C x size x size, converted to gray (1) or RGB (3) and resized."""
    import torch

    return torch.from_numpy(image_array(path, channels, size))


def image_array(path: Path | BinaryIO, channels: int, size: int) -> np.ndarray:
    """``read_image`` as a NumPy array; ``path`` may also be an open binary file (``zoo serve`` decodes uploads
    from memory)."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        name = printable(path) if isinstance(path, (str, os.PathLike)) else "the upload"
        # Pillow's own words for an unknown format repeat the path (or a BytesIO's repr)
        reason = "not an image Pillow can read" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise DatasetError(f"{name}: not a readable image ({reason})") from None
    return np.array(array[None] if channels == 1 else array.transpose(2, 0, 1), order="C")  # its own, writable


def read_images(
    paths: list[Path], channels: int, size: int, read: Callable[[Path], torch.Tensor] | None = None
) -> tuple[torch.Tensor, list[Path], dict[Path, str]]:
    """(stacked images, the paths that were read, {path: why not} for the others).

    ``read`` turns one path into a uint8 ``channels x size x size`` tensor or raises DatasetError (default:
    ``read_image``, a plain resize).
    """
    import torch

    read = read or (lambda path: read_image(path, channels, size))
    images, good, bad = [], [], {}
    for path in paths:
        try:
            images.append(read(path))
            good.append(path)
        except DatasetError as e:
            bad[path] = str(e)
    stacked = torch.stack(images) if images else torch.empty(0, channels, size, size, dtype=torch.uint8)
    return stacked, good, bad
