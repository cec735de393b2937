"""The ``zoo`` command: LightningCLI over every registered model and DataModule."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, instantiate_class
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

import datamodules  # noqa: F401  (registers the DataModules)
import zoo  # noqa: F401  (registers the models)
from datamodules.base import InMemoryDataModule
from zoo.training.checkpoint_io import AtomicCheckpointIO
from zoo_common import atomic_write
from zoo.training.module import ClassificationModule, ZooModule
from zoo.training.callbacks import InputGrid, ProgressBar
from zoo.app.runs import find_checkpoint, read_hparams
from zoo_common import InputShapeError, ZooError
from zoo.training.callbacks import HparamsWithMetrics, SamplesPerSecond
from zoo.app.names import check_names, import_class
from zoo.app.predictions import write_predictions
from zoo.training.finetune import torchvision_weights
from zoo_common import get_datamodule, get_model, list_datamodules, list_models
from zoo.training.callbacks import CheckpointOnSigterm, StopOnNonFiniteLoss

# What the data determines and the model must agree with: typed once, on the data.
LINKED = ("num_classes", "in_channels", "input_size", "num_features")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def _quiet() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropAdverts())
    # raised inside Lightning on torch 2.14; nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


class ZooCLI(LightningCLI):
    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        # --model may be left out when --ckpt_path names a checkpoint, which records its model
        parser.add_lightning_class_args(self._model_class, "model", subclass_mode=True, required=False)
        parser.add_lightning_class_args(self._datamodule_class, "data", subclass_mode=True, required=False)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_optimizer_args((torch.optim.Optimizer,))
        # the book trains everything with minibatch SGD
        parser.set_defaults(optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}})
        for name in LINKED:
            parser.link_arguments(f"data.init_args.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_argument(
            "--checkpoint_every_n_steps", type=int, default=0,
            help="also write last.ckpt every N training steps (0: only at the end of each epoch)",
        )
        parser.add_argument(
            "--predict_path", type=Optional[str], default=None,
            help="predict only: an image file or a folder of images to classify; a CSV of the results is written",
        )

    def after_instantiate_classes(self) -> None:
        self._check_inputs()
        path = self._get(self.config, "predict_path")
        if path is not None:
            if self.subcommand != "predict":
                self.parser.error("--predict_path is for `zoo predict`")
            if not hasattr(self.datamodule, "predict_path"):
                self.parser.error(f"--predict_path: {type(self.datamodule).__name__} does not read image files")
            self.datamodule.predict_path = path

    def _check_inputs(self) -> None:
        """A model that cannot take the data's inputs is refused now, not at the first batch."""
        shape = getattr(self.datamodule, "input_shape", None)
        if shape is None or not isinstance(self.model, ZooModule):
            return
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(torch.zeros(2, *shape))
        except RuntimeError as e:
            raise InputShapeError(
                f"{type(self.model).__name__} cannot take the inputs of {type(self.datamodule).__name__} "
                f"(shape {tuple(shape)}): {str(e).splitlines()[0]}. Choose a model made for this data "
                "(`zoo list`), or a resize (--data.resize) where the model needs larger images."
            ) from None
        finally:
            self.model.train(was_training)

    def predict(self, **kwargs) -> None:
        """Lightning's predict, then the predictions as CSV: file (or test-set index), class, probability."""
        batches = self.trainer.predict(**kwargs)
        if self.trainer.global_rank != 0 or not batches or not isinstance(self.model, ClassificationModule):
            return
        path = Path(self.trainer.log_dir or ".") / "predictions.csv"
        files = write_predictions(path, torch.cat(batches), self.datamodule)
        print(f"Predictions for {len(files)} input(s) written to {path}")
        errors = getattr(self.datamodule, "predict_errors", {})
        for reason in errors.values():
            print(f"error: {reason}", file=sys.stderr)
        if errors:
            sys.exit(f"{len(errors)} of {len(errors) + len(files)} files could not be read (listed above); "
                     f"the others are in {path}")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        if args is None or isinstance(args, list):
            check_names(parser, sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        self._resolve_ckpt_path(subcommand, config)
        self._fill_from_checkpoint(subcommand, config)
        for key in ("model", "data"):
            if self.config[subcommand].get(key) is None:
                parser.error(f"{subcommand}: choose a {key} with --{key} NAME or -c CONFIG (or --ckpt_path CHECKPOINT)")

    def _resolve_ckpt_path(self, subcommand: str, config) -> None:
        which = config.get("ckpt_path")
        if which not in ("best", "last"):
            return
        model = config.model.class_path if config.get("model") else None
        data = config.data.class_path if config.get("data") else None
        root = config.trainer.get("default_root_dir") or "."
        path = find_checkpoint(which, root, model, data)
        if path is not None:
            rank_zero_info(f"--ckpt_path {which}: {path}")
            config.ckpt_path = str(path)
        elif subcommand == "fit" and which == "last":
            rank_zero_info("--ckpt_path last: no earlier checkpoint of this run, starting from scratch")
            config.ckpt_path = None
        else:
            what = " of ".join(filter(None, [model and model.rsplit(".", 1)[-1], data and data.rsplit(".", 1)[-1]]))
            self.parser.error(f"--ckpt_path {which}: no {which}.ckpt of {what or 'any run'} under {root}/lightning_logs")

    def _fill_from_checkpoint(self, subcommand: str, config) -> None:
        """Model and data left out on the command line come from the checkpoint's saved hyperparameters."""
        path = config.get("ckpt_path")
        if not path:
            return
        if not Path(path).is_file():
            self.parser.error(f"--ckpt_path {path}: no such checkpoint file")
        try:
            model_hp, data_hp = read_hparams(path)
        except Exception as e:  # noqa: BLE001 (any unreadable file: say which and why)
            self.parser.error(f"--ckpt_path {path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})")
        saved = model_hp.get("_class_path", "").rsplit(".", 1)[-1]
        chosen = config.model.class_path.rsplit(".", 1)[-1] if config.get("model") else None
        if saved and chosen and saved != chosen:
            self.parser.error(f"--ckpt_path {path} holds a {saved}, but the model chosen is {chosen}: "
                              f"leave --model out (the checkpoint names its model) or pass --model {saved}")
        if config.get("model") and config.get("data"):
            return
        update = {}
        if not config.get("model") and "_class_path" in model_hp:
            update["model"] = {"class_path": model_hp["_class_path"]}
        if not config.get("data") and "_class_path" in data_hp:
            data_hp.pop("_instantiator", None)
            update["data"] = {"class_path": data_hp.pop("_class_path"), "init_args": data_hp}
        if update:
            self.config = self.parser.parse_object({subcommand: update}, self.config)

    def after_validate(self) -> None:
        self._write_metrics("validate")

    def after_test(self) -> None:
        self._write_metrics("test")

    def _write_metrics(self, stage: str) -> None:
        """The metrics as JSON beside the run's logs, for scripts (the table on screen is Lightning's)."""
        folder = Path(self.trainer.log_dir or ".")  # a collective under DDP: every rank asks
        if self.trainer.global_rank != 0:
            return
        record = {
            "stage": stage,
            "model": type(self.model).__name__,
            "data": type(self.datamodule).__name__,
            "ckpt_path": self.config[self.subcommand].get("ckpt_path"),
            "world_size": self.trainer.world_size,
            "metrics": {k: v.item() for k, v in self.trainer.callback_metrics.items()},
        }
        path = folder / f"{stage}_metrics.json"
        atomic_write(path, lambda out: out.write((json.dumps(record, indent=2) + "\n").encode()))
        rank_zero_info(f"Metrics written to {path}")

    def before_instantiate_classes(self) -> None:
        if self.subcommand != "fit":
            # evaluation restores a checkpoint's callback state into a new log folder; nothing is lost
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
        config = self.config[self.subcommand] if self.subcommand else self.config
        model_args = config.model.get("init_args") if config.get("model") else None
        if not model_args or not model_args.get("weights"):
            return
        if config.get("ckpt_path"):
            # the checkpoint holds the trained weights; the pretrained ones it started from may not even be here
            rank_zero_info(f"--ckpt_path given: not loading --model.weights {model_args.weights}")
            model_args.weights = None
            return
        self._normalise_like_weights(config, model_args.weights)

    def _normalise_like_weights(self, config, weights: str) -> None:
        """torchvision weights were trained on inputs normalised their way: the data follows (or we say why not)."""
        tv = torchvision_weights(config.model.class_path.rsplit(".", 1)[-1], weights)
        data_args = config.data.get("init_args") if config.get("data") else None
        if tv is None or data_args is None or "normalize" not in data_args:
            return
        transforms = tv.transforms()
        data_class = import_class(config.data.class_path)
        channels = data_class.in_channels
        mean, std = list(transforms.mean), list(transforms.std)
        if channels == 1:  # the gray image stands for R = G = B: one channel with the average statistics
            mean, std = [sum(mean) / 3], [sum(std) / 3]
        data_args.normalize, data_args.mean, data_args.std = True, mean, std
        rank_zero_info(f"{tv}: normalising the data with its mean {mean} and std {std}")
        size = data_args.get("resize") or data_class.native_size
        if size != transforms.crop_size[0]:
            rank_zero_warn(f"{tv} was trained on {transforms.crop_size[0]} px images; the data runs at {size} px "
                           f"(--data.resize {transforms.crop_size[0]} matches it)")

    def configure_optimizers(self, lightning_module, optimizer, lr_scheduler=None):
        """LightningCLI's optimizer and scheduler, with the model's parameter groups (fine-tuning) when it has them."""
        groups_of = getattr(lightning_module, "param_groups", None)
        groups = groups_of(optimizer.defaults["lr"]) if groups_of else None
        if groups:
            optimizer = type(optimizer)(groups, **optimizer.defaults)
            if lr_scheduler is not None:
                lr_scheduler = instantiate_class(optimizer, self._get(self.config_init, "lr_scheduler"))
        return LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        # Lightning's default checkpoint becomes two: the best epoch by the model's own criterion, and the
        # latest one for resuming (one callback with save_last=True refreshes last.ckpt only when best improves)
        defaults = [cb for cb in trainer.callbacks if type(cb) is ModelCheckpoint and cb.monitor is None]
        if defaults and isinstance(self.model, ZooModule):
            i = trainer.callbacks.index(defaults[0])
            checkpoints = [
                ModelCheckpoint(filename="best", monitor=self.model.monitor, mode=self.model.monitor_mode,
                                enable_version_counter=False),
                ModelCheckpoint(filename="last", enable_version_counter=False),
            ]
            every = self._get(self.config, "checkpoint_every_n_steps") or 0
            if every < 0:
                self.parser.error(f"--checkpoint_every_n_steps {every}: give a number of steps >= 0")
            if every:  # the same last.ckpt, also mid-epoch, so a killed run loses at most N steps
                checkpoints.append(ModelCheckpoint(filename="last", every_n_train_steps=every,
                                                   enable_version_counter=False))
            trainer.callbacks[i : i + 1] = checkpoints
        # what every run shows in TensorBoard; before the checkpoint callbacks, which Lightning keeps last
        monitors = [StopOnNonFiniteLoss(), CheckpointOnSigterm(), InputGrid(), SamplesPerSecond(), HparamsWithMetrics()]
        if trainer.loggers:
            monitors.append(LearningRateMonitor(logging_interval="epoch"))
        trainer.callbacks[0:0] = monitors
        if isinstance(trainer.logger, TensorBoardLogger) and self._get(self.config, "trainer").get("logger") in (None, True):
            # Lightning's default logger writes a placeholder hp_metric; HparamsWithMetrics writes the real results
            trainer.logger._default_hp_metric = False
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        # Lightning's default bar redraws on every step; ours at most a few times a second
        bars = [cb for cb in trainer.callbacks if type(cb) in (TQDMProgressBar, RichProgressBar)]
        if bars:
            trainer.callbacks[trainer.callbacks.index(bars[0])] = ProgressBar()
        return trainer


def cli_main(args: ArgsType = None, run: bool = True) -> ZooCLI:
    _quiet()
    return ZooCLI(
        ZooModule,
        InMemoryDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": "The d2l model zoo. `zoo list` lists the models and DataModules."},
        args=args,
        run=run,
    )


def print_catalogue() -> None:
    """``zoo list``: every model and DataModule with its one-line description."""
    for title, names, get in (("Models (--model)", list_models(), get_model), ("DataModules (--data)", list_datamodules(), get_datamodule)):
        print(title)
        width = max(map(len, names))
        for name in names:
            doc = (get(name).__doc__ or "").strip().splitlines()
            print(f"  {name:<{width}}  {doc[0] if doc else ''}")


def main(args: ArgsType = None) -> None:
    """The ``zoo`` command: a clear message and a non-zero exit for every failure (ZOO_TRACEBACK=1 for the trace)."""
    argv = sys.argv[1:] if args is None else args
    if argv == ["list"]:
        print_catalogue()
        return
    try:
        cli_main(args)
    except ZooError as e:
        _fail(e, f"error: {e}", 2)
    except SIGTERMException:
        _fail(None, "stopped by SIGTERM (last.ckpt saved where a run was training); resume with --ckpt_path last", 143)
    except Exception as e:  # noqa: BLE001 (anything else still gets a message instead of a trace)
        cause = _zoo_cause(e)  # jsonargparse wraps what a constructor raises
        if cause is not None:
            _fail(e, f"error: {cause}", 2)
        _fail(e, f"error: {type(e).__name__}: {e}\n(set ZOO_TRACEBACK=1 to see where it came from)", 1)
    finally:
        # Lightning leaves the process group up; gloo's threads can abort the interpreter's exit otherwise
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _zoo_cause(error: BaseException) -> ZooError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ZooError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _fail(error: BaseException | None, message: str, code: int) -> None:
    if error is not None and os.environ.get("ZOO_TRACEBACK"):
        raise error
    print(message, file=sys.stderr)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
