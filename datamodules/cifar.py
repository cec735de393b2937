"""CIFAR-10 (Krizhevsky, 2009) from torchvision's ``cifar-10-batches-py/`` pickles, augmented on the device."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from datamodules.files import Archive, DatasetError, ensure_archive
from datamodules.image import ImageDataModule, with_defaults_of
from zoo_common import register_datamodule

FILES = Archive(
    name="CIFAR10",
    folder="cifar-10-batches-py",
    md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
)

# what a CIFAR pickle may construct: numpy arrays and nothing else (a pickle can otherwise run any code)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")


def load_batch(path: Path) -> dict[str, object]:
    """One CIFAR pickle as a dict with str keys (the files were written by Python 2)."""
    try:
        with open(path, "rb") as f:
            data = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DatasetError(f"{path} is not a CIFAR batch: {e}") from e
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


@register_datamodule
class CIFAR10(ImageDataModule):
    """CIFAR-10: 50k/10k 32x32 colour images of 10 classes; random crop, flip and color jitter in training."""

    in_channels = 3
    native_size = 32
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    files: Archive = FILES

    def __init__(
        self,
        batch_size: int = 128,
        normalize: bool = True,
        crop_padding: int = 4,
        hflip: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 0.05,
        **kwargs,
    ) -> None:
        super().__init__(batch_size=batch_size, normalize=normalize, crop_padding=crop_padding, hflip=hflip,
                         brightness=brightness, contrast=contrast, saturation=saturation, hue=hue, **kwargs)

    __init__.__doc__ = with_defaults_of(
        "Every image DataModule's options (``ImageDataModule``); CIFAR-10's own defaults: batch 128, normalised\n"
        "        with its statistics, cropped after padding 4, flipped and colour-jittered.",
        "batch_size", "normalize", "crop_padding", "hflip", "brightness", "contrast", "saturation", "hue")

    def prepare_data(self) -> None:
        if self.needs_files():
            ensure_archive(self.files, self.root, download=self.download)

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        folder = Path(self.root) / self.files.folder
        meta = load_batch(folder / "batches.meta") if (folder / "batches.meta").exists() else {}
        if meta and tuple(meta.get("label_names", ())) != self.classes:
            raise DatasetError(f"{folder}/batches.meta names classes {meta.get('label_names')}, expected {self.classes}")
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        images, labels = [], []
        for name in names:
            path = folder / name
            if not path.exists():
                raise DatasetError(f"{path} not found: prepare_data() fetches it; call it before setup()")
            batch = load_batch(path)
            data = np.asarray(batch["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch["labels"]) != len(data):
                raise DatasetError(f"{path}: expected N x 3072 uint8 images and N labels, got {data.shape}")
            images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))  # rows are R, G, B planes
            labels.append(torch.as_tensor(batch["labels"], dtype=torch.long))
        return torch.cat(images), torch.cat(labels)
