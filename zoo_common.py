"""What ``zoo`` and ``datamodules`` both use, kept apart so that neither package imports the other for it.

- errors that mean "the input is wrong" (the CLI prints their message, no traceback);
- the registry of models and DataModules (the CLI's listing, the configs check and the tests iterate over it);
- atomic file writes (a crash or a kill never leaves half a file behind).

Standard library only.
"""

from __future__ import annotations

import errno
import importlib
import os
import secrets
import shutil
import socket
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


class DiskFullError(ZooError, OSError):
    """A write ran out of disk space; nothing half-written was left (exit status 1: not the input's fault)."""

    exit_code = 1


def disk_full(error: BaseException) -> bool:
    """Whether a failed write ran out of space: ENOSPC/EDQUOT, or torch.save's own words for it."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("unexpected pos" in text or "file write failed" in text)


def free_mb(folder: str | os.PathLike) -> float:
    try:
        return shutil.disk_usage(folder).free / 2**20
    except OSError:
        return float("nan")


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


def _filled(table: dict[str, type], package: str) -> dict[str, type]:
    """The table, its package imported first (its modules register themselves): whoever asks for a name gets
    every one, whatever was imported before (``import zoo`` itself imports nothing, to start fast)."""
    importlib.import_module(package)
    return table


def list_models() -> list[str]:
    return sorted(_filled(_MODELS, "zoo.models"))


def list_datamodules() -> list[str]:
    return sorted(_filled(_DATAMODULES, "datamodules.registry"))


def get_model(name: str) -> type:
    return _get(_filled(_MODELS, "zoo.models"), "model", name)


def get_datamodule(name: str) -> type:
    return _get(_filled(_DATAMODULES, "datamodules.registry"), "DataModule", name)


def import_class(dotted: str) -> type | None:
    """The class ``package.module.Class`` names (the user's own, say), or None where there is none."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        return None


# --- atomic writes --------------------------------------------------------------------------------


def atomic_write(dest: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the destination's own folder, flushed to disk, then renamed over it.

    The rename is atomic within a filesystem; a temporary file elsewhere (``/tmp``) would make it a copy.
    The file gets the permissions a plain ``open(dest, "w")`` would give (0666 less the umask), not the
    0600 of ``tempfile.mkstemp``, so that others can read checkpoints and results where the umask allows.
    Temporary files that a killed writer left beside ``dest`` are removed first. A full disk is a
    ``DiskFullError`` that names the file and the space left.
    """
    dest = Path(dest)
    tmp = write_temporary(dest, write)
    try:
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    """``atomic_write`` of a text, UTF-8."""
    atomic_write(dest, lambda f: f.write(text.encode()))


def atomic_write_new(folder: str | os.PathLike, stem: str, suffix: str, write: Callable[[IO[bytes]], Any]) -> Path:
    """Like ``atomic_write``, into a new file: ``<stem><suffix>``, else ``<stem>_1<suffix>``, ``_2``, ... (an
    earlier file is never overwritten). The name is claimed by a hard link, which fails if it exists: two
    writers at once get two files, and a kill leaves no empty file behind."""
    folder = Path(folder)
    first = folder / f"{stem}{suffix}"
    tmp = write_temporary(first, write)
    try:
        n = 0
        while True:
            dest = first if n == 0 else folder / f"{stem}_{n}{suffix}"
            try:
                os.link(tmp, dest)
                return dest
            except FileExistsError:
                n += 1
            except OSError:  # a filesystem without hard links: reserve the name, then rename over it
                try:
                    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                except FileExistsError:
                    n += 1
                    continue
                os.replace(tmp, dest)
                return dest
    finally:
        tmp.unlink(missing_ok=True)


def write_temporary(dest: Path, write: Callable[[IO[bytes]], Any],
                    elsewhere: str = "runs: --trainer.default_root_dir DIR") -> Path:
    """``write`` into a new temporary file beside ``dest`` (stale ones of killed writers removed first),
    flushed to disk; on any failure the file is gone, and a full disk is a ``DiskFullError`` whose message
    names ``elsewhere``, the option that writes somewhere else."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest.parent, f".{dest.name}.")
    fd, tmp = _create_unique(dest)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            finally:
                written = out.tell()
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if disk_full(e):
            raise DiskFullError(
                f"the disk is full: writing {dest} stopped after {written / 2**20:.1f} MB, and its disk has "
                f"{free_mb(dest.parent):.1f} MB free without it; free space there, or write elsewhere ({elsewhere})"
            ) from None
        raise
    return tmp


def part_name(dest: Path, suffix: str = ".part") -> Path:
    """A temporary name beside ``dest`` that says who writes it: host and process, so that a later writer can
    tell a file left by a killed process (removed) from one being written (kept)."""
    return dest.parent / f".{dest.name}.{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def remove_stale_parts(folder: Path, prefix: str, suffix: str = ".part") -> list[Path]:
    """Remove the temporary files named by ``part_name`` under ``folder`` whose writer on this host is dead."""
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return removed
    for path in candidates:
        owner = path.name[len(prefix):-len(suffix)].rsplit("-", 2)
        if len(owner) != 3 or not owner[1].isdigit() or owner_alive(owner[0], int(owner[1])):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def owner_alive(host: str, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` may still be running: only a process of this host can be known dead."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _create_unique(dest: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``dest``, created (like ``open``) with mode 0666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = part_name(dest)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def die_with_parent() -> None:
    """In a child process (``preexec_fn``): the kernel kills it when the command that started it dies, however
    it dies (SIGKILL included), so no training is left running."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux
        pass


def csv_text(header: list[str], rows) -> str:
    """A CSV file's text: the header, then the rows (written with ``atomic_write_text``)."""
    import csv
    import io

    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(header)
    out.writerows(rows)
    return text.getvalue()


def read_csv(path: str | os.PathLike, option: str) -> tuple[list[dict[str, str]], list[str]]:
    """(rows as dicts, column names) of a CSV file the user gives with ``option``; one error line if unreadable."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return list(reader), list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{option} {path}: cannot read it as a CSV file ({e})") from None
