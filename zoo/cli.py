"""The ``zoo`` command: LightningCLI over every registered model and DataModule, through its public hooks."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import torch
from jsonargparse import ArgumentError, lazy_instance
from jsonargparse.typing import NonNegativeInt
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import ArgsType, LightningCLI, instantiate_class
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

import datamodules  # noqa: F401  (registers the DataModules)
import zoo  # noqa: F401  (registers the models)
from datamodules.base import InMemoryDataModule
from zoo.app import arguments, checks, messages, runs
from zoo.app.help import short_help
from zoo.app.predictions import PredictionsCSV
from zoo.training import callbacks as cb
from zoo.training.batchnorm_sync import BatchNormSync
from zoo.training.module import ZooModule
from zoo_common import ZooError, get_datamodule, get_model, list_datamodules, list_models

# What the data determines and the model must agree with: typed once, on the data.
LINKED = ("num_classes", "in_channels", "input_size", "num_features")


def _quiet() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        # Lightning's adverts, and its note that the model's own checkpoints replace the default one
        logging.getLogger(name).addFilter(lambda r: not str(r.msg).startswith(("💡 Tip", "The following callbacks returned")))
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # the seed is in config.yaml
    for message in (r".*isinstance\(treespec, LeafSpec\).*",  # raised inside Lightning on torch 2.14
                    r".*does not have many workers.*",  # the zoo's loaders slice tensors; workers only add overhead
                    r"torch\.distributed\.nn\.functional\.all_reduce is deprecated",  # its replacement is private
                    r"The dirpath has changed from"):  # evaluation restores callback state into a new log folder
        warnings.filterwarnings("ignore", message=message)


class ZooCLI(LightningCLI):
    def own(self, config):
        """This subcommand's part of a config (the whole of it when built with run=False)."""
        return config[self.subcommand] if self.subcommand else config

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_optimizer_args((torch.optim.Optimizer,))
        parser.set_defaults({
            "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}},  # the book's minibatch SGD
            # Lightning's default logger, less the placeholder hp_metric (HparamsWithMetrics writes the real ones)
            "trainer.logger": lazy_instance(TensorBoardLogger, save_dir=".", version=SLURMEnvironment.job_id(),
                                            default_hp_metric=False),
        })
        for name in LINKED:
            parser.link_arguments(f"data.init_args.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_argument("--checkpoint_every_n_steps", type=NonNegativeInt, default=0,
                            help="also write last.ckpt every N training steps (0: only at the end of each epoch)")

    def parse_arguments(self, parser, args: ArgsType) -> None:
        if args is None or isinstance(args, list):
            args = arguments.prepare(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        config = self.own(self.config)
        checks.check_device(config.trainer)
        checks.check_optimizer(config)
        checks.prepare_weights(config)
        # what every run shows and keeps; the checkpoints come from the model (configure_callbacks)
        monitors = [cb.StopOnNonFiniteLoss(), cb.CheckpointOnSigterm(), cb.InputGrid(), cb.SamplesPerSecond(),
                    cb.HparamsWithMetrics(), cb.CheckpointEveryNSteps(config.checkpoint_every_n_steps), PredictionsCSV()]
        if config.trainer.get("logger") is not False:
            monitors.append(LearningRateMonitor(logging_interval="epoch"))
        if config.trainer.get("enable_progress_bar") is not False:
            monitors.append(cb.ProgressBar())
        self.trainer_defaults["callbacks"] = monitors

    def after_instantiate_classes(self) -> None:
        checks.check_inputs(self.model, self.datamodule)

    def instantiate_trainer(self, **kwargs):
        trainer = self.own(self.config_init).trainer
        if trainer.get("sync_batchnorm"):  # Lightning's SyncBatchNorm conversion, and the zoo's own BatchNorm
            plugins = trainer.get("plugins") or []
            kwargs["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), BatchNormSync()]
        return super().instantiate_trainer(**kwargs)

    def configure_optimizers(self, lightning_module, optimizer, lr_scheduler=None):
        """LightningCLI's optimizer and scheduler, with the model's parameter groups (fine-tuning) when it has them."""
        groups_of = getattr(lightning_module, "param_groups", None)
        groups = groups_of(optimizer.defaults["lr"]) if groups_of else None
        if groups:
            optimizer = type(optimizer)(groups, **optimizer.defaults)
            if lr_scheduler is not None:  # the same scheduler, on the new optimizer
                lr_scheduler = instantiate_class(optimizer, self.own(self.config_init).lr_scheduler)
        return LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)

    def after_fit(self) -> None:
        for stopper in self.trainer.early_stopping_callbacks:
            if stopper.stopped_epoch:
                rank_zero_info(f"Stopped early at epoch {stopper.stopped_epoch}: {stopper.stopping_reason_message}")

    def after_validate(self) -> None:
        runs.write_metrics(self.trainer, self.model, self.datamodule, "validate", self.config.validate.get("ckpt_path"))

    def after_test(self) -> None:
        runs.write_metrics(self.trainer, self.model, self.datamodule, "test", self.config.test.get("ckpt_path"))

    def after_predict(self) -> None:
        errors = getattr(self.datamodule, "predict_errors", {})
        if errors and self.trainer.global_rank == 0:
            print("\n".join(f"error: {reason}" for reason in errors.values()), file=sys.stderr)
        if errors:
            sys.exit(f"{len(errors)} of {len(errors) + len(self.datamodule.predict_files)} files could not be "
                     "read (listed above); the others are in predictions.csv")


def cli_main(args: ArgsType = None, run: bool = True) -> ZooCLI:
    _quiet()
    return ZooCLI(
        ZooModule, InMemoryDataModule, subclass_mode_model=True, subclass_mode_data=True, seed_everything_default=0,
        trainer_defaults={"plugins": {"class_path": "zoo.training.checkpoint_io.AtomicCheckpointIO"}}, save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False, **{sub: {"exit_on_error": False} for sub in arguments.SUBCOMMANDS},
                       "description": "The d2l model zoo. `zoo list` lists the models and DataModules."},
        args=args, run=run,
    )


