"""The images the training core draws for TensorBoard."""

from __future__ import annotations

import torch


def test_confusion_image_draws_counts_and_class_accuracy():
    from zoo.training.images import confusion_image

    cm = torch.tensor([[8, 2], [1, 9]])
    image = confusion_image(cm, ["cat", "dog"])
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    # the correct-prediction cells are blue, the errors red, each as dark as its share of the row
    cell = image[:, 30 + 20, 8 + 7 * 3 + 20]  # row 0, column 0: 80% of the cats
    assert cell[2] == 255 and cell[0] < 80
