"""A folder of image files as one memory-mapped uint8 array: listed, decoded once in parallel, cached.

The cache of a split is ``<key>.npy`` (``N x C x S x S`` uint8, every image
resized so its shorter side is ``S`` and center-cropped to a square) and
``<key>.json`` (labels, file names, the files left out and why). The key hashes
the file list with sizes and modification times and every option that changes
the bytes, so a changed, added or removed file gives a new key and a rebuild.
Both files are written to temporary names and renamed, the JSON last: a reader
that finds the JSON finds a complete array, and two builders of the same key
write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from datamodules.files import DatasetError
from datamodules.listing import is_utf8, scan
from zoo_common import atomic_write_text, free_mb, part_name, remove_stale_parts

# what Pillow reads that people keep photos in; anything else in a class folder is not an image and is skipped
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .bmp .dib .gif .tif .tiff .ppm .pgm .pbm .pnm .tga .ico .jp2 .j2k".split()
)
FORMAT_VERSION = 1  # bump when the decoding changes the bytes of a cache


class BadImage(Exception):
    """A file that could not be decoded; the message says why."""


@dataclass(frozen=True)
class FileEntry:
    path: Path
    label: int
    size: int
    mtime_ns: int


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def class_folders(split_dir: Path, skipped: dict[str, str] | None = None) -> list[str]:
    """The sorted names of the (non-hidden) sub-folders of ``split_dir``. A folder whose name is not UTF-8 is
    left out (class names go into checkpoints, configs and CSV files as text), into ``skipped`` with why."""
    names = []
    listing = scan(split_dir)
    for entry in listing.folders:
        if is_utf8(entry.name):
            names.append(entry.name)
        elif skipped is not None:
            skipped[entry.path] = "a class folder whose name is not UTF-8; rename it to use it"
    if skipped is not None:
        skipped.update(listing.skipped)
    return names


def list_split(split_dir: Path, classes: list[str], skipped: dict[str, str] | None = None) -> list[FileEntry]:
    """Every image file of the chosen class folders, sorted by class then name, with its size and mtime.
    Entries that cannot be followed (link loops, dangling links) go into ``skipped`` with why."""
    entries = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such class folder; expected {split_dir}/<class>/<images> for every class")
        listing = scan(folder)
        if skipped is not None:
            skipped.update(listing.skipped)
        files = [e for e in listing.files if is_image_name(e.name)]
        if not files:
            raise DatasetError(f"{folder}: the class folder holds no image files; put images in it or leave the class "
                               "out with --data.classes")
        for e in files:
            st = e.stat()
            entries.append(FileEntry(Path(e.path), label, st.st_size, st.st_mtime_ns))
    return entries


def cache_key(entries: list[FileEntry], root: Path, options: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": FORMAT_VERSION, **options}, sort_keys=True).encode())
    for e in entries:
        # os.fsencode: a file name that is not UTF-8 hashes as its own bytes
        h.update(os.fsencode(f"{e.path.relative_to(root)}\0{e.label}\0{e.size}\0{e.mtime_ns}\n"))
    return h.hexdigest()[:24]


def _to_8bit(img: Image.Image) -> Image.Image:
    """16- and 32-bit integer images (16-bit PNG, TIFF) scaled to 8 bits instead of clipped, as Pillow would."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        array = np.asarray(img).astype(np.int64)
        top = 65535 if img.mode.startswith("I;16") or array.max(initial=0) <= 65535 else array.max()
        return Image.fromarray(((np.clip(array, 0, top) * 255 + top // 2) // top).astype(np.uint8), "L")
    return img


def decode(path: Path | BinaryIO, size: int, channels: int) -> np.ndarray:
    """One file as uint8 ``channels x size x size``: EXIF orientation applied, shorter side to ``size``, center crop.

    ``path`` may also be an open binary file. Raises ``BadImage`` with the reason for anything that is not a
    readable image.
    """
    try:
        if isinstance(path, (str, os.PathLike)) and os.path.getsize(path) == 0:
            raise BadImage("empty file")
        with Image.open(path) as img:
            w, h = img.size
            if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:
                raise BadImage(f"decompression bomb? {w} x {h} pixels is over Pillow's limit of "
                               f"{Image.MAX_IMAGE_PIXELS} (PIL.Image.MAX_IMAGE_PIXELS)")
            # JPEG: let the decoder shrink by 1/2, 1/4 or 1/8 while it decodes, staying at least size x size
            img.draft(None, (size, size))
            img = ImageOps.exif_transpose(img)  # phone photos are stored sideways with an orientation tag
            img = _to_8bit(img).convert("L" if channels == 1 else "RGB")  # also GIF: its first frame
            w, h = img.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            img = img.resize((size, size), Image.Resampling.BILINEAR, box=box)
            array = np.asarray(img, dtype=np.uint8)
    except BadImage:
        raise
    except Image.DecompressionBombError as e:
        raise BadImage(f"decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise BadImage(f"{type(e).__name__}: {e}") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _decode_or_reason(args: tuple[Path, int, int]) -> np.ndarray | str:
    try:
        return decode(*args)
    except BadImage as e:
        return str(e)


def executor(workers: int, processes: bool = False) -> Executor:
    """Threads by default: Pillow releases the GIL while it decodes and resizes, and threads need no copies."""
    workers = workers or os.cpu_count() or 1
    return ProcessPoolExecutor(workers) if processes else ThreadPoolExecutor(workers)


def decode_all(
    paths: list[Path], size: int, channels: int, out: np.ndarray, workers: int = 0, processes: bool = False
) -> dict[int, str]:
    """Decode ``paths`` into the rows of ``out``; return {row: reason} for the files that failed."""
    bad = {}
    with executor(workers, processes) as pool:
        chunk = 64 if processes else 1
        for i, result in enumerate(pool.map(_decode_or_reason, [(p, size, channels) for p in paths], chunksize=chunk)):
            if isinstance(result, str):
                bad[i] = result
            else:
                out[i] = result
    return bad


@dataclass
class CachedSplit:
    """A split's images (memory-mapped), labels (-1 for a file left out), file names and the reasons."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    bad: dict[str, str]
    path: Path


def cache_files(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.json"


def load_cache(cache_dir: Path, key: str) -> CachedSplit | None:
    """The cache of ``key`` memory-mapped, or None where it is not (completely) there."""
    array_path, index_path = cache_files(cache_dir, key)
    try:
        index = json.loads(index_path.read_text())
        # copy-on-write: private, writable pages (torch wants writable arrays); nothing goes back to the file
        images = np.load(array_path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if images.shape != tuple(index["shape"]) or images.dtype != np.uint8:
        return None
    return CachedSplit(images, np.asarray(index["labels"], dtype=np.int64), index["files"], index["bad"], array_path)


def check_cache_dir(cache_dir: Path, nbytes: int) -> None:
    """The cache folder made, writable, and with room for ``nbytes``; else a DatasetError with the fix."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot make the image cache folder {cache_dir} ({e.strerror}); choose another with "
                           "--data.cache_dir") from None
    if not os.access(cache_dir, os.W_OK):
        raise DatasetError(f"cache folder {cache_dir} is not writable; choose another with --data.cache_dir")
    need = nbytes / 2**20 + 1
    if free_mb(cache_dir) < need:  # a memory-mapped write to a full disk is a crash (SIGBUS), not an error
        raise DatasetError(f"the image cache needs {need:.0f} MB and {free_mb(cache_dir):.0f} MB are free in "
                           f"{cache_dir}; free space there, or choose another folder with --data.cache_dir")


def build_cache(
    entries: list[FileEntry], root: Path, cache_dir: Path, key: str, size: int, channels: int,
    workers: int = 0, processes: bool = False,
) -> CachedSplit:
    """Decode every entry into ``<cache_dir>/<key>.npy`` and write its index; atomic (temporary files, renames)."""
    array_path, index_path = cache_files(cache_dir, key)
    shape = (len(entries), channels, size, size)
    check_cache_dir(cache_dir, int(np.prod(shape)))
    remove_stale_parts(cache_dir, f".{array_path.name}.")  # of builds that were killed
    tmp = part_name(array_path)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        bad_rows = decode_all([e.path for e in entries], size, channels, out, workers, processes)
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, array_path)
    finally:
        tmp.unlink(missing_ok=True)
    files = [str(e.path.relative_to(root)) for e in entries]
    index = {
        "shape": list(shape),
        "labels": [-1 if i in bad_rows else e.label for i, e in enumerate(entries)],
        "files": files,
        "bad": {files[i]: reason for i, reason in sorted(bad_rows.items())},
    }
    atomic_write_text(index_path, json.dumps(index))
    loaded = load_cache(cache_dir, key)
    assert loaded is not None, f"the cache just written to {array_path} does not load"
    return loaded
