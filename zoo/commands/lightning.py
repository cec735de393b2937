"""``zoo fit|validate|test|predict``: LightningCLI over every registered model and DataModule, through its public
hooks; and the same parser for the commands that build a model the way ``zoo predict`` does (export, serve)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Optional

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import ArgsType, LightningCLI, instantiate_class
from lightning.pytorch.utilities import rank_zero_info

import datamodules.registry  # noqa: F401  (registers the DataModules)
import zoo.models  # noqa: F401  (registers the models)
from datamodules.base import InMemoryDataModule
from zoo import callbacks as cb
from zoo.callbacks.predictions import report_unreadable
from zoo.commands import SUBCOMMANDS, arguments, checks, defaults, run_identity, runs
from zoo.commands.help import short_help, show
from zoo.layers.batchnorm_sync import BatchNormSync
from zoo.training.module import ZooModule
from zoo.training.profiler import NoProfiler
from zoo.weights.data_settings import prepare_weights
from zoo.weights.table import compare_line

# What the data determines and the model must agree with: typed once, on the data.
LINKED = ("num_classes", "in_channels", "input_size", "num_features")


def _plain_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"  # not the file and line of the code that warns: the user has no use for them


def _quiet() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        # Lightning's adverts, and its note that the model's own checkpoints replace the default one
        logging.getLogger(name).addFilter(lambda r: not str(r.msg).startswith(("💡 Tip", "The following callbacks returned")))
        logging.getLogger(name).addFilter(cb.DEVICE_LINES)  # said once the checks have passed
    warnings.formatwarning = _plain_warning
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # the seed is in config.yaml
    for message in (r".*isinstance\(treespec, LeafSpec\).*",  # raised inside Lightning on torch 2.14
                    r".*does not have many workers.*",  # the zoo's loaders slice tensors; workers only add overhead
                    r"torch\.distributed\.nn\.functional\.\w+ is deprecated",  # inside Lightning's gathers; its replacement is private
                    r"Couldn't infer the batch indices",  # predict batches carry their own (PredictionsCSV)
                    # a run's folder is its own (claimed with mkdir): the only checkpoints in it are the run's
                    r"Checkpoint directory .* exists and is not empty",
                    # the rate is already all processes' together (SamplesPerSecond), logged by rank 0 alone
                    r"It is recommended to use `self.log\('train/samples_per_sec'",
                    # the step curve spans epochs (train/loss_step every log_every_n_steps steps of the run)
                    r"The number of training batches \(\d+\) is smaller than the logging interval"):
        warnings.filterwarnings("ignore", message=message)


class ZooCLI(LightningCLI):
    #: callbacks a command adds to the run's own (``main(argv, callbacks=...)``)
    extra_callbacks: Sequence[Callback] = ()

    def own(self, config):
        """This subcommand's part of a config (the whole of it when built with run=False)."""
        return config[self.subcommand] if self.subcommand else config

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_optimizer_args((torch.optim.Optimizer,))
        parser.set_defaults({
            "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}},  # the book's minibatch SGD
            "trainer.logger": defaults.logger(),
        })
        for name in LINKED:
            parser.link_arguments(f"data.init_args.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_argument("--checkpoint_every_n_steps", type=NonNegativeInt, default=0,
                            help="also write last.ckpt every N training steps (0: only at the end of each epoch)")
        parser.add_argument("--output", type=Optional[str], default=None,
                            help="zoo predict: the CSV file to write (default: a new predictions.csv, predictions_1.csv, "
                                 "... in the checkpoint's run folder; earlier ones are kept)")
        parser.add_argument("--top_k", type=PositiveInt, default=1,
                            help="zoo predict: the K most probable classes of each input, each with its probability")

    def parse_arguments(self, parser, args: ArgsType) -> None:
        if args is None or isinstance(args, list):  # the words, reordered and completed from the checkpoint
            self.config = parser.parse_args(arguments.prepare(sys.argv[1:] if args is None else args))
        else:
            super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        config = self.own(self.config)
        run_identity.choose_run(config, self.subcommand)
        checks.check_device(config.trainer)
        checks.check_optimizer(config)
        prepare_weights(config, self.subcommand)
        if self.subcommand == "fit" and config.get("ckpt_path"):
            runs.check_not_finished(config.ckpt_path, config.trainer)
        runs.place_logger(config, self.subcommand)
        if self.subcommand in ("validate", "test", "predict"):
            # a checkpoint from outside any run: evaluation writes no checkpoint, its best-checkpoint state is moot
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
        # rebuilt per run, from its options; then what the command adds (a `zoo tune` trial's reporter)
        self.trainer_defaults["callbacks"] = defaults.callbacks(config, self.extra_callbacks)

    def instantiate_trainer(self, **kwargs):
        checks.check_inputs(self.model, self.datamodule)  # before the trainer, which starts talking
        trainer = self.own(self.config_init).trainer
        if trainer.get("profiler") is None:  # --trainer.profiler simple|advanced|... still profiles
            kwargs["profiler"] = NoProfiler()
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
        line = compare_line(type(self.model).__name__, getattr(self.model, "weights", None),
                            {k: v.item() for k, v in self.trainer.callback_metrics.items()})
        if line:
            rank_zero_info(line)

    def after_predict(self) -> None:
        report_unreadable(self.datamodule, self.trainer.global_rank)