def main(args: ArgsType = None) -> None:
    """The ``zoo`` command: one line and exit 2 for bad input, a message for any failure (ZOO_TRACEBACK=1: the trace)."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv == ["list"]:
        for title, names, get in (("Models (--model)", list_models(), get_model),
                                  ("DataModules (--data)", list_datamodules(), get_datamodule)):
            print(title + "\n" + "\n".join(f"  {n:<18}{(get(n).__doc__ or '').strip().splitlines()[0]}" for n in names))
        return
    if len(argv) == 2 and argv[0] in arguments.SUBCOMMANDS and argv[1] in ("-h", "--help"):
        print(short_help(argv[0]))
        return
    if argv[-2:] in (["--help", "all"], ["-h", "all"]):
        argv = argv[:-1]
    try:
        sys.argv = sys.argv[:1]  # the words are passed on as args
        cli_main(argv)
    except SIGTERMException:
        _fail(None, "stopped by SIGTERM (last.ckpt saved where a run was training); resume with --ckpt_path last", 143)
    except Exception as e:  # noqa: BLE001 (anything else still gets a message instead of a trace)
        if isinstance(e, ArgumentError):
            _fail(e, f"error: {messages.parse_error(str(e))}", 2)
        cause = messages.zoo_cause(e)  # jsonargparse and Lightning wrap what constructors and hooks raise
        if cause is not None:
            _fail(e, f"error: {messages.one_line(cause)}", 2)
        _fail(e, f"error: {type(e).__name__}: {messages.one_line(e)} (set ZOO_TRACEBACK=1 to see where it came from)", 1)
    finally:
        # Lightning leaves the process group up; gloo's threads can abort the interpreter's exit otherwise
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _fail(error: BaseException | None, message: str, code: int) -> None:
    if error is not None and os.environ.get("ZOO_TRACEBACK"):
        raise error
    print(message, file=sys.stderr)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
