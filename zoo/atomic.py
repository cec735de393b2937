"""Writing files so that a crash or a kill never leaves half of one behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


def atomic_write(dest: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the destination's own folder, flushed to disk, then renamed over it.

    The rename is atomic within a filesystem; a temporary file elsewhere (``/tmp``) would make it a copy.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with the temporary file beside the checkpoint (Lightning's goes to /tmp,
    which makes the final move a non-atomic copy wherever /tmp is another filesystem, as on most clusters)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own handling
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(path, lambda out: torch.save(checkpoint, out))
