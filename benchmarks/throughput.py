"""A callback that measures training examples per second."""

from __future__ import annotations

import time

import lightning as L


class Throughput(L.Callback):
    """Examples per second over the training batches: data loading included, validation excluded."""

    def __init__(self) -> None:
        self.samples, self.seconds, self.start, self.last = 0, 0.0, 0.0, 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = self.last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch[1])
        self.last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds += self.last - self.start

    @property
    def per_second(self) -> float:
        return self.samples / self.seconds
