"""The decoded-image cache: what it is keyed on."""

from __future__ import annotations

import torch

from datamodules import ImageFolder
from tests.helpers import two_tint_photos


def test_a_cache_of_another_image_size_is_not_reused(tmp_path):
    """Broken variant: the cache key leaves out ``image_size`` (a stale cache of another size is loaded)."""
    root = two_tint_photos(tmp_path / "photos")
    for size in (8, 12):
        dm = ImageFolder(str(root), image_size=size, crop_size=size, val_size=0, cache_dir=str(tmp_path / "cache"))
        dm.setup("fit")
        assert tuple(dm.train_set[0][torch.arange(2)].shape) == (2, 3, size, size)
