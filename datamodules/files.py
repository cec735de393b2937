"""Finding, fetching and verifying dataset files without trusting any one source.

A dataset is a set of files with known md5s. ``ensure_files`` makes each file
present, uncompressed and verified under ``<root>/<Name>/raw/``, trying in
order: the file already there (or its ``.gz``), a download from the dataset's
mirrors, and known local copies (such as Debian's ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(RuntimeError):
    """A dataset file is missing, truncated or corrupt; the message says which and what to do."""


@dataclass(frozen=True)
class FileSet:
    """The files of one dataset, as torchvision lays them out under a root."""

    name: str  # folder under root, e.g. "FashionMNIST"
    md5: dict[str, str]  # uncompressed file name -> md5 of its bytes
    mirrors: Sequence[str] = ()  # base URLs serving "<file>.gz"
    local_copies: Sequence[str] = ()  # folders that may hold "<file>" or "<file>.gz"
    compressed_suffix: str = ".gz"
    extra_help: str = field(default="")

    def raw_dir(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.name / "raw"


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    actual = md5sum(path)
    if actual != expected:
        raise DatasetError(
            f"{path} is corrupt or truncated: md5 {actual}, expected {expected} "
            f"({path.stat().st_size} bytes). Delete it and run again to fetch a fresh copy, "
            "or replace it with a good copy of the original file."
        )


def _atomic_write(dest: Path, write) -> None:
    """Write through a temporary file in the same folder, so a crash never leaves half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_uncompressed(src: Path, dest: Path) -> None:
    opener = gzip.open if src.suffix == ".gz" else open
    try:
        with opener(src, "rb") as f:
            _atomic_write(dest, lambda out: shutil.copyfileobj(f, out, 1 << 20))
    except (OSError, EOFError) as e:  # gzip raises BadGzipFile (an OSError) or EOFError when cut short
        raise DatasetError(f"cannot read {src}: {e}. The file is damaged; delete it or replace it.") from e


def _download(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        _atomic_write(dest, lambda out: shutil.copyfileobj(response, out, 1 << 20))


def ensure_files(files: FileSet, root: str | os.PathLike, download: bool = True, timeout: float = 30.0) -> Path:
    """Make every file of ``files`` present and verified under ``<root>/<name>/raw``; return that folder."""
    raw = files.raw_dir(root)
    missing: list[str] = []
    tried: list[str] = []
    for fname, md5 in files.md5.items():
        dest = raw / fname
        gz = raw / (fname + files.compressed_suffix)
        if not dest.exists() and gz.exists():
            _copy_uncompressed(gz, dest)
        if not dest.exists() and download:
            for base in files.mirrors:
                url = base + fname + files.compressed_suffix
                try:
                    _download(url, gz, timeout)
                except (urllib.error.URLError, OSError) as e:
                    tried.append(f"{url}: {getattr(e, 'reason', e)}")
                    continue
                _copy_uncompressed(gz, dest)
                gz.unlink()
                break
        if not dest.exists():
            for folder in files.local_copies:
                for candidate in (Path(folder) / fname, Path(folder) / (fname + files.compressed_suffix)):
                    if candidate.exists():
                        _copy_uncompressed(candidate, dest)
                        break
                if dest.exists():
                    break
        if not dest.exists():
            missing.append(fname)
            continue
        verify(dest, md5)
    if missing:
        raise DatasetError(_missing_message(files, raw, missing, download, tried))
    return raw


def _missing_message(files: FileSet, raw: Path, missing: list[str], download: bool, tried: list[str]) -> str:
    lines = [f"{files.name}: missing {len(missing)} file(s) under {raw}: {', '.join(missing)}.", "Tried:"]
    lines.append(f"  - {raw}/<file> and <file>{files.compressed_suffix}")
    if not download:
        lines.append("  - no download (download=False)")
    elif tried:
        lines += [f"  - download {t}" for t in tried[:4]]
    lines += [f"  - local copy in {folder}" for folder in files.local_copies]
    lines.append("Provide the files in one of these ways:")
    lines.append(f"  - point --data.root at a folder holding {files.name}/raw/<file> (uncompressed or .gz)")
    lines.append("  - run where the network reaches " + (", ".join(files.mirrors) or "the dataset's host"))
    if files.extra_help:
        lines.append("  - " + files.extra_help)
    return "\n".join(lines)
