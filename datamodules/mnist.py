"""MNIST (LeCun et al., 1998) and Fashion-MNIST (Xiao et al., 2017) from their IDX files."""

from __future__ import annotations

import torch

from datamodules.files import DatasetError, FileSet, ensure_files
from datamodules.idx import read_idx
from datamodules.image import ImageDataModule
from zoo_common import register_datamodule


class IDXImageDataModule(ImageDataModule):
    """MNIST-style data: four IDX files, md5-verified, found or fetched by ``prepare_data``."""

    files: FileSet

    def prepare_data(self) -> None:
        # Runs once per node before setup: the only place that downloads or copies files.
        if self.needs_files():
            ensure_files(self.files, self.root, download=self.download)

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = "train" if train else "t10k"
        raw = self.files.raw_dir(self.root)
        paths = [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]
        for path in paths:
            if not path.exists():
                raise DatasetError(f"{path} not found: prepare_data() fetches it; call it before setup()")
        images, labels = (read_idx(p) for p in paths)
        if len(images) != len(labels):
            raise DatasetError(f"{paths[0]} holds {len(images)} images but {paths[1]} {len(labels)} labels")
        return images.unsqueeze(1).contiguous(), labels.long()  # N x 1 x 28 x 28


@register_datamodule
class FashionMNIST(IDXImageDataModule):
    """Fashion-MNIST: 60k/10k 28x28 grayscale images of 10 kinds of clothing."""

    classes = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
    mean, std = (0.2860,), (0.3530,)
    files = FileSet(
        name="FashionMNIST",
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        local_copies=("/usr/share/datasets/fashion-mnist",),
        extra_help="on Debian: apt-get install dataset-fashion-mnist (files land in /usr/share/datasets/fashion-mnist)",
    )


@register_datamodule
class MNIST(IDXImageDataModule):
    """MNIST: 60k/10k 28x28 grayscale handwritten digits."""

    classes = tuple(str(d) for d in range(10))
    mean, std = (0.1307,), (0.3081,)
    files = FileSet(
        name="MNIST",
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    )
