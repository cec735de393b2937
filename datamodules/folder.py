"""``ImageFolder``: the user's own images, in torchvision's ``ImageFolder`` layout, decoded once into a cache.

``root/train/<class>/<image files>``, optionally ``root/val/...`` and
``root/test/...`` with the same class folders (the book's hotdog dataset has
this layout). Every image is decoded once, in ``prepare_data``, into a
memory-mapped uint8 cache (``datamodules.image_cache``); batches are index
slices of it, cropped, augmented and normalised on their device like the
built-in datasets'.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from datamodules.augment import RandomResizedCrop, center_crop
from datamodules.curation import Rows, take
from datamodules.files import DatasetError
from datamodules.image import ImageDataModule
from datamodules.image_cache import (
    BadImage,
    CachedSplit,
    build_cache,
    cache_key,
    check_cache_dir,
    class_folders,
    decode,
    list_split,
    load_cache,
)
from datamodules.listing import printable, skipped_text
from zoo_common import ConfigError, register_datamodule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/d2l-zoo/images`` (``~/.cache/d2l-zoo/images``): writable where the data may not be."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "d2l-zoo" / "images"


def stratified_split(labels: torch.Tensor, val_size: int | float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) positions: each class gives its share of ``val_size`` (a count, or a fraction when < 1), seeded."""
    n = len(labels)
    total = int(round(val_size * n)) if val_size < 1 else int(val_size)
    if not 0 <= total < n:
        raise ConfigError(f"val_size={val_size}: give a count in [0, {n}) or a fraction in [0, 1) of the {n} images")
    counts = torch.bincount(labels)
    exact = counts.double() * total / n
    quota = exact.floor().long()
    # the remaining places go to the classes with the largest remainders (ties: the lower label)
    rest = total - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True, stable=True)[:rest]] += 1
    g = torch.Generator().manual_seed(seed)
    val, train = [], []
    for c in range(len(counts)):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        val.append(members[: quota[c]])
        train.append(members[quota[c] :])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


