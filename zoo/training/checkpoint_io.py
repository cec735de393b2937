"""Lightning's checkpoint writer with the temporary file beside the checkpoint (a trainer plugin)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from zoo_common import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's own writer puts its temporary file in /tmp, which makes the final move a non-atomic copy
    wherever /tmp is another filesystem (as on most clusters); ours writes beside the checkpoint and renames."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own handling
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(path, lambda out: torch.save(checkpoint, out))