def cli_main(args: ArgsType = None, run: bool = True, cls: type[ZooCLI] = ZooCLI) -> ZooCLI:
    _quiet()
    return cls(
        ZooModule, InMemoryDataModule, subclass_mode_model=True, subclass_mode_data=True, seed_everything_default=0,
        trainer_defaults={"plugins": defaults.PLUGINS, "max_epochs": defaults.MAX_EPOCHS},
        save_config_callback=cb.SaveRunConfig, save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False, **{sub: {"exit_on_error": False} for sub in SUBCOMMANDS},
                       "description": "The d2l model zoo. `zoo list` lists the models and DataModules."},
        args=args, run=run,
    )


class ModelCLI(ZooCLI):
    # action(model, datamodule, ckpt_path or None, weights name or None)
    action: Callable | None = None

    def _run_subcommand(self, subcommand: str) -> None:
        config = self.config[subcommand]
        ckpt = config.get("ckpt_path")
        if ckpt:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["state_dict"])
            saved = state.get(type(self.datamodule).__qualname__)
            if saved is not None:
                self.datamodule.load_state_dict(saved)  # ImageFolder: the classes it was trained on
        weights = (config.model.get("init_args") or {}).get("weights")
        type(self).action(self.model.eval(), self.datamodule, ckpt, weights)


def with_model(args: list[str], action: Callable) -> None:
    """Parse ``args`` as ``zoo predict`` would and call ``action`` on what it makes."""
    ModelCLI.action = staticmethod(action)
    sys.argv = sys.argv[:1] + ["predict", *args]  # the zoo's messages name the subcommand from these words
    cli_main(cls=ModelCLI)


def main(argv: list[str], callbacks: Sequence[Callback] = ()) -> None:
    """``zoo SUBCOMMAND ...`` (the subcommand among ``argv``), with ``callbacks`` added to the run's own."""
    if len(argv) == 2 and argv[0] in SUBCOMMANDS and argv[1] in ("-h", "--help"):
        show(short_help(argv[0]))
        return
    if argv[-2:] in (["--help", "all"], ["-h", "all"]):
        argv = argv[:-1]
    sys.argv = sys.argv[:1] + argv  # DDP starts the other processes with these words
    ZooCLI.extra_callbacks = tuple(callbacks)
    try:
        cli_main()
    finally:
        # Lightning leaves the process group up; gloo's threads can abort the interpreter's exit otherwise
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def fit(argv: list[str]) -> None:
    main(["fit", *argv])


def validate(argv: list[str]) -> None:
    main(["validate", *argv])


def test(argv: list[str]) -> None:
    main(["test", *argv])


def predict(argv: list[str]) -> None:
    main(["predict", *argv])
