"""zoo serve's upload decoding: the bytes give the very tensor zoo predict reads from the same file, and a request
does not need the disk (a full or unwritable temporary folder)."""

from __future__ import annotations

import io
import struct
import tempfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.files_predict import read_image
from datamodules.image_cache import decode
from zoo.commands.serve import decode as serve_decode
from zoo.commands.serve.decode import BadUpload, TooManyPixels, from_bytes

SPECS = [
    {"decode": {"method": "center_crop", "size": 32, "channels": 3}},  # ImageFolder / CIFAR-10 decoding
    {"decode": {"method": "resize", "size": 28, "channels": 1}},  # MNIST-style decoding
]


def encoded(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (47, 71, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("spec", SPECS, ids=["center_crop", "resize"])
@pytest.mark.parametrize("fmt,mode", [("JPEG", "RGB"), ("PNG", "L"), ("PNG", "RGBA")])
def test_upload_equals_the_file_read_by_zoo_predict(tmp_path, monkeypatch, spec, fmt, mode):
    data = encoded(fmt, mode)
    path = tmp_path / f"photo.{fmt.lower()}"
    path.write_bytes(data)
    # what training and zoo predict make of the file, by their own functions (not the server's `read`)
    how = spec["decode"]
    expected = (torch.from_numpy(decode(path, how["size"], how["channels"]).copy()) if how["method"] == "center_crop"
                else read_image(path, how["channels"], how["size"]))
    # no temporary folder to write to: a request must not need one
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    got = from_bytes(data, spec, path.name)
    size, channels = spec["decode"]["size"], spec["decode"]["channels"]
    assert got.dtype == np.uint8 and got.shape == (channels, size, size)
    assert torch.equal(torch.from_numpy(got), expected)


@pytest.mark.parametrize("spec", SPECS, ids=["center_crop", "resize"])
@pytest.mark.parametrize("data,why", [(b"", "empty"), (b"plain text", "not an image Pillow can read"),
                                      (encoded("PNG")[:120], "image")])
def test_bad_uploads_get_one_line_naming_the_file(spec, data, why):
    with pytest.raises(BadUpload) as caught:
        from_bytes(data, spec, "cat.png")
    message = str(caught.value)
    assert why in message and "\n" not in message and "BytesIO" not in message
    assert data == b"" or message.startswith("cat.png is not an image the server can read (")


def png_16bit_gray(width: int, height: int, rows: int | None = None) -> bytes:
    """A 16-bit grayscale PNG of zeros, written chunk by chunk (rows=None: all of them, a valid file; else only
    that many rows of pixel data, the header still saying the whole size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + 2 * width)  # filter byte 0, then two bytes a pixel
    pixels = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)  # 16-bit gray, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_an_image_over_the_pixel_budget_is_refused_from_its_header(monkeypatch):
    """The 9000 x 9000 16-bit PNG that took 22 s and 1.6 GB to decode: refused before any decoding."""
    data = png_16bit_gray(9000, 9000)
    assert len(data) < 300_000  # small on the wire: only the pixel budget catches it

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image over the budget")

    monkeypatch.setattr(serve_decode, "read", no_decoding)
    with pytest.raises(TooManyPixels) as caught:
        from_bytes(data, SPECS[0], "scan.png")
    assert caught.value.status == 413
    assert "scan.png is 9000 x 9000 = 81.0 megapixels" in str(caught.value) and "--max_megapixels" in str(caught.value)
    monkeypatch.undo()
    small = png_16bit_gray(300, 200)
    assert from_bytes(small, SPECS[1], "small.png", max_megapixels=0.06).shape == (1, 28, 28)
    with pytest.raises(TooManyPixels):
        from_bytes(small, SPECS[1], "small.png", max_megapixels=0.05)