@register_datamodule
class ImageFolder(ImageDataModule):
    """Your own images: root/train/<class>/*.jpg (optional val/, test/); decoded once into a uint8 cache."""

    in_channels = 3
    native_size = 256
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        root: str = "images",
        classes: list[str] | None = None,
        image_size: int = 256,
        crop_size: int = 224,
        channels: int = 3,
        batch_size: int = 64,
        val_size: int | float = 0.1,
        train_dev_size: int | float = 0,
        normalize: bool = True,
        random_resized_crop: bool = True,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        cache_dir: str | None = None,
        workers: int = 0,
        strict: bool = False,
        **kwargs,
    ) -> None:
        """The options of every image DataModule (``ImageDataModule``, where the others are described: seed,
        mean, std, crop_padding, brightness, contrast, saturation, hue, predict_path, exclude, label_noise,
        label_noise_seed, folds, fold), and a folder's own:

        Args:
            root: folder holding train/<class>/<images>, and optionally val/ and test/ with the same class folders.
            classes: the class folders to use, in this label order (default: all of train/'s, sorted).
            image_size: side of the cached square images: shorter side resized to it, then a center crop.
            crop_size: side of the model's input: training takes random resized crops (or a center crop),
                evaluation the center crop.
            channels: 3 (RGB) or 1 (gray); every image is converted.
            batch_size: examples per batch (per process under DDP).
            val_size: without a val/ folder, the part of train/ held out for validation, stratified by class
                and seeded: a count of images, or a fraction when below 1.
            train_dev_size: with a val/ folder (a dev set that may differ from the training images), the part
                of train/ held out as a train-dev set, stratified and seeded (a count, or a fraction below 1):
                `zoo analyze` then tells variance (train-dev vs training error) from mismatch (dev vs train-dev).
            normalize: subtract mean and divide by std (default: ImageNet's statistics).
            random_resized_crop: training: torchvision's RandomResizedCrop to crop_size (else the center crop).
                Also the better default for 32 px photos, measured against pad-and-crop (benchmarks/RESULTS.md,
                "Small photos"); for that one: --data.random_resized_crop false --data.crop_padding 4.
            scale: RandomResizedCrop's range of the crop's area, as a fraction of the image.
            ratio: RandomResizedCrop's range of the crop's aspect ratio (width / height).
            hflip: training only: probability of a horizontal flip (0: off).
            cache_dir: where the decoded images are kept (default: ~/.cache/d2l-zoo/images); the data folder
                itself may be read-only.
            workers: threads that decode images while the cache is built (0: one per CPU).
            strict: a file that cannot be decoded is an error instead of being left out with a warning.
        """
        if channels not in (1, 3):
            raise ConfigError(f"channels={channels}: give 3 (RGB) or 1 (gray)")
        if image_size < 1 or not 1 <= crop_size <= image_size:
            raise ConfigError(f"image_size={image_size}, crop_size={crop_size}: need 1 <= crop_size <= image_size")
        for name, size in (("val_size", val_size), ("train_dev_size", train_dev_size)):
            if size < 0 or (size >= 1 and size != int(size)):
                raise ConfigError(f"{name}={size}: give a count of images or a fraction in [0, 1)")
        # what the class attributes say for the built-in datasets, per instance here
        self.in_channels = channels
        self.native_size = image_size
        if channels == 1:
            self.mean, self.std = (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
        super().__init__(root=root, batch_size=batch_size, val_size=val_size, normalize=normalize, hflip=hflip,
                         resize=None, download=False, **kwargs)
        # the base class saved its own arguments too; keep exactly this constructor's, to re-create it from a checkpoint
        for name in ("resize", "download"):
            self.hparams.pop(name, None)
        self.root_path = Path(root).expanduser()
        self.image_size, self.crop_size, self.strict, self.workers = image_size, crop_size, strict, workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.rrc = RandomResizedCrop(crop_size, scale, ratio) if random_resized_crop else None
        self.left_out: dict[str, str] = {}
        self.train_dev_size = train_dev_size
        self.train_dev_set = None
        self.listing: dict[str, tuple[list[str], torch.Tensor]] = {}
        self.classes = self._resolve_classes(classes)
        # the resolved list travels in the checkpoint's hyperparameters: `zoo test/predict` name the classes from it
        self.hparams["classes"] = list(self.classes)

    # --- the folder ------------------------------------------------------------------------------

    def _layout_error(self, problem: str) -> DatasetError:
        return DatasetError(f"{problem}; expected {self.root_path}/train/<class>/<images> "
                            "(and optionally val/ and test/ with the same class folders)")

    def _train_classes(self) -> list[str]:
        train = self.root_path / "train"
        if not train.is_dir():
            what = "no such folder" if not self.root_path.is_dir() else "no train/ folder in it"
            raise self._layout_error(f"--data.root {self.root_path}: {what}")
        skipped: dict[str, str] = {}
        found = class_folders(train, skipped)
        self._skip(skipped)
        if not found:
            raise self._layout_error(f"{train} holds no class folders")
        return found

    def _resolve_classes(self, classes: list[str] | None) -> tuple[str, ...]:
        if classes is not None and not (self.root_path / "train").is_dir():
            return tuple(classes)  # e.g. `zoo predict` from a checkpoint, the training folder elsewhere
        found = self._train_classes()
        if (classes or found) and len(classes or found) < 2:
            # one class trains to a validation accuracy of 1.0 and learns nothing: refused, not warned
            raise ConfigError(f"{self.root_path / 'train'}: a classifier needs two classes or more, and "
                              f"{'--data.classes names' if classes else 'the folder holds'} only {list(classes or found)}; "
                              "add a folder of images for each other class")
        if classes is None:
            return tuple(found)
        unknown = [c for c in classes if c not in found]
        if unknown or len(set(classes)) != len(classes) or not classes:
            raise ConfigError(f"--data.classes {list(classes)}: each must be one of the class folders of "
                              f"{self.root_path / 'train'}, once: {found}")
        return tuple(classes)

    def _skip(self, skipped: dict[str, str]) -> None:
        """Entries of the folder that cannot be used (link loops, names that are not UTF-8): named once, left out."""
        for path, reason in skipped.items():
            if path not in self.left_out:
                rank_zero_warn(skipped_text(path, reason))
                self.left_out[path] = reason

    def _split_dir(self, split: str) -> Path | None:
        folder = self.root_path / split
        if split == "train" or not folder.is_dir():
            return folder if split == "train" else None
        # the classes are train/'s, or those a checkpoint or a card names where there is no train/ (`zoo test`
        # on a folder with only test/)
        have = set(class_folders(folder))
        want = set(self.classes if not (self.root_path / "train").is_dir() else self._train_classes())
        if have != want:
            missing, extra = sorted(want - have), sorted(have - want)
            raise self._layout_error(f"{folder} has other class folders than train/ (missing {missing}, extra {extra})")
        return folder

    @property
    def cache_folder(self) -> Path:
        """One sub-folder per data folder, named for it: several datasets can share ``cache_dir``."""
        where = str(self.root_path.resolve())
        return self.cache_dir / f"{self.root_path.resolve().name}-{hashlib.sha256(where.encode()).hexdigest()[:10]}"

    def _cached(self, split: str, build: bool) -> CachedSplit | None:
        folder = self._split_dir(split)
        if folder is None:
            return None
        if split == "train" or (self.root_path / "train").is_dir():
            self._train_classes()  # the layout's errors before any listing
        skipped: dict[str, str] = {}
        entries = list_split(folder, list(self.classes), skipped)
        self._skip(skipped)
        key = cache_key(entries, self.root_path, {"size": self.image_size, "channels": self.in_channels})
        cached = load_cache(self.cache_folder, key)
        if cached is None and build:
            check_cache_dir(self.cache_folder, len(entries) * self.in_channels * self.image_size**2)
            rank_zero_info(f"ImageFolder: decoding {len(entries)} images of {folder} into {self.cache_folder} (once)")
            cached = build_cache(entries, self.root_path, self.cache_folder, key, self.image_size, self.in_channels,
                                 self.workers)
        return cached

    def prepare_data(self) -> None:
        # once per node (Lightning): every rank of the node then memory-maps the same files in setup
        if not self.needs_files():
            return
        evaluating = self.trainer is not None and (self.trainer.testing or self.trainer.predicting)
        for split in ("test",) if evaluating else SPLITS:  # `zoo test` reads test/ alone
            self._cached(split, build=True)

    # --- the splits ------------------------------------------------------------------------------

    def _load_split(self, split: str) -> tuple[Rows, torch.Tensor] | None:
        cached = self._cached(split, build=True)  # built here too when prepare_data was not called
        if cached is None:
            return None
        if cached.bad:
            for name, reason in cached.bad.items():
                if self.strict:
                    raise DatasetError(f"{printable(self.root_path / name)}: {reason} ({len(cached.bad)} such file(s) in "
                                       f"{split}/; fix or remove them, or leave --data.strict false to skip them)")
                rank_zero_warn(skipped_text(self.root_path / name, reason))
            self.left_out.update({str(self.root_path / n): r for n, r in cached.bad.items()})
            rank_zero_warn(f"ImageFolder: {len(cached.bad)} of {len(cached.files)} files in {split}/ left out "
                           "(named above); --data.strict true makes this an error")
        images = torch.from_numpy(cached.images)  # memory-mapped: pages are read when a batch needs them
        labels = torch.from_numpy(cached.labels)
        rows = torch.nonzero(labels >= 0).flatten()
        self.listing[split] = (cached.files, labels)  # every listed file, by its position; -1: left out
        return Rows(images, rows), labels[rows]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self._load_split("train")
            files, all_labels = self.listing["train"]
            val = self._load_split("val")
            train_pos = torch.arange(len(labels))
            self.example_files["train"] = files  # train-dev and a held-out fold come from train/ too
            if val is None:
                train_pos, val_pos = stratified_split(labels, self.val_size, self.seed)
                self.val_set = (take(images, val_pos), labels[val_pos])
                self.index["val"], self.example_files["val"] = images.rows[val_pos], files
            else:
                self.val_set, self.index["val"], self.example_files["val"] = val, val[0].rows, self.listing["val"][0]
                if self.train_dev_size:  # a train-dev part of train/: variance and mismatch told apart
                    train_pos, dev_pos = stratified_split(labels, self.train_dev_size, self.seed)
                    self.train_dev_set = (take(images, dev_pos), labels[dev_pos])
                    self.index["train_dev"] = images.rows[dev_pos]
            self.curate(Rows(images.tensor, torch.arange(len(all_labels))), all_labels, images.rows[train_pos],
                        f"{self.root_path / 'train'}")
            dev = f", {len(self.train_dev_set[1])} train-dev" if self.train_dev_set is not None else ""
            rank_zero_info(f"ImageFolder: {len(self.train_set[1])} training{dev} and {len(self.val_set[1])} validation "
                           f"images of {len(self.classes)} classes {list(self.classes)}"
                           + (f"; {len(self.left_out)} file(s) left out" if self.left_out else "") + self.curation_note())
        if stage == "predict" and self.predict_path is not None:
            return
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._load_split("test")
            if self.test_set is not None:
                self.index["test"], self.example_files["test"] = self.test_set[0].rows, self.listing["test"][0]
            if self.test_set is None and stage is not None:
                command = getattr(stage, "value", stage)  # Lightning passes its TrainerFn ("test", "predict")
                raise DatasetError(f"{self.root_path / 'test'} not found: `zoo {command}` needs a test split laid out "
                                   f"as {self.root_path}/test/<class>/<images>, like train/")

    # --- batches ---------------------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        return self.crop_size

    def transform(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random resized crop (training) or center crop to ``crop_size`` on uint8, then as every image DataModule.

        ``generator`` draws the crop boxes and then the augmentation, so a resumed run crops each batch as before.
        """
        if tuple(x.shape[-2:]) != (self.crop_size, self.crop_size):
            if train and self.rrc is not None:
                x = self.rrc(x, generator)
            else:
                x = center_crop(x, self.crop_size).contiguous()
        return super().transform(x, train, generator)

    def read_image_file(self, path) -> torch.Tensor:
        """A photo to predict, decoded as the cache decodes training images (EXIF, shorter side, center crop)."""
        try:
            return torch.from_numpy(decode(Path(path), self.image_size, self.in_channels).copy())
        except BadImage as e:
            raise DatasetError(f"{printable(path)}: not a readable image ({e})") from None

    # the resolved classes also travel in the checkpoint's DataModule state: a changed folder is caught on loading
    def state_dict(self) -> dict:
        return {"classes": list(self.classes)}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = list(state_dict.get("classes", self.classes))
        if saved != list(self.classes):
            raise DatasetError(f"the checkpoint was trained on the classes {saved}, but the data now has "
                               f"{list(self.classes)}; pass --data.classes [{','.join(saved)}]")
