"""Callbacks that show a run: where it is kept (``AnnounceRun``), the device lines once the data is there
(``ShowDeviceLines``), ``InputGrid``, ``SamplesPerSecond``, ``HparamsWithMetrics``, ``ProgressBar`` and, without it,
``ProgressLines``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from rich.progress import ProgressColumn
from rich.text import Text
from torch.utils.tensorboard.summary import hparams

from zoo.training.images import labelled_grid
from zoo.training.loggers import tensorboard


class DeviceLines(logging.Filter):
    """Holds back Lightning's "GPU available: ..." lines (and its fast_dev_run notice) until the data and the
    model have passed their checks (``ShowDeviceLines``), so that a command refused for bad input says one
    line, not four."""

    PREFIXES = ("GPU available", "TPU available", "HPU available", "IPU available", "Running in `fast_dev_run` mode")

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self.release = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.release or not str(record.msg).startswith(self.PREFIXES):
            return True
        self.held.append(record)
        return False

    def show(self) -> None:
        held, self.held = self.held, []
        self.release = True
        try:
            for record in held:
                logging.getLogger(record.name).handle(record)
        finally:
            self.release = False


DEVICE_LINES = DeviceLines()


class ShowDeviceLines(L.Callback):
    """The device lines, once the data is there (after ``prepare_data`` and the DataModule's ``setup``)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        DEVICE_LINES.show()


class AnnounceRun(L.Callback):
    """Where the run is kept, said when training starts and again when it ends (with what to run next)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        log_dir = trainer.log_dir if trainer.logger is not None else None  # a collective under DDP: every rank asks
        if trainer.global_rank == 0 and log_dir:
            print(f"Run folder: {log_dir} (TensorBoard logs, config.yaml, checkpoints/)", flush=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        log_dir = trainer.log_dir if trainer.logger is not None else None
        if trainer.global_rank != 0 or not log_dir:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and os.path.isfile(best):
            print(f"Run folder: {log_dir}; best checkpoint {best}: evaluate it with "
                  f"`zoo test --ckpt_path {best}`", flush=True)


class InputGrid(L.Callback):
    """Once per run, a labelled grid of the first training batch as the model sees it (after augmentation).

    The batch is copied at the first step and drawn at the end of the epoch, so drawing does not stall training.
    """

    def __init__(self, max_images: int = 32) -> None:
        self.max_images = max_images
        self.done = False
        self._pending: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.done or not isinstance(batch, (tuple, list)) or batch[0].dim() != 4:
            return
        self.done = True
        if trainer.global_rank == 0 and tensorboard(trainer) is not None:
            x, y = batch[0][: self.max_images].detach().clone(), batch[1][: self.max_images].clone()
            self._pending = (x, y, trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        x, y, step = self._pending
        self._pending = None
        x, y = x.float().cpu(), y.cpu()
        dm = trainer.datamodule
        if getattr(dm, "normalize", False):  # undo the normalisation so the colours are the real ones
            x = x * torch.tensor(dm.std).view(1, -1, 1, 1) + torch.tensor(dm.mean).view(1, -1, 1, 1)
        names = getattr(dm, "classes", ())
        captions = [names[i] if i < len(names) else str(i) for i in y.tolist()]
        tensorboard(trainer).experiment.add_image("inputs/train", labelled_grid(x, captions), step)


class SamplesPerSecond(L.Callback):
    """``train/samples_per_sec`` each epoch: training examples over the time of the training batches.

    Data loading counts, validation does not (the clock stops at the epoch's last training batch).
    The logged rate is for all processes together; ``per_second`` is this process's over the whole run.
    """

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.samples = self.total_samples = 0
        self.total_seconds = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts without an epoch start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.last = time.perf_counter()
        self.samples = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.samples += len(batch[1]) if isinstance(batch, (tuple, list)) else len(batch)
        self.last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = self.last - self.start
        if self.samples and seconds > 0:
            self.total_samples += self.samples
            self.total_seconds += seconds
            rate = self.samples * trainer.world_size / seconds
            pl_module.log("train/samples_per_sec", rate, on_epoch=True, rank_zero_only=True)

    @property
    def per_second(self) -> float:
        return self.total_samples / self.total_seconds


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}{k}/" if isinstance(v, dict) else f"{prefix}{k}", v, out)
    elif isinstance(value, (int, float, str, bool)) or value is None:
        out[prefix] = "None" if value is None else value
    else:
        out[prefix] = str(value)


class HparamsWithMetrics(L.Callback):
    """The run's row in TensorBoard's HPARAMS tab: first what tells runs apart (model, data, optimizer, learning
    rate, batch size), then the settings that are on (0, False and None left out); as metrics the epochs
    trained, the best validation score, the last epoch's values, and the test result of ``zoo test``.

    TensorBoard keeps the first hyperparameters a run folder gets: they are written once, when the run starts,
    naming every metric the run will have; the metrics are scalars written as they become known.
    """

    def __init__(self) -> None:
        self.loaded: dict = {}  # of the checkpoint an evaluation restores: its step and best score

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        scores = [s.get("best_model_score") for s in checkpoint.get("callbacks", {}).values() if isinstance(s, dict)]
        best = next((float(b) for b in scores if b is not None), None)
        self.loaded = {"step": int(checkpoint.get("global_step", 0)), "best": best}

    @staticmethod
    def _contributors(trainer: L.Trainer) -> list[L.Callback]:
        """Other callbacks that add to the row (a `zoo tune` trial's: its number, values, whether it was pruned)."""
        return [cb for cb in trainer.callbacks if hasattr(cb, "hparams_row")]

    def _names(self, pl_module: L.LightningModule) -> tuple[str, list[str]]:
        monitor = getattr(pl_module, "monitor", "val/loss")
        stats = ("acc", "loss") if hasattr(pl_module, "acc") else ("loss",)
        best = f"hp/best_{monitor.replace('/', '_')}"
        extra = [name for cb in self._contributors(pl_module.trainer) for name in cb.hparams_metrics]
        return best, ["hp/epochs", best, *(f"hp/{stage}_{s}" for stage in ("test", "val", "train") for s in stats), *extra]

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> TensorBoardLogger | None:
        """The run's hyperparameters, unless it goes on in its own folder (resumed, or its checkpoint evaluated);
        the logger where this call starts them."""
        logger = tensorboard(trainer)
        if logger is None or trainer.global_rank != 0:
            return None
        if trainer.ckpt_path and Path(trainer.ckpt_path).resolve().parent.parent == Path(logger.log_dir).resolve():
            return None
        # TensorBoard orders the columns by name (those that differ between runs first) and shows the first ones:
        # capitalised, what tells runs apart sorts before every setting (lowercase)
        params: dict = {"Model": type(pl_module).__name__}
        if trainer.datamodule is not None:
            params["Data"] = type(trainer.datamodule).__name__
        if trainer.optimizers:
            params["Optimizer"] = type(trainer.optimizers[0]).__name__
            for i, group in enumerate(trainer.optimizers[0].param_groups):
                params[f"LR{f' {i + 1}' if i else ''}"] = group["lr"]
        settings: dict = {}
        _flat("model/", dict(pl_module.hparams), settings)
        if trainer.datamodule is not None:
            _flat("data/", dict(trainer.datamodule.hparams), settings)
            if "data/batch_size" in settings:
                params["Batch size"] = settings.pop("data/batch_size")
        params |= {k: v for k, v in settings.items()
                   if not k.rsplit("/", 1)[-1].startswith("_") and v not in (0, False, "None", "")}
        for cb in self._contributors(trainer):
            params |= cb.hparams_row()
        # as text: TensorBoard would show a bool as 1.0000 (torch writes it as a number)
        params = {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
        logger.log_hyperparams(params)  # hparams.yaml
        for summary in hparams(params, dict.fromkeys(self._names(pl_module)[1], 0.0)):
            logger.experiment.file_writer.add_summary(summary)
        return logger

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start(trainer, pl_module) is not None and self.loaded.get("best") is not None:
            # a checkpoint from outside any run: its row gets the best validation score the checkpoint holds
            tensorboard(trainer).log_metrics({self._names(pl_module)[0]: self.loaded["best"]}, self.loaded["step"])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = tensorboard(trainer)
        if logger is None or trainer.global_rank != 0:
            return
        best_name, names = self._names(pl_module)
        metrics = {f"hp/{k.replace('/', '_')}": v.item() for k, v in trainer.callback_metrics.items()}
        metrics = {k: v for k, v in metrics.items() if k in names}
        metrics["hp/epochs"] = trainer.current_epoch
        best = trainer.checkpoint_callback
        if best is not None and best.best_model_score is not None:
            metrics[best_name] = best.best_model_score.item()
        logger.log_metrics(metrics, trainer.global_step)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = tensorboard(trainer)
        if logger is None or trainer.global_rank != 0:
            return
        metrics = {f"hp/{k.replace('/', '_')}": v.item() for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        logger.log_metrics({k: v for k, v in metrics.items() if k in self._names(pl_module)[1]}, self.loaded.get("step", 0))


class AverageRate(ProgressColumn):
    """Batches per second since the bar started: what was done over the time it took."""

    def __init__(self, style) -> None:
        super().__init__()
        self.style = style

    def render(self, task) -> Text:
        rate = task.completed / task.elapsed if task.elapsed else 0.0
        return Text(f"{rate:.2f}it/s", style=self.style)


class ProgressBar(RichProgressBar):
    """Lightning's Rich progress bar, redrawn at most ``max_per_second`` times a second in training.

    Redrawing on every step (Lightning's default) gathers and formats every
    logged metric each time: about 5% of a small model's step on a CPU.
    """

    def __init__(self, max_per_second: float = 4.0) -> None:
        super().__init__()
        self.min_interval = 1.0 / max_per_second
        self._last_draw = 0.0

    def configure_columns(self, trainer: L.Trainer) -> list:
        # rich's own speed column estimates from redraws, too few at this rate (it showed 0.00it/s)
        return [*super().configure_columns(trainer)[:-1], AverageRate(self.theme.processing_speed)]

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the run's folder number, not a metric
        return items

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if batch_idx + 1 >= trainer.num_training_batches or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class ProgressLines(L.Callback):
    """Without the progress bar (a log file, a batch job, a run started by another command): a line at most every
    ``every_s`` seconds while training or validating, where it is and about how long is left. A run shorter than
    ``every_s`` prints none."""

    clock = staticmethod(time.monotonic)

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.start = self.last = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.last = self.clock()

    def _total(self, trainer: L.Trainer) -> int | None:
        per_epoch = trainer.num_training_batches
        if not isinstance(per_epoch, int) or per_epoch <= 0:
            return None
        totals = [trainer.max_steps] if trainer.max_steps and trainer.max_steps > 0 else []
        if trainer.max_epochs and trainer.max_epochs > 0:
            totals.append(trainer.max_epochs * per_epoch)
        return min(totals) if totals else None

    def _line(self, trainer: L.Trainer, where: str) -> None:
        now = self.clock()
        if now - self.last < self.every_s or trainer.global_rank != 0 or trainer.sanity_checking:
            return
        self.last = now
        elapsed, total = now - self.start, self._total(trainer)
        done = trainer.global_step
        left = f", about {_clock(elapsed * (total - done) / done)} left" if total and 0 < done < total else ""
        loss = trainer.callback_metrics.get("train/loss_step")
        shown = f", train/loss {float(loss):.4f}" if loss is not None else ""
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        print(f"Epoch {trainer.current_epoch + 1}{epochs}, {where}{shown}; {_clock(elapsed)} elapsed{left}", flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._line(trainer, f"batch {batch_idx + 1}/{trainer.num_training_batches}")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.state.fn == "fit":
            self._line(trainer, f"validating, batch {batch_idx + 1}")
