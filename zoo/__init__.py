"""The d2l model zoo: the classic models of *Dive into Deep Learning* as LightningModules.

Layers, each importing only those below it:

- ``zoo.layers``: building blocks (activations, the book's init, BatchNorm from scratch and synced);
- ``zoo.training`` and ``zoo.callbacks``: the training core (the shared LightningModule, metrics, resume,
  checkpoints) and every callback a run gets;
- ``zoo.models``: the networks, one file per family, each registering itself;
- ``zoo.weights``: trained weights (catalogue, cards, the resolver for the zoo's and torchvision's names);
- ``zoo.commands`` and ``zoo.cli``: the ``zoo`` command, one module per subcommand.

Importing ``zoo`` costs nothing: ``zoo --version``, ``zoo --help`` and ``zoo weights`` need neither torch nor
Lightning. The first use of a model's name (``zoo.LeNet``, ``class_path: zoo.LeNet`` in a config) or of the names
below registers every model.
"""

from __future__ import annotations

import importlib

_NAMES = {"ClassificationModule": "zoo.training.module", "RegressionModule": "zoo.training.module",
          "ZooModule": "zoo.training.module", "get_model": "zoo_common", "list_models": "zoo_common",
          "register_model": "zoo_common"}


def __getattr__(name: str):
    """``zoo.LeNet`` (and ``class_path: zoo.LeNet`` in a config): every registered model by its name, loaded on
    first use, as are the names of ``__all__``."""
    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    # each of these imports zoo.models first, which registers every model
    from zoo_common import get_model, list_models

    if name == "__all__":
        return ["models", *_NAMES, *list_models()]
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    try:
        return get_model(name)
    except KeyError:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}") from None
