"""Reading image files to predict on: decoded as the training cache decodes them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from datamodules import ImageFolder
from tests.helpers import two_tint_photos


def test_predict_decodes_a_photo_as_the_training_cache_does(tmp_path):
    """Broken variant: ``zoo predict`` resizes the whole photo instead of the cache's shorter side + center crop."""
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, :10] = wide[:, 20:] = (255, 0, 0)  # red sides
    wide[:, 10:20] = (0, 0, 255)  # a blue center square: all the center crop keeps
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    root = two_tint_photos(tmp_path / "photos")
    dm = ImageFolder(str(root), image_size=8, crop_size=8, cache_dir=str(tmp_path / "cache"))
    image = dm.read_image_file(path)
    assert image.shape == (3, 8, 8)
    # blue only (bilinear filtering takes a little red in at the crop's edges)
    assert image[2].min() >= 200 and image[0].max() <= 60
