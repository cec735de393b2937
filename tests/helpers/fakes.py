"""Importable fakes for tests that run the ``zoo`` command in other processes (``--data tests.helpers.fakes.FakeFashionMNIST``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import signal
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from datamodules import CIFAR10, FashionMNIST
from tests.helpers import idx_bytes, mnist_like_arrays


class FakeFashionMNIST(FashionMNIST):
    """Fashion-MNIST's code on the small fake files of ``tests.helpers.make_mnist_like`` (defaults)."""

    files = dataclasses.replace(
        FashionMNIST.files,
        md5={name: hashlib.md5(idx_bytes(a)).hexdigest() for name, a in mnist_like_arrays().items()},
        mirrors=(),
        local_copies=(),
    )


class FiveClassFashionMNIST(FakeFashionMNIST):
    """The fake files with labels folded onto five classes: data whose class count differs from the rest."""

    classes = FakeFashionMNIST.classes[:5]

    def load(self, train: bool):
        images, labels = super().load(train)
        return images, labels % 5


# --- CIFAR-10-shaped data in the real format ------------------------------------------------------

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_pickles(per_batch: int = 24, n_test: int = 21, seed: int = 0) -> dict[str, bytes]:
    """The files of ``cifar-10-batches-py/`` as torchvision downloads them (protocol-2 pickles), tiny."""
    rng = np.random.default_rng(seed)
    files = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 120, (n, 3, 32, 32), dtype=np.uint8)
        for i, label in enumerate(labels):  # a bright bar whose row and colour encode the class
            images[i, label % 3, 3 + 2 * label : 5 + 2 * label, 4:28] = 250
        record = {"batch_label": f"{name} of 5", "labels": labels.tolist(), "data": images.reshape(n, 3072),
                  "filenames": [f"img_{i}.png" for i in range(n)]}
        files[name] = pickle.dumps(record, protocol=2)
    files["batches.meta"] = pickle.dumps({"num_cases_per_batch": per_batch, "label_names": list(CIFAR_CLASSES),
                                          "num_vis": 3072}, protocol=2)
    return files


def write_fake_cifar(root: Path) -> Path:
    """Write the fake ``cifar-10-batches-py/`` under ``root`` (the layout ``--data.root`` expects)."""
    folder = root / FakeCIFAR10.files.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in cifar_pickles().items():
        (folder / name).write_bytes(data)
    return root


class FakeCIFAR10(CIFAR10):
    """CIFAR-10's code on the small fake pickles of ``cifar_pickles()`` (120 training images, 21 test)."""

    files = dataclasses.replace(
        CIFAR10.files, md5={name: hashlib.md5(data).hexdigest() for name, data in cifar_pickles().items()}, urls=()
    )


# --- stopping a run at a chosen point, and a log that a kill cannot lose ------------------------------


class KillAt(L.Callback):
    """SIGKILL the whole process group (every DDP rank at once) at a chosen hook and step, like a node that dies;
    or, with ``signal="TERM"``, send this process the SIGTERM a scheduler sends before it kills a job.

    ``hook``: ``train_batch_start`` (before the step ``step`` runs), ``validation_batch_start`` (during the
    validation after the step ``step``), or ``train_epoch_end`` (after the epoch-end checkpoint of epoch ``epoch``).
    """

    def __init__(self, hook: str = "train_batch_start", step: int = 0, epoch: int = 0, signal: str = "KILL") -> None:
        self.hook, self.step, self.epoch, self.signal = hook, step, epoch, signal

    def _kill(self) -> None:
        if self.signal == "TERM":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            os.killpg(os.getpgid(0), signal.SIGKILL)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.hook == "train_batch_start" and trainer.global_step == self.step:
            self._kill()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.hook == "validation_batch_start" and not trainer.sanity_checking and trainer.global_step == self.step:
            self._kill()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.hook == "train_epoch_end" and trainer.current_epoch == self.epoch:
            self._kill()


class FirstStepState(L.Callback):
    """Saves the weights and optimizer state that the run's first training step starts from (to ``path``)."""

    def __init__(self, path: str = "first_step_state.pt") -> None:
        self.path, self.done = path, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.done or trainer.global_rank != 0:
            return
        self.done = True
        torch.save({"global_step": trainer.global_step, "state_dict": pl_module.state_dict(),
                    "optimizer": trainer.optimizers[0].state_dict()}, self.path)


class ZeroWeights(L.Callback):
    """Zeroes every weight when training starts: a run whose epochs from here on are poor (the hidden units
    of an MLP stay dead, only the output bias learns), so its best epoch lies before."""

    def on_train_start(self, trainer, pl_module) -> None:
        with torch.no_grad():
            for p in pl_module.parameters():
                p.zero_()


class RecordingLogger(CSVLogger):
    """Lightning's CSV logger, plus every logged value appended at once to ``metrics.jsonl`` (survives SIGKILL)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics, step)
        if rank_zero_only.rank != 0:
            return
        path = Path(self.root_dir) / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        values = {k: float(v) for k, v in metrics.items()}
        with path.open("a") as out:
            out.write(json.dumps({"step": step, **values}) + "\n")


class LossRecorder(L.Callback):
    """The training loss of every step, by the step that computed it (``losses[step]``)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self._step = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[self._step] = float(outputs["loss"])


class KillMidWrite(L.Callback):
    """SIGKILL this process while it writes its ``at``-th checkpoint, half of it on disk: the fault that leaves
    a writer's temporary file behind."""

    def __init__(self, at: int = 2) -> None:
        self.at, self.count = at, 0

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.count += 1
        if self.count < self.at:
            return
        import zoo_common

        real = zoo_common.atomic_write

        def dying(dest, write):
            def half(out):
                out.write(b"\0" * 100_000)
                out.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real(dest, half)

        zoo_common.atomic_write = dying
        import zoo.training.checkpoint_io as io

        io.atomic_write = dying


class ScriptedMetric(L.Callback):
    """Replaces a logged metric's value epoch by epoch with ``values`` before the checkpoints read it: a run whose
    best epoch is known in advance."""

    def __init__(self, name: str = "val/acc", values: list[float] = (0.5, 0.9, 0.7)) -> None:
        self.name, self.values = name, list(values)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            trainer.callback_metrics[self.name] = torch.tensor(self.values[trainer.current_epoch])
