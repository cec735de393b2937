"""Folder listings that survive what real folders hold: symbolic-link loops, dangling links, entries that
cannot be read, names that are not UTF-8 (Python gives those as strings with surrogates; they open fine, but
cannot be printed or written as UTF-8 as they are)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from datamodules.files import DatasetError


def printable(path: str | os.PathLike) -> str:
    """A path as text that any terminal and UTF-8 file takes: bytes that are not UTF-8 shown as ``\\xff``."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@dataclass
class Listing:
    """The visible (not hidden) entries of a folder, sorted by name."""

    files: list[os.DirEntry] = field(default_factory=list)
    folders: list[os.DirEntry] = field(default_factory=list)
    #: entries that are neither, by path: why (a link loop, a dangling link, unreadable)
    skipped: dict[str, str] = field(default_factory=dict)


def scan(folder: str | os.PathLike) -> Listing:
    """List ``folder`` once; an entry that cannot be followed is kept in ``skipped`` with the reason."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise DatasetError(f"{printable(folder)}: cannot list it ({e.strerror}); check that it exists and that "
                           "you may read it") from None
    listing = Listing()
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                listing.folders.append(entry)
            elif entry.is_file():
                entry.stat()  # follows the link: a file that is there
                listing.files.append(entry)
            elif entry.is_symlink():
                listing.skipped[entry.path] = "a symbolic link to nothing"
            else:
                listing.skipped[entry.path] = "not a regular file"
        except OSError as e:  # ELOOP: a symbolic-link loop; EACCES
            listing.skipped[entry.path] = e.strerror or type(e).__name__
    return listing


def skipped_text(path: str, reason: str) -> str:
    return f"left out {printable(path)}: {reason}"

