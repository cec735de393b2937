"""Training loaders that a checkpoint can stop and restart in the middle of an epoch.

Lightning saves a training loader's ``state_dict()`` in every checkpoint and
hands it back to ``load_state_dict()`` on ``--ckpt_path`` (only for loaders that
have both). What fixes the data of the rest of an epoch is small: the epoch
(its order is seeded by ``seed + epoch``) and how many of its batches training
has consumed. The augmentation draws from a generator seeded by the batch's
place (:func:`batch_seed`), so it needs no saved state of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """A seed for the random draws of one batch: the same batch of the same run draws the same numbers,
    also after a resume, and no two (epoch, batch, rank) share a stream."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{batch}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # a non-negative int64


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a ``BatchIndexSampler`` whose place in the epoch a checkpoint keeps.

    ``consumed`` tells how many batches of the current epoch training has finished; the trainer's
    count, not the iterator's, since a loader may have handed out batches that were never trained on.
    """

    def __init__(self, *args: Any, consumed: Callable[[], int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumed = consumed

    def state_dict(self) -> dict[str, int]:
        done = self.consumed() if self.consumed is not None else None
        return {"epoch": self.sampler.epoch, "batches": self.sampler.yielded if done is None else done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_at(int(state["epoch"]), int(state["batches"]))
