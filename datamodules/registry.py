"""Importing this module registers every DataModule (each module registers its own classes)."""

import datamodules.cifar  # noqa: F401
import datamodules.folder  # noqa: F401
import datamodules.mnist  # noqa: F401
import datamodules.synthetic  # noqa: F401
