"""Finding, fetching and verifying dataset files without trusting any one source.

A dataset is a set of files with known md5s. ``ensure_files`` makes each file
present, uncompressed and verified under ``<root>/<Name>/raw/``, trying in
order: the file already there (or its ``.gz``), a download from the dataset's
mirrors, and known local copies (such as Debian's ``dataset-fashion-mnist``).

md5s are computed as torchvision's ``calculate_md5`` computes them. Downloading, decompressing and
extracting stay here, for reasons measured against ``torchvision.datasets.utils``
(0.29) and given where each is done.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zoo_common import ZooError, atomic_write


class DatasetError(ZooError, RuntimeError):
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


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    """The md5 of a file's bytes (torchvision's ``calculate_md5``, without importing torch for it)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    # not check_integrity: a bare False would lose what the user needs to see (both md5s, the size)
    actual = md5_of(path)
    if actual != expected:
        raise DatasetError(
            f"{path} is corrupt or truncated: md5 {actual}, expected {expected} "
            f"({path.stat().st_size} bytes). Delete it and run again to fetch a fresh copy, "
            "or replace it with a good copy of the original file."
        )


def _copy_uncompressed(src: Path, dest: Path) -> None:
    # not torchvision's _decompress: it writes the final file as it goes (a truncated .gz leaves half of one)
    opener = gzip.open if src.suffix == ".gz" else open
    try:
        with opener(src, "rb") as f:
            atomic_write(dest, lambda out: shutil.copyfileobj(f, out, 1 << 20))
    except (OSError, EOFError) as e:  # gzip raises BadGzipFile (an OSError) or EOFError when cut short
        raise DatasetError(f"cannot read {src}: {e}. The file is damaged; delete it or replace it.") from e


def _download(url: str, dest: Path, timeout: float) -> None:
    # not download_url: it has no timeout (a mirror that accepts and never answers hangs prepare_data for good;
    # here the next source is tried after `timeout` s), writes the final file as it goes, fails on file:// URLs
    # and retries https over plain http
    with urllib.request.urlopen(url, timeout=timeout) as response:
        atomic_write(dest, lambda out: shutil.copyfileobj(response, out, 1 << 20))


def _fetch(urls: Sequence[str], dest: Path, timeout: float, tried: list[str]) -> bool:
    for url in urls:
        try:
            _download(url, dest, timeout)
            return True
        except (urllib.error.URLError, OSError) as e:
            tried.append(f"{url}: {getattr(e, 'reason', e)}")
    return False


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
            urls = [base + fname + files.compressed_suffix for base in files.mirrors]
            if _fetch(urls, gz, timeout, tried):
                _copy_uncompressed(gz, dest)
                gz.unlink()
        if not dest.exists():
            for folder in files.local_copies:
                candidates = [Path(folder) / fname, Path(folder) / (fname + files.compressed_suffix)]
                found = next((c for c in candidates if c.exists()), None)
                if found is not None:
                    _copy_uncompressed(found, dest)
                    break
        if not dest.exists():
            missing.append(fname)
            continue
        verify(dest, md5)
    if missing:
        looked = [f"{raw}/<file> and <file>{files.compressed_suffix}"]
        raise DatasetError(_missing_message(files.name, raw, missing, looked, download, tried, files.local_copies,
                                            f"a folder holding {files.name}/raw/<file> (uncompressed or .gz)",
                                            files.mirrors, files.extra_help))
    return raw


@dataclass(frozen=True)
class Archive:
    """A dataset shipped as one tar.gz that extracts to ``<root>/<folder>/`` (CIFAR's way)."""

    name: str
    folder: str
    md5: dict[str, str]  # extracted file name -> md5
    archive: str  # archive file name, kept under root
    archive_md5: str
    urls: Sequence[str] = ()
    local_copies: Sequence[str] = ()  # folders that may hold the archive


def ensure_archive(spec: Archive, root: str | os.PathLike, download: bool = True, timeout: float = 60.0) -> Path:
    """Make every file of ``spec`` present and verified under ``<root>/<folder>``; return that folder."""
    root = Path(root)
    folder = root / spec.folder
    archive = root / spec.archive
    tried: list[str] = []
    if not all((folder / f).exists() for f in spec.md5):
        if not archive.exists() and download:
            _fetch(spec.urls, archive, timeout, tried)
        if not archive.exists():
            found = next((Path(d) / spec.archive for d in spec.local_copies if (Path(d) / spec.archive).exists()), None)
            if found is not None:
                atomic_write(archive, lambda out: out.write(found.read_bytes()))
        if archive.exists():
            verify(archive, spec.archive_md5)
            _extract(archive, root)
    missing = [f for f in spec.md5 if not (folder / f).exists()]
    if missing:
        looked = [f"{folder}/<file>", f"{archive}"]
        raise DatasetError(_missing_message(spec.name, folder, missing, looked, download, tried, spec.local_copies,
                                            f"a folder holding {spec.folder}/ or {spec.archive}", spec.urls))
    for fname, md5 in spec.md5.items():
        verify(folder / fname, md5)
    return folder


def _extract(archive: Path, root: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # not extract_archive: it calls extractall() without a filter, which on Python < 3.14 writes through
            # an archive's symlinks and ../ names out of root; the "data" filter refuses them and devices
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"cannot extract {archive}: {e}. Delete it and run again, or replace it.") from e


def _missing_message(name: str, where: Path, missing: list[str], looked: list[str], download: bool,
                     tried: list[str], local_copies: Sequence[str], layout: str, urls: Sequence[str],
                     extra_help: str = "") -> str:
    # the first line is the whole story (the command prints only it): what is missing and the ways to provide it
    ways = [f"point --data.root at {layout}", "run where the network reaches " + (", ".join(urls) or "the dataset's host")]
    if extra_help:
        ways.append(extra_help)
    lines = [f"{name}: missing {len(missing)} file(s) under {where} ({', '.join(missing)}); provide them: "
             + "; or ".join(ways), "Tried:"]
    lines += [f"  - {place}" for place in looked]
    if not download:
        lines.append("  - no download (download=False)")
    elif tried:
        lines += [f"  - download {t}" for t in tried[:4]]
    lines += [f"  - local copy in {folder}" for folder in local_copies]
    return "\n".join(lines)
