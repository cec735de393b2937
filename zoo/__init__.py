"""The d2l model zoo: the classic models of *Dive into Deep Learning* as LightningModules.

- ``zoo.models``: the networks, one file per family, each a LightningModule over the training core;
- ``zoo.training``: the training core (the shared modules, fine-tuning, callbacks, the checkpoint writer);
- ``zoo.app`` and ``zoo.cli``: the ``zoo`` command.
"""

from zoo.models import (
    MLP,
    GoogLeNet,
    LeNet,
    LeNetBN,
    LeNetBNScratch,
    LinearRegression,
    MnistCNN,
    NiN,
    ResNet18,
    SoftmaxRegression,
)
from zoo.training.module import ClassificationModule, RegressionModule, ZooModule
from zoo_common import get_model, list_models, register_model

__all__ = [
    "MLP",
    "ClassificationModule",
    "GoogLeNet",
    "LeNet",
    "LeNetBN",
    "LeNetBNScratch",
    "LinearRegression",
    "MnistCNN",
    "NiN",
    "RegressionModule",
    "ResNet18",
    "SoftmaxRegression",
    "ZooModule",
    "get_model",
    "list_models",
    "register_model",
]
