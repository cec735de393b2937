"""Training logic written once: every model of the zoo is a network plus one of these."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from zoo.layers.batchnorm import BatchNorm
from zoo.training.images import confusion_image
from zoo.training.loggers import tensorboard
from zoo.training.metrics import Accuracy, Count, WeightedMean
from zoo.training.resume import KEY as RESUME_KEY
from zoo.training.resume import capture, restore

STAGES = ("train", "val", "test")
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, BatchNorm)


class Checkpoint(ModelCheckpoint):
    """Lightning's checkpoint writer, its ``state_key`` made once: Lightning asks for it at every hook call
    (several a step) and the writer builds it from five settings each time."""

    @functools.cached_property
    def state_key(self) -> str:
        # under Lightning's class name, which starts the key: checkpoints keep their callbacks' states under it
        return "ModelCheckpoint" + super().state_key.removeprefix(type(self).__qualname__)


class ZooModule(L.LightningModule):
    """Base of every zoo model: subclasses set ``self.net`` and implement ``model_step``.

    Metrics are torchmetrics objects, one per stage, so that epoch values are
    exact means over every sample, also when reduced across DDP ranks. Logged
    per epoch: ``<stage>/loss``, ``<stage>/acc`` (classifiers), ``val|test/samples``;
    per logging step: ``train/loss_step``.
    """

    #: what the best checkpoint is chosen by, and in which direction
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    # What is known about a model, declared on its class: `zoo list`, the README's model table, the tests'
    # per-model cases and fine-tuning's head and stem surgery read it from here.
    #: the section of *Dive into Deep Learning* the model comes from ("" for none)
    book: ClassVar[str] = ""
    #: the inputs it accepts, in words (the README's model table)
    accepts: ClassVar[str] = ""
    #: whether the network trains faster in the channels-last (NHWC) memory layout: measured per model on the CPU
    #: (`benchmarks/channels_last.py`); ``--model.channels_last`` overrides it
    prefers_channels_last: ClassVar[bool] = False
    #: the smallest square image side, in pixels, the network can take (0: feature vectors, not images)
    min_input_size: ClassVar[int] = 0

    net: nn.Module

    def __init__(self) -> None:
        super().__init__()
        # a weighted mean, so uneven last batches (and uneven DDP shards) count per sample
        self.loss_mean = nn.ModuleDict({f"{s}_": WeightedMean() for s in STAGES})
        # evaluation counts its samples: proof that none is dropped or counted twice across ranks
        self.samples = nn.ModuleDict({f"{s}_": Count() for s in ("val", "test")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def uses_channels_last(self) -> bool:
        choice = getattr(self, "channels_last", None)
        return self.prefers_channels_last if choice is None else choice

    def setup(self, stage: str) -> None:
        # Before the optimizer is made and before a checkpoint is loaded (which copies values into this layout).
        # Only the 4-D tensors (convolution weights) change layout; a saved state dict holds the same values.
        if self.uses_channels_last:
            self.net.to(memory_format=torch.channels_last)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of images in the network's memory layout (a copy only when the layout differs). Done in the
        steps, not in ``forward``: an exported graph has no memory layout to carry."""
        if x.dim() == 4 and self.uses_channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def __setattr__(self, name: str, value) -> None:
        # Lightning names the running hook here around every hook call, a dozen times a step; torch's
        # __setattr__ checks each value against parameters, modules and buffers first (a string is none of them)
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_callbacks(self) -> list[L.Callback]:
        """Two checkpoints: the best epoch by the model's own criterion, and the latest one for resuming
        (one callback with ``save_last=True`` would refresh last.ckpt only when the best improves).
        They replace Lightning's default checkpoint; none with ``--trainer.enable_checkpointing false``."""
        if self.trainer.checkpoint_callback is None:
            return []
        return [
            Checkpoint(filename="best", monitor=self.monitor, mode=self.monitor_mode, enable_version_counter=False),
            Checkpoint(filename="last", enable_version_counter=False),
        ]

    def on_fit_start(self) -> None:
        # the trainer's layer-sync plugin (BatchNormSync) has turned sync on by now where it was asked for
        unsynced = [m for m in self.modules() if isinstance(m, BatchNorm) and not m.sync]
        if unsynced and self.trainer.world_size > 1:
            rank_zero_warn(
                f"{type(self).__name__}: its from-scratch BatchNorm uses each process's own batch statistics "
                f"over {self.trainer.world_size} processes; pass --trainer.sync_batchnorm true to compute them "
                "over the global batch."
            )

    def model_step(self, batch, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def _update_loss(self, loss: torch.Tensor, n: int, stage: str) -> None:
        if n == 0:  # an empty evaluation batch keeps DDP ranks in step; it counts nothing
            return
        # Python numbers go to the kernels as arguments: nothing here waits for the device
        self.loss_mean[f"{stage}_"].update(loss, n)
        if stage != "train":
            self.samples[f"{stage}_"].update(n)

    def epoch_metrics(self, stage: str) -> dict[str, Metric]:
        """The metrics of a stage by their log names; updated every step, logged once per epoch."""
        metrics = {f"{stage}/loss": self.loss_mean[f"{stage}_"]}
        if stage != "train":
            metrics[f"{stage}/samples"] = self.samples[f"{stage}_"]
        return metrics

    def _log_epoch(self, stage: str) -> None:
        # Computed here rather than passing the Metric objects to self.log in every step: each self.log
        # call costs about a millisecond of Lightning's bookkeeping, a tenth of a LeNet step on a CPU.
        # compute() reduces over all processes; sync_dist then averages identical values, a no-op.
        for name, metric in self.epoch_metrics(stage).items():
            self.log(name, metric.compute(), prog_bar=name.endswith("acc") or name == "val/loss", sync_dist=True)
            metric.reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.model_step(batch, "train")
        # Only at the steps Lightning writes (it writes step s when s + 1 is a multiple of log_every_n_steps,
        # or when training stops), so the point plotted at step s is step s's loss.
        every = self.trainer.log_every_n_steps
        if every and ((self.global_step + 1) % every == 0 or self.trainer.should_stop):
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    # --- resuming bit for bit: the epoch's metric states and the RNG travel in the checkpoint ------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[RESUME_KEY] = capture(self)
        logger = tensorboard(self.trainer) if self._trainer is not None else None
        if logger is not None and self.trainer.global_rank == 0 and logger._experiment is not None:
            # what was logged up to this checkpoint goes to disk with it: a kill now loses no point of the
            # curves (the writer holds events up to flush_secs, 2 minutes), and the resume logs only what follows
            logger.experiment.flush()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resume_state = checkpoint.get(RESUME_KEY)

    def on_train_start(self) -> None:
        # here rather than at loading: nothing between this and the first step draws random numbers
        saved, self._resume_state = getattr(self, "_resume_state", None), None
        if saved is not None:
            restore(self, saved)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")


class ClassificationModule(ZooModule):
    """Cross-entropy loss, accuracy per stage (``train/acc``, ``val/acc``, ``test/acc``)."""

    monitor = "val/acc"
    monitor_mode = "max"

    #: the classification head within ``net``: a child's name, or its position among ``net``'s children
    #: (negative: from the end). It starts new for another number of classes and may learn at ``head_lr_mult``.
    head: ClassVar[str | int] = -1
    #: the first convolution within ``net`` (its weight is adapted to other input channels); "" for none
    stem: ClassVar[str] = ""
    #: how ``weights`` becomes tensors in ``net``: ``zoo.weights.pretrained.load_into``, of the layer above the
    #: models (the catalogue, torchvision's names), found by name on first use
    weights_loader: ClassVar[Callable[[ClassificationModule], None] | None] = None

    def __init__(
        self,
        num_classes: int = 10,
        weights: str | None = None,
        head_lr_mult: float = 1.0,
        freeze_backbone_epochs: int = 0,
        channels_last: bool | None = None,
    ) -> None:
        """
        Args:
            num_classes: classes to tell apart (filled in from the data).
            weights: start from pretrained weights: a name from `zoo weights` (LeNet: FASHIONMNIST_V1), a
                torchvision weights name (ResNet18: DEFAULT, IMAGENET1K_V1), or the path of a zoo checkpoint
                or state dict of the same architecture.
                A head for another number of classes starts new; other input channels are adapted.
            head_lr_mult: learning rate of the classification head relative to the rest (the book's
                fine-tuning uses 10).
            freeze_backbone_epochs: train only the head for this many epochs first (BatchNorm layers of
                the frozen part stay in eval mode), then everything.
            channels_last: train and evaluate in the channels-last (NHWC) memory layout; default: the
                model's own choice, the faster layout measured on the CPU (LeNet, MnistCNN, NiN, GoogLeNet,
                ResNet18: channels-last; the BatchNorm LeNets: the usual layout). Results are the same up to
                rounding.
        """
        super().__init__()
        self.num_classes = num_classes
        self.weights = weights
        self.head_lr_mult = head_lr_mult
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.channels_last = channels_last
        self._backbone_frozen = False
        self.acc = nn.ModuleDict({f"{s}_": Accuracy() for s in STAGES})
        self.confusion = MulticlassConfusionMatrix(num_classes, validate_args=False)  # test set, drawn at the end

    def model_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(self.layout(x))
        loss = F.cross_entropy(logits, y)
        self._update_loss(loss, len(y), stage)
        if len(y):
            self.acc[f"{stage}_"].update(logits.detach(), y)
            if stage == "test":
                self.confusion.update(logits.detach(), y)
        return loss

    def epoch_metrics(self, stage: str) -> dict[str, Metric]:
        return {**super().epoch_metrics(stage), f"{stage}/acc": self.acc[f"{stage}_"]}

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(self.layout(x)).softmax(dim=-1)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        matrix = self.confusion.compute()  # summed over all processes
        self.confusion.reset()
        logger = tensorboard(self.trainer)
        if logger is not None and self.trainer.global_rank == 0:
            classes = list(getattr(self.trainer.datamodule, "classes", ()))
            logger.experiment.add_image("test/confusion_matrix", confusion_image(matrix, classes), self.global_step)

    # --- fine-tuning ---------------------------------------------------------------------------

    @property
    def head_prefix(self) -> str:
        """State-dict prefix (within ``net``) of the classification head, from the class's ``head``."""
        name = list(dict(self.net.named_children()))[self.head] if isinstance(self.head, int) else self.head
        return f"{name}."

    @property
    def stem_key(self) -> str:
        """State-dict key (within ``net``) of the first convolution's weight, or "" for none."""
        return f"{self.stem}.weight" if self.stem else ""

    def load_pretrained(self) -> None:
        """Load ``self.weights`` into the network (called at the end of each model's constructor)."""
        if not self.weights:
            return
        if ClassificationModule.weights_loader is None:  # the weights layer sits above the models: found by name
            ClassificationModule.weights_loader = importlib.import_module("zoo.weights.pretrained").load_into
        ClassificationModule.weights_loader(self)

    def _split_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        head = self.head_prefix
        backbone, head_params = [], []
        for name, p in self.net.named_parameters():
            (head_params if name.startswith(head) else backbone).append(p)
        return backbone, head_params

    def param_groups(self, lr: float) -> list[dict] | None:
        """Backbone at ``lr``, head at ``lr * head_lr_mult``; None when one group is all it takes."""
        if self.head_lr_mult == 1.0 and not self.freeze_backbone_epochs:
            return None
        backbone, head = self._split_parameters()
        # both groups from the start, so that freezing and resuming never change the optimizer's layout
        return [{"params": backbone, "name": "backbone"}, {"params": head, "lr": lr * self.head_lr_mult, "name": "head"}]

    def on_train_start(self) -> None:
        super().on_train_start()
        self.on_train_epoch_start()  # a run resumed mid-epoch starts without an epoch start

    def on_train_epoch_start(self) -> None:
        # a function of the epoch alone, so a resumed run is frozen exactly when the original was
        frozen = self.current_epoch < self.freeze_backbone_epochs
        if frozen != self._backbone_frozen:
            rank_zero_info(f"Epoch {self.current_epoch}: backbone {'frozen, training the head only' if frozen else 'unfrozen'}")
        self._backbone_frozen = frozen
        for p in self._split_parameters()[0]:
            p.requires_grad_(not frozen)
        self.train()  # re-applies eval mode to the frozen BatchNorm layers

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and getattr(self, "_backbone_frozen", False):
            # a frozen BatchNorm must not keep updating its running statistics
            head = self.head_prefix
            for name, m in self.net.named_modules():
                in_head = name == head[:-1] or name.startswith(head)
                if not in_head and isinstance(m, BATCH_NORMS):
                    m.eval()
        return self


class RegressionModule(ZooModule):
    """Mean squared error (``train/loss``, ``val/loss``, ``test/loss``)."""

    def model_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        y_hat = self(x)
        loss = F.mse_loss(y_hat, y)
        self._update_loss(loss, len(y), stage)
        return loss

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)
