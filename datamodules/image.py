"""Image classification DataModules held in memory as uint8 tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from datamodules import curation
from datamodules.augment import Augmentation
from datamodules.base import InMemoryDataModule
from datamodules.files import DatasetError
from datamodules.files_predict import list_images, read_image, read_images
from datamodules.resumable import batch_seed
from zoo_common import ConfigError


class ImageDataModule(InMemoryDataModule):
    """Train/validation split of the official training set, the official test set for ``test``.

    Subclasses set the class attributes and implement ``prepare_data`` and
    ``load(train)``. Batches leave the loader as uint8 ``N x C x H x W`` and
    become float in [0, 1] (optionally normalised) on their device.
    """

    classes: tuple[str, ...] = ()
    in_channels: int = 1
    native_size: int = 28
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 256,
        val_size: int = 5000,
        seed: int = 0,
        normalize: bool = False,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        resize: int | None = None,
        download: bool = True,
        crop_padding: int = 0,
        hflip: float = 0.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
        predict_path: str | None = None,
        exclude: str | None = None,
        label_noise: float = 0.0,
        label_noise_seed: int = 0,
        folds: int = 0,
        fold: int = 0,
    ) -> None:
        """
        Args:
            root: folder holding ``<Name>/raw/`` (torchvision's layout); files are fetched there if missing.
            batch_size: examples per batch (per process under DDP).
            val_size: examples of the official training set held out for validation (seeded split).
            seed: seed of the train/validation split and of the shuffling.
            normalize: subtract the dataset's mean and divide by its std (the book does not).
            mean: per-channel mean to normalise with instead of the dataset's (e.g. pretrained weights' own).
            std: per-channel std to normalise with instead of the dataset's.
            resize: side in pixels that batches are resized to on their device (bilinear), e.g. 224 for NiN.
            download: try the dataset's mirrors when files are missing.
            crop_padding: training only: zero-pad by this many pixels, then crop back at a random place (0: off).
            hflip: training only: probability of a horizontal flip (0: off).
            brightness: training only: brightness factor drawn from [max(0, 1 - b), 1 + b] (0: off).
            contrast: training only: contrast factor drawn from [max(0, 1 - c), 1 + c] (0: off).
            saturation: training only: saturation factor drawn from [max(0, 1 - s), 1 + s] (0: off; no effect on gray).
            hue: training only: hue shift drawn from [-h, h], h <= 0.5 (0: off; no effect on gray).
            predict_path: ``zoo predict`` only: an image file or a folder of images to classify (PNG, JPEG, any
                size, gray or color) instead of the test set; the results go to predictions.csv.
            exclude: a CSV file whose ``index`` column (positions in the official training set; an image
                folder's ``file`` column too) names training examples to leave out, e.g. a filtered
                label_issues.csv of ``zoo analyze``. Validation keeps its examples, so runs stay comparable.
            label_noise: flip this fraction of the training labels to another class at random (validation
                and test stay clean); the flipped examples are written to label_noise.csv in the run's folder.
            label_noise_seed: seed of the flipped examples and their new labels.
            folds: split the training examples into this many folds (seeded) and hold ``fold`` out; used by
                ``zoo analyze --folds`` for out-of-sample predictions (0: none).
            fold: the fold held out of training, 0 to folds - 1.
        """
        super().__init__(batch_size=batch_size, seed=seed)
        self.save_hyperparameters()
        if resize is not None and resize < 1:
            raise ConfigError(f"resize={resize}: give a side in pixels >= 1")
        self.root = root
        self.val_size = val_size
        self.normalize = normalize
        for name, value in (("mean", mean), ("std", std)):
            if value is not None:
                if len(value) != self.in_channels:
                    raise ConfigError(f"{name}={tuple(value)} needs one value per channel ({self.in_channels})")
                setattr(self, name, tuple(float(v) for v in value))
        self.resize = resize
        self.augmentation = Augmentation(crop_padding=crop_padding, hflip=hflip, brightness=brightness,
                                         contrast=contrast, saturation=saturation, hue=hue)
        self.download = download
        self.train_set = self.val_set = self.test_set = None
        self.predict_path = predict_path
        curation.check_options(label_noise, folds, fold)
        self.exclude, self.label_noise, self.label_noise_seed = exclude, label_noise, label_noise_seed
        self.folds, self.fold = folds, fold
        #: each split's examples as positions in their source (the official training or test set, a folder's
        #: listing), and the source's file names where it has files: what `zoo analyze` names examples by
        self.index: dict[str, torch.Tensor] = {}
        self.example_files: dict[str, list[str] | None] = {}
        self.flipped: dict[str, torch.Tensor] = {}  # label noise: positions, clean and noisy labels
        self.excluded = 0
        self.held_out = None  # the fold held out: (images, labels), positions in self.index["held_out"]
        self.predict_files: list = []
        self.predict_errors: dict = {}
        self.normalization_tensors: dict = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> int:
        return self.resize or self.native_size

    @property
    def input_shape(self) -> tuple[int, ...]:
        """What one example looks like to the model."""
        return (self.in_channels, self.input_size, self.input_size)

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (uint8 images N x C x H x W, int64 labels N) of the official train or test set."""
        raise NotImplementedError

    def needs_files(self) -> bool:
        """Whether this command reads the dataset: classifying the user's own images (``zoo predict
        --data.predict_path``) needs the class names, not the dataset's files."""
        return not (self.trainer is not None and self.trainer.predicting and self.predict_path is not None)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self.load(train=True)
            if not 0 <= self.val_size < len(labels):
                raise DatasetError(f"val_size={self.val_size} must be in [0, {len(labels)}) for {type(self).__name__}")
            # the same permutation on every rank: the split depends on the seed only
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
            val, train = order[: self.val_size], order[self.val_size :]
            self.val_set = (images[val], labels[val])
            self.index["val"] = val
            self.example_files["train"] = self.example_files["val"] = None
            self.curate(images, labels, train, "the official training set")
            rank_zero_info(f"{type(self).__name__}: {len(self.train_set[1])} training and {len(val)} validation "
                           f"examples{self.curation_note()}")
        if stage == "predict" and self.predict_path is not None:
            return  # files are read by predict_dataloader
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self.load(train=False)
            self.index["test"], self.example_files["test"] = torch.arange(len(self.test_set[1])), None

    def curate(self, images, labels: torch.Tensor, positions: torch.Tensor, source: str) -> None:
        """The training set: ``images`` and ``labels`` of the whole source, its examples at ``positions``; labels
        flipped (label_noise), then the listed examples left out (exclude), then a fold held out (folds)."""
        train_labels = labels[positions]
        if self.label_noise:
            noisy, flipped = curation.plant_noise(train_labels, self.label_noise, self.label_noise_seed,
                                                  self.num_classes)
            self.flipped = {"index": positions[flipped], "clean": train_labels[flipped], "noisy": noisy[flipped]}
            train_labels = noisy
        keep = torch.ones(len(positions), dtype=torch.bool)
        if self.exclude:
            listed = curation.read_exclude(self.exclude, len(labels), self.example_files.get("train"), source)
            keep &= ~torch.isin(positions, listed)
            self.excluded = int((~keep).sum())
        if self.folds:
            kept = torch.nonzero(keep).flatten()
            held = kept[curation.fold_ids(len(kept), self.folds, self.seed) == self.fold]
            keep[held] = False
            self.index["held_out"] = positions[held]
            self.held_out = (curation.take(images, positions[held]), train_labels[held])
        self.index["train"] = positions[keep]
        self.train_set = (curation.take(images, positions[keep]), train_labels[keep])

    def curation_note(self) -> str:
        notes = []
        if self.flipped:
            notes.append(f"{len(self.flipped['index'])} training labels flipped (label_noise {self.label_noise})")
        if self.exclude:
            notes.append(f"{self.excluded} left out by {self.exclude}")
        if self.folds:
            notes.append(f"fold {self.fold} of {self.folds} held out ({len(self.index['held_out'])} examples)")
        return "; " + "; ".join(notes) if notes else ""

    def train_dataloader(self):
        return self._loader(self.train_set, train=True)

    def val_dataloader(self):
        return self._loader(self.val_set, train=False)

    def test_dataloader(self):
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self):
        """Batches of (images, index): the index names each prediction's input, whichever process made it."""
        if self.predict_path is None:
            images = self.test_set[0]
        else:
            images, self.predict_files, self.predict_errors = read_images(
                list_images(self.predict_path), self.in_channels, self.native_size, self.read_image_file
            )
            if not self.predict_files:
                raise DatasetError(f"--data.predict_path {self.predict_path}: none of its files is a readable image")
        return self._loader((images, torch.arange(len(images))), train=False)

    def read_image_file(self, path) -> torch.Tensor:
        """One image file as a uint8 example of this dataset (``zoo predict``): gray or RGB, at the native size."""
        return read_image(path, self.in_channels, self.native_size)

    def transform(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 N x C x H x W -> float in [0, 1] -> resize -> augment (``train`` only) -> normalise, on x's device.

        ``generator`` (on x's device) draws the augmentation's parameters; None: the global RNG.
        """
        if x.dtype != torch.uint8:
            raise TypeError(f"{type(self).__name__}.transform takes uint8 image batches, got {x.dtype}")
        resize = self.resize and self.resize != x.shape[-1]
        params = self.augmentation.sample(len(x), x.device, generator) if train and self.augmentation.active else {}
        if params and not resize:
            x = self.augmentation.geometric(x, params)  # on uint8: a quarter of the memory traffic
        x = x.float().div_(255)
        if resize:
            # antialias matters only when shrinking, where it matches torchvision's Resize on tensors
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=True)
            x = self.augmentation.geometric(x, params) if params else x
        x = self.augmentation.color_(x, params) if params else x  # x is this function's own tensor
        if self.normalize:  # in place: x is this function's own tensor by now
            mean, std = self.normalization(x.device)
            x.sub_(mean).div_(std)
        return x

    def normalization(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as 1 x C x 1 x 1 tensors on ``device``, made once: a copy to a GPU waits for the GPU."""
        key = (str(device), self.mean, self.std)
        if key not in self.normalization_tensors:
            self.normalization_tensors[key] = tuple(
                torch.tensor(v, device=device).view(1, -1, 1, 1) for v in (self.mean, self.std)
            )
        return self.normalization_tensors[key]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # runs on the batch's device, so on a GPU the augmentation does too
        if isinstance(batch, torch.Tensor):  # images alone: the model summary's example input
            return self.transform(batch)
        x, *rest = batch
        trainer = self.trainer
        training = trainer is not None and trainer.training
        generator = None
        if training and self.augmentation.active:
            # seeded by the batch's place in the run, so a resumed run augments each batch as the original did
            # (the batch's number in its epoch: this hook runs before Lightning counts the batch as ready)
            batch = trainer.fit_loop.epoch_loop.batch_progress.current.ready
            seed = batch_seed(self.seed, trainer.current_epoch, batch, trainer.global_rank)
            generator = torch.Generator(device=x.device).manual_seed(seed)
        return (self.transform(x, train=training, generator=generator), *rest)


def with_defaults_of(summary: str, *names: str) -> str:
    """A subclass's ``__init__`` docstring for the options it only gives other defaults: ``summary``, then each
    option described as ``ImageDataModule`` describes it (written once, there; ``--help`` reads this)."""
    doc = ImageDataModule.__init__.__doc__ or ""
    described: dict[str, list[str]] = {}
    current = None
    for line in doc.split("Args:", 1)[-1].splitlines():
        name, colon, text = line.strip().partition(":")
        if colon and line.startswith(" " * 12) and not line.startswith(" " * 13) and name.isidentifier():
            current = name
            described[current] = [text.strip()]
        elif current and line.strip():
            described[current].append(line.strip())
    missing = [n for n in names if n not in described]
    if missing:
        raise AssertionError(f"ImageDataModule does not describe {missing}")
    args = "\n".join(f"            {n}: {' '.join(described[n])}" for n in names)
    return f"{summary}\n\n        Args:\n{args}\n        "
