"""An uploaded image as the model's input, decoded by the very function ``zoo predict`` uses for a file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import torch

from datamodules.files import DatasetError
from datamodules.files_predict import read_image
from datamodules.image_cache import BadImage, decode


class BadUpload(ValueError):
    """An upload that is not an image the model can take; the message is the one line the client reads."""


def read(source: Path | BinaryIO, spec: dict) -> torch.Tensor:
    """uint8 C x S x S from an image file, as the contract's ``decode`` says (``zoo predict``'s reader)."""
    how = spec["decode"]
    if how["method"] == "center_crop":  # ImageFolder's decoding: EXIF, shorter side, center crop
        return torch.from_numpy(decode(source, how["size"], how["channels"]).copy())
    return read_image(source, how["channels"], how["size"])


def from_bytes(data: bytes, spec: dict, name: str = "") -> torch.Tensor:
    """The upload decoded from memory by the same readers ``zoo predict`` gives a path: nothing touches the disk,
    so a full or unwritable temporary folder cannot fail a request."""
    if not data:
        raise BadUpload("the upload is empty: send an image file (curl -F image=@photo.jpg ...)")
    try:
        return read(io.BytesIO(data), spec)
    except (DatasetError, BadImage) as e:
        reason = str(e).split(": not a readable image ", 1)[-1] if isinstance(e, DatasetError) else str(e)
        raise BadUpload(f"{name or 'the upload'} is not an image the server can read ({reason.strip('()')})") from None
