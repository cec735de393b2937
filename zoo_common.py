"""What ``zoo`` and ``datamodules`` both use, kept apart so that neither package imports the other for it.

- errors that mean "the input is wrong" (the CLI prints their message, no traceback);
- the registry of models and DataModules (the CLI's listing, the configs check and the tests iterate over it);
- atomic file writes (a crash or a kill never leaves half a file behind).

Standard library only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

# --- errors ---------------------------------------------------------------------------------------


class ZooError(Exception):
    """Base of the errors whose message tells the user what is wrong and how to fix it."""


class InputShapeError(ZooError, ValueError):
    """A model cannot take the inputs it is given (size, channels, features)."""


class NonFiniteLossError(ZooError, RuntimeError):
    """The training loss became NaN or infinite."""


class ConfigError(ZooError, ValueError):
    """An option's value is out of its range."""


# --- registry -------------------------------------------------------------------------------------

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


def class_name(class_path: str | None) -> str | None:
    """``zoo.models.lenet.LeNet`` -> ``LeNet`` (the name the registry and the command line use)."""
    return class_path.rsplit(".", 1)[-1] if class_path else None


def list_models() -> list[str]:
    return sorted(_MODELS)


def list_datamodules() -> list[str]:
    return sorted(_DATAMODULES)


def get_model(name: str) -> type:
    return _get(_MODELS, "model", name)


def get_datamodule(name: str) -> type:
    return _get(_DATAMODULES, "DataModule", name)


# --- atomic writes --------------------------------------------------------------------------------


def atomic_write(dest: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the destination's own folder, flushed to disk, then renamed over it.

    The rename is atomic within a filesystem; a temporary file elsewhere (``/tmp``) would make it a copy.
    The file gets the permissions a plain ``open(dest, "w")`` would give (0666 less the umask), not the
    0600 of ``tempfile.mkstemp``, so that others can read checkpoints and results where the umask allows.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_unique(dest)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_unique(dest: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``dest``, created (like ``open``) with mode 0666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.part"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
