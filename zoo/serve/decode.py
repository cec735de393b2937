"""An uploaded image as the model's input, decoded by the very function ``zoo predict`` uses for a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from datamodules.files import DatasetError
from datamodules.files_predict import read_image
from datamodules.image_cache import BadImage, decode


class BadUpload(ValueError):
    """An upload that is not an image the model can take; the message is the one line the client reads."""


def read(path: Path, spec: dict) -> torch.Tensor:
    """uint8 C x S x S from an image file, as the contract's ``decode`` says (``zoo predict``'s reader)."""
    how = spec["decode"]
    if how["method"] == "center_crop":  # ImageFolder's decoding: EXIF, shorter side, center crop
        return torch.from_numpy(decode(path, how["size"], how["channels"]).copy())
    return read_image(path, how["channels"], how["size"])


def from_bytes(data: bytes, spec: dict, name: str = "") -> torch.Tensor:
    """The upload through a temporary file (the readers take paths, so the decoding is byte for byte theirs)."""
    if not data:
        raise BadUpload("the upload is empty: send an image file (curl -F image=@photo.jpg ...)")
    fd, tmp = tempfile.mkstemp(prefix="zoo-serve-", suffix=Path(name).suffix[:16])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return read(Path(tmp), spec)
    except (DatasetError, BadImage) as e:
        reason = str(e).split(": not a readable image ", 1)[-1] if isinstance(e, DatasetError) else str(e)
        reason = reason.strip("()").replace(f" '{tmp}'", "").replace(tmp, "the upload")
        raise BadUpload(f"{name or 'the upload'} is not an image the server can read ({reason})") from None
    finally:
        os.unlink(tmp)
