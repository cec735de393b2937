"""An uploaded image as the model's input, decoded by the very function ``zoo predict`` uses for a file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np

from datamodules.files import DatasetError
from datamodules.files_predict import image_array
from datamodules.image_cache import BadImage, decode
from zoo.commands.serve import MAX_MEGAPIXELS


class BadUpload(ValueError):
    """An upload that is not an image the model can take; the message is the one line the client reads."""

    status = 400


class TooManyPixels(BadUpload):
    """An image over the server's pixel budget, known from its header before anything is decoded."""

    status = 413



def check_pixels(data: bytes, name: str, max_megapixels: float) -> None:
    """Refuse an image whose header says it is over ``max_megapixels``: Pillow reads the size without decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return  # not an image, or a broken one: the decoder says what is wrong with it
    if width * height > max_megapixels * 1e6:
        raise TooManyPixels(f"{name or 'the upload'} is {width} x {height} = {width * height / 1e6:.1f} megapixels, "
                            f"over this server's budget of {max_megapixels:g} (zoo serve --max_megapixels); send "
                            "a smaller image")


def read(source: Path | BinaryIO, spec: dict) -> np.ndarray:
    """uint8 C x S x S from an image file, as the contract's ``decode`` says (``zoo predict``'s readers)."""
    how = spec["decode"]
    if how["method"] == "center_crop":  # ImageFolder's decoding: EXIF, shorter side, center crop
        return np.ascontiguousarray(decode(source, how["size"], how["channels"]))
    return image_array(source, how["channels"], how["size"])


def from_bytes(data: bytes, spec: dict, name: str = "", max_megapixels: float = MAX_MEGAPIXELS) -> np.ndarray:
    """The upload decoded from memory by the same readers ``zoo predict`` gives a path: nothing touches the disk,
    so a full or unwritable temporary folder cannot fail a request. An image over the pixel budget is refused
    from its header, before it is decoded."""
    if not data:
        raise BadUpload("the upload is empty: send an image file (curl -F image=@photo.jpg ...)")
    check_pixels(data, name, max_megapixels)
    try:
        return read(io.BytesIO(data), spec)
    except (DatasetError, BadImage) as e:
        reason = str(e).split(": not a readable image ", 1)[-1] if isinstance(e, DatasetError) else str(e)
        raise BadUpload(f"{name or 'the upload'} is not an image the server can read ({reason.strip('()')})") from None
