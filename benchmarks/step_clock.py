"""A callback for timing benchmarks: microseconds per training step from step ``SKIP`` to the last, printed as a
JSON line when training ends (``--trainer.callbacks+=benchmarks.step_clock.StepClock``)."""

from __future__ import annotations

import json
import time

import lightning as L

SKIP = 200


class StepClock(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == SKIP:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        steps = trainer.global_step - SKIP
        print(json.dumps({"us_per_step": (time.perf_counter() - self.start) / steps * 1e6}), flush=True)
