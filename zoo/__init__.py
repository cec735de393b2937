"""The d2l model zoo: the classic models of *Dive into Deep Learning* as LightningModules.

Layers, each importing only those below it:

- ``zoo.layers``: building blocks (activations, the book's init, BatchNorm from scratch and synced);
- ``zoo.training`` and ``zoo.callbacks``: the training core (the shared LightningModule, metrics, resume,
  checkpoints) and every callback a run gets;
- ``zoo.models``: the networks, one file per family, each registering itself;
- ``zoo.weights``: trained weights (catalogue, cards, the resolver for the zoo's and torchvision's names);
- ``zoo.commands`` and ``zoo.cli``: the ``zoo`` command, one module per subcommand.

Importing ``zoo`` registers every model (``zoo.LeNet``, the class paths the configs use) and lets a model start
from weights by name.
"""

from zoo import models
from zoo.training.module import ClassificationModule, RegressionModule, ZooModule
from zoo.weights.pretrained import load_into
from zoo_common import get_model, list_models, register_model

# the models sit below the weights: the core asks through this hook for what a weights name holds
ClassificationModule.weights_loader = load_into


def __getattr__(name: str) -> type:
    """``zoo.LeNet`` (and ``class_path: zoo.LeNet`` in a config): every registered model by its name."""
    try:
        return get_model(name)
    except KeyError:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}") from None


__all__ = ["ClassificationModule", "RegressionModule", "ZooModule", "get_model", "list_models", "models",
           "register_model", *list_models()]
