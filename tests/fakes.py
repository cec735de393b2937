"""Importable fakes for tests that run the ``zoo`` command in other processes (``--data tests.fakes.FakeFashionMNIST``)."""

from __future__ import annotations

import dataclasses
import hashlib

from datamodules import FashionMNIST
from tests.conftest import idx_bytes, mnist_like_arrays


class FakeFashionMNIST(FashionMNIST):
    """Fashion-MNIST's code on the small fake files of ``tests.conftest.make_mnist_like`` (defaults)."""

    files = dataclasses.replace(
        FashionMNIST.files,
        md5={name: hashlib.md5(idx_bytes(a)).hexdigest() for name, a in mnist_like_arrays().items()},
        mirrors=(),
        local_copies=(),
    )


class FiveClassFashionMNIST(FakeFashionMNIST):
    """The fake files with labels folded onto five classes: data whose class count differs from the rest."""

    classes = FakeFashionMNIST.classes[:5]

    def load(self, train: bool):
        images, labels = super().load(train)
        return images, labels % 5
