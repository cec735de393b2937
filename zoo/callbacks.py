"""Callbacks the zoo adds to every run."""

from __future__ import annotations

import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import RichProgressBar
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from zoo.monitoring import tensorboard


def labelled_grid(images: torch.Tensor, captions: list[str], ncol: int = 8, cell: int = 64) -> torch.Tensor:
    """Images in [0, 1] (N x C x H x W) as one uint8 3 x H x W grid, each image with its caption above it."""
    n, c = images.shape[:2]
    images = images.expand(n, 3, *images.shape[2:]) if c == 1 else images[:, :3]
    scale = max(1, cell // images.shape[-1])  # small images get nearest-neighbour upscaling to stay legible
    images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest") if scale > 1 else images
    strip = 12
    tiles = []
    for image, caption in zip(images, captions):
        tile = Image.new("RGB", (image.shape[-1], image.shape[-2] + strip), "black")
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        tile.paste(Image.fromarray(pixels), (0, strip))
        ImageDraw.Draw(tile).text((1, 0), caption[: image.shape[-1] // 6], fill="white")
        tiles.append(torch.from_numpy(np.asarray(tile).copy()).permute(2, 0, 1))
    return make_grid(torch.stack(tiles), nrow=ncol, padding=2)


class InputGrid(L.Callback):
    """Once per run, a labelled grid of the first training batch as the model sees it (after augmentation).

    The batch is copied at the first step and drawn at the end of the epoch, so drawing does not stall training.
    """

    def __init__(self, max_images: int = 32) -> None:
        self.max_images = max_images
        self.done = False
        self._pending: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.done or not isinstance(batch, (tuple, list)) or batch[0].dim() != 4:
            return
        self.done = True
        if trainer.global_rank == 0 and tensorboard(trainer) is not None:
            x, y = batch[0][: self.max_images].detach().clone(), batch[1][: self.max_images].clone()
            self._pending = (x, y, trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        x, y, step = self._pending
        self._pending = None
        x, y = x.float().cpu(), y.cpu()
        dm = trainer.datamodule
        if getattr(dm, "normalize", False):  # undo the normalisation so the colours are the real ones
            x = x * torch.tensor(dm.std).view(1, -1, 1, 1) + torch.tensor(dm.mean).view(1, -1, 1, 1)
        names = getattr(dm, "classes", ())
        captions = [names[i] if i < len(names) else str(i) for i in y.tolist()]
        tensorboard(trainer).experiment.add_image("inputs/train", labelled_grid(x, captions), step)


class ProgressBar(RichProgressBar):
    """Lightning's Rich progress bar, redrawn at most ``max_per_second`` times a second in training.

    Redrawing on every step (Lightning's default) gathers and formats every
    logged metric each time: about 5% of a small model's step on a CPU.
    """

    def __init__(self, max_per_second: float = 4.0) -> None:
        super().__init__()
        self.min_interval = 1.0 / max_per_second
        self._last_draw = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if batch_idx + 1 >= trainer.num_training_batches or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
