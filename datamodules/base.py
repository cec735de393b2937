"""In-memory DataModules: whole datasets as tensors, batched by index slices.

No per-sample ``__getitem__`` and no worker processes: a batch is one fancy
index into a uint8 tensor, which is faster than any per-sample pipeline for
datasets of this size. Conversion to float happens after the batch reaches its
device (``on_after_batch_transfer``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from datamodules.resumable import ResumableLoader
from zoo_common import ConfigError


class TensorBatches(Dataset):
    """Tensors of equal length, indexed by a whole batch of indices at once."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        if len({len(t) for t in tensors}) != 1:
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)


class BatchIndexSampler(DistributedSampler):
    """Yields one index tensor per batch, sharded over ``num_replicas`` ranks.

    Training (``even=True``) gives every rank the same number of batches, as
    DDP's gradient sync requires, by wrapping around like ``DistributedSampler``.
    Evaluation (``even=False``) gives every sample to exactly one rank, no padding,
    so metrics reduced across ranks count each sample once; ranks still take
    the same number of steps, their batches differing in size by a sample or so.
    It subclasses ``DistributedSampler`` so that Lightning keeps it in DDP
    instead of replacing it, and receives ``set_epoch`` every epoch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
        drop_last: bool = False,
    ) -> None:
        # not calling DistributedSampler.__init__: it wants a Dataset and an initialised process group
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.num_replicas, self.rank, self.even, self.drop_last = num_replicas, rank, even, drop_last
        self.epoch = 0
        self.yielded = 0  # batches of the current iteration handed out so far
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches: int) -> None:
        """Start the next pass over ``epoch`` at its batch number ``batches`` (a run resumed mid-epoch)."""
        self._resume = (epoch, batches)

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if self.even and self.num_replicas > 1:
            total = math.ceil(self.n / self.num_replicas) * self.num_replicas
            order = torch.cat([order, order[: total - self.n]])
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[torch.Tensor]:
        indices = self._indices()
        batches = list(indices.split(self.batch_size))
        # Every rank takes the same number of steps, also in evaluation: DDP's forward syncs buffers
        # (BatchNorm statistics) at each step, so a rank stopping one batch early would hang the others.
        # A rank holding one sample fewer splits its last batch in two instead.
        while len(batches) < len(self):
            last = batches.pop() if batches else indices[:0]
            half = (len(last) + 1) // 2
            batches += [last[:half], last[half:]]
        start = 0
        if self._resume is not None:
            epoch, skip = self._resume
            self._resume = None
            start = skip if epoch == self.epoch else 0
        for self.yielded in range(start + 1, len(self) + 1):
            yield batches[self.yielded - 1]

    def __len__(self) -> int:
        per_rank = math.ceil(self.n / self.num_replicas)  # the largest shard
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)


class InMemoryDataModule(L.LightningDataModule):
    """Base of the zoo's DataModules: tensors in memory, one index slice per batch."""

    def __init__(self, batch_size: int = 256, seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: give a number of examples >= 1")
        self.batch_size = batch_size
        self.seed = seed

    def _loader(self, tensors: tuple[torch.Tensor, ...], train: bool) -> DataLoader:
        trainer = self.trainer
        sampler = BatchIndexSampler(
            len(tensors[0]),
            self.batch_size,
            shuffle=train,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            even=train,
        )
        on_gpu = bool(trainer and trainer.accelerator.__class__.__name__ == "CUDAAccelerator")
        # batch_size=None: the sampler already yields whole batches of indices. A generator of its own, so that
        # starting an iterator does not draw from the global RNG (a resumed run would draw one number fewer).
        kwargs = dict(sampler=sampler, batch_size=None, pin_memory=on_gpu, generator=torch.Generator().manual_seed(0))
        if not train:
            return DataLoader(TensorBatches(*tensors), **kwargs)
        return ResumableLoader(TensorBatches(*tensors), consumed=self._batches_trained, **kwargs)

    def _batches_trained(self) -> int | None:
        """Batches of the current epoch that training has finished (what a checkpoint's loader state records)."""
        trainer = self.trainer
        if trainer is None:
            return None
        # `processed` counts a batch once its step is done, before the hooks that may save a checkpoint
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed
