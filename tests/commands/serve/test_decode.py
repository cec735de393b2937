"""zoo serve's upload decoding: the bytes give the very tensor zoo predict reads from the same file, and a request
does not need the disk (a full or unwritable temporary folder)."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.commands.serve.decode import BadUpload, from_bytes, read

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
    expected = read(path, spec)
    # no temporary folder to write to: a request must not need one
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    got = from_bytes(data, spec, path.name)
    size, channels = spec["decode"]["size"], spec["decode"]["channels"]
    assert got.dtype == torch.uint8 and got.shape == (channels, size, size)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("spec", SPECS, ids=["center_crop", "resize"])
@pytest.mark.parametrize("data,why", [(b"", "empty"), (b"plain text", "not an image Pillow can read"),
                                      (encoded("PNG")[:120], "image")])
def test_bad_uploads_get_one_line_naming_the_file(spec, data, why):
    with pytest.raises(BadUpload) as caught:
        from_bytes(data, spec, "cat.png")
    message = str(caught.value)
    assert why in message and "\n" not in message and "BytesIO" not in message
    assert data == b"" or message.startswith("cat.png is not an image the server can read (")
