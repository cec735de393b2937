"""A tiny registry of the zoo's models and DataModules.

The CLI's listing, the configs check and the tests iterate over it, so adding
a model is one decorated class.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound=type)

_MODELS: dict[str, type] = {}
_DATAMODULES: dict[str, type] = {}


def _register(table: dict[str, type], kind: str, cls: T) -> T:
    name = cls.__name__
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered (by {table[name].__module__})")
    table[name] = cls
    return cls


def register_model(cls: T) -> T:
    """Class decorator: make a LightningModule known to the zoo under its class name."""
    return _register(_MODELS, "model", cls)


def register_datamodule(cls: T) -> T:
    """Class decorator: make a LightningDataModule known to the zoo under its class name."""
    return _register(_DATAMODULES, "DataModule", cls)


def _get(table: dict[str, type], kind: str, name: str) -> type:
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(table))}") from None


def list_models() -> list[str]:
    return sorted(_MODELS)


def list_datamodules() -> list[str]:
    return sorted(_DATAMODULES)


def get_model(name: str) -> type:
    return _get(_MODELS, "model", name)


def get_datamodule(name: str) -> type:
    return _get(_DATAMODULES, "DataModule", name)
