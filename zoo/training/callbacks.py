"""The callbacks the zoo adds to every run, one job each.

Monitoring: ``InputGrid``, ``SamplesPerSecond``, ``HparamsWithMetrics``, ``ProgressBar``.
Losing nothing: ``StopOnNonFiniteLoss``, ``CheckpointOnSigterm``.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from rich.progress import ProgressColumn
from rich.text import Text
from torch.utils.tensorboard.summary import hparams

from zoo.training.images import labelled_grid
from zoo.tune import report as tune_report
from zoo_common import NonFiniteLossError


def tensorboard(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    """Where the zoo's ``last.ckpt`` of this run lives (its ModelCheckpoint named "last")."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.filename == "last" and cb.dirpath:
            return Path(cb.dirpath) / "last.ckpt"
    return None


# --- monitoring -----------------------------------------------------------------------------------


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
    def _names(pl_module: L.LightningModule) -> tuple[str, list[str]]:
        monitor = getattr(pl_module, "monitor", "val/loss")
        stats = ("acc", "loss") if hasattr(pl_module, "acc") else ("loss",)
        best = f"hp/best_{monitor.replace('/', '_')}"
        tuned = ["hp/pruned"] if tune_report.current() else []  # a trial of `zoo tune`: stopped by the pruner?
        return best, ["hp/epochs", best, *(f"hp/{stage}_{s}" for stage in ("test", "val", "train") for s in stats), *tuned]

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
        params |= tune_report.hparams()  # a trial's number and sampled values, beside the other trials
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


# --- losing nothing --------------------------------------------------------------------------------


class StopOnNonFiniteLoss(L.Callback):
    """A NaN or infinite training loss stops the run with its step, before any weights it produced are written
    to a checkpoint, so the last checkpoint on disk is the last good one.

    Reading a loss on the host waits for the device to finish the step, so the losses are kept on the device
    and checked together: whenever a checkpoint is about to be written (at the end of an epoch, every N steps,
    on SIGTERM), every ``log_every_n_steps`` steps, and at the end of training. The error names the first bad
    step, however many steps later it is found.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[torch.Tensor, int, int, int]] = []  # (loss, step, epoch, batch) not yet checked

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.pending.append((loss.detach(), trainer.global_step, trainer.current_epoch, batch_idx))
        if len(self.pending) >= max(1, trainer.log_every_n_steps):
            self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.check(trainer)  # raising here keeps the checkpoint from being written

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        losses = torch.stack([loss.float().reshape(()) for loss, *_ in pending])
        finite = torch.isfinite(losses)
        if bool(finite.all()):  # the one wait for the device
            return
        first = int((~finite).nonzero()[0])
        value, step, epoch, batch_idx = losses[first].item(), *pending[first][1:]
        good = last_checkpoint_path(trainer)
        kept = f"the last good checkpoint is {good}" if good and good.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"the training loss became {value} at step {step} (epoch {epoch}, batch {batch_idx}); training "
            f"stopped and {kept}. Lower the learning rate (--optimizer.lr), or clip gradients "
            "(--trainer.gradient_clip_val 1.0)."
        )


class CheckpointOnSigterm(L.Callback):
    """SIGTERM (what SLURM and most schedulers send before killing a job) saves ``last.ckpt`` at this step;
    Lightning then stops the run, and ``zoo fit ... --ckpt_path last`` resumes from this very step."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if getattr(trainer, "received_sigterm", False):
            path = last_checkpoint_path(trainer)
            if path is not None:
                trainer.save_checkpoint(path, weights_only=False)  # the whole state; every rank calls it; rank 0 writes, atomically
                rank_zero_info(f"SIGTERM: saved {path} at step {trainer.global_step}; resume with --ckpt_path last")


class CheckpointEveryNSteps(L.Callback):
    """``last.ckpt`` also every ``every_n_steps`` training steps (0: off), so a killed run loses at most that many.

    It runs after ``StopOnNonFiniteLoss`` (the CLI lists it later), so a bad step's weights are never written.
    """

    def __init__(self, every_n_steps: int = 0) -> None:
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and not trainer.fast_dev_run:
            path = last_checkpoint_path(trainer)
            if path is not None:
                trainer.save_checkpoint(path, weights_only=False)  # the whole state; every rank calls it; rank 0 writes, atomically
