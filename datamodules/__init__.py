"""The zoo's DataModules.

Importing the package imports nothing (``zoo serve`` of an ONNX file reads images with ``datamodules.files_predict``
and needs neither torch nor Lightning); a DataModule's name loads its module on first use
(``datamodules.FashionMNIST``, ``class_path: datamodules.FashionMNIST``), and ``datamodules.registry`` registers
them all.
"""

from __future__ import annotations

import importlib

_NAMES = {"CIFAR10": "datamodules.cifar", "DatasetError": "datamodules.files", "ImageFolder": "datamodules.folder",
          "MNIST": "datamodules.mnist", "FashionMNIST": "datamodules.mnist", "SyntheticPoints": "datamodules.synthetic"}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'datamodules' has no attribute {name!r}")
