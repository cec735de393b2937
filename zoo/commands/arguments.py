"""The command line before LightningCLI parses it: class choices before their options, checkpoints found and read.

What is done here works on the words of the command line, so that ``--data.root DIR --data MNIST`` means
``--data MNIST --data.root DIR``, and ``zoo predict --ckpt_path best --data.predict_path DIR`` knows its
model and DataModule (from the checkpoint) before any ``--data.X`` is parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from zoo.commands import SUBCOMMANDS, run_identity, runs
from zoo.commands.names import check_names, dropped_options, named_classes
from zoo.commands.runs import find_checkpoint
from zoo.training.runs import read_hparams
from zoo_common import ConfigError, class_name


def option(args: list[str], name: str) -> tuple[int, str | None]:
    """Index and value of the last ``name VALUE`` or ``name=VALUE`` (-1, None when absent)."""
    found = (-1, None)
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            found = (i, args[i + 1])
        elif arg.startswith(name + "="):
            found = (i, arg.partition("=")[2])
    return found


def choices_first(args: list[str]) -> list[str]:
    """Move ``--model NAME`` / ``--data NAME`` before the first ``--model.X`` / ``--data.X`` (parsing goes left to right)."""
    args = list(args)
    for key in ("model", "data"):
        i, value = option(args, f"--{key}")
        first = next((j for j, a in enumerate(args) if a.startswith(f"--{key}.") and not a.startswith(f"--{key}.help")), -1)
        if i > first >= 0:
            word = args[i : i + (1 if "=" in args[i] else 2)]
            del args[i : i + len(word)]
            args[first:first] = word
    return args


def with_checkpoint(args: list[str]) -> list[str]:
    """``--ckpt_path best|last`` becomes the newest such file of this model and data; model and data left out
    come from the checkpoint (its options too for the data; LightningCLI reloads the model's itself)."""
    runs.RESTART = run_identity.CHOSEN = None
    i, path = option(args, "--ckpt_path")
    if path in (None, "", "None", "null"):
        return args
    chosen = dict(named_classes(args))
    model, data = chosen.get("model"), chosen.get("data")
    subcommand = next((a for a in args if a in SUBCOMMANDS), None)
    if path in ("best", "last"):
        root = option(args, "--trainer.default_root_dir")[1] or "."
        found = find_checkpoint(path, root, model, data)
        what = " of ".join(filter(None, [class_name(model), class_name(data)])) or "any run"
        if found is None and subcommand == "fit" and path == "last":
            runs.RESTART = runs.find_abandoned(root, model, data)
            if runs.RESTART is not None:
                rank_zero_info(f"--ckpt_path last: {runs.RESTART} was stopped before its first checkpoint; "
                               "starting it again from scratch, in its folder")
            else:
                rank_zero_info("--ckpt_path last: no earlier checkpoint of this run, starting from scratch")
            return args[:i] + args[i + (1 if "=" in args[i] else 2) :]
        if found is None:
            raise ConfigError(f"--ckpt_path {path}: no {path}.ckpt of {what} under {root}/lightning_logs; "
                              "train one with `zoo fit` first, or give a checkpoint's path")
        if model and data:  # the run of these very settings is chosen once they are parsed (choose_run)
            run_identity.CHOSEN = (path, root, model, data)
        else:
            rank_zero_info(f"--ckpt_path {path}: {found}, the newest {path}.ckpt of {what} (give a checkpoint's "
                           "path to choose another)")
        path = str(found)
        args = args[:i] + [f"--ckpt_path={path}"] + args[i + (1 if "=" in args[i] else 2) :]
    if not Path(path).is_file():
        raise ConfigError(f"--ckpt_path {path}: no such checkpoint file")
    try:
        model_hp, data_hp = read_hparams(path)
    except Exception as e:  # noqa: BLE001 (any unreadable file: say which and why)
        raise ConfigError(f"--ckpt_path {path}: not a readable checkpoint ({type(e).__name__}: "
                          f"{(str(e).splitlines() or [''])[0]}); give a .ckpt file written by `zoo fit`") from None
    saved = class_name(model_hp.get("_class_path"))
    if saved and model and saved != class_name(model):
        raise ConfigError(f"--ckpt_path {path} holds a {saved}, but the model chosen is {class_name(model)}: "
                          f"leave --model out (the checkpoint names its model) or pass --model {saved}")
    first = args.index(subcommand) + 1 if subcommand else 0
    extra = []
    if model is None and saved:
        extra += ["--model", model_hp["_class_path"]]
    if data is None and "_class_path" in data_hp:
        data_hp.pop("_instantiator", None)
        extra += ["--data", json.dumps({"class_path": data_hp.pop("_class_path"), "init_args": data_hp})]
    return args[:first] + extra + args[first:]


def data_of_the_card(args: list[str]) -> list[str]:
    """``--model M --model.weights NAME`` of the zoo's catalogue with no DataModule chosen: the card's DataModule,
    so that ``zoo predict --model LeNetBN --model.weights CIFAR10PHOTOS_V1 --data.predict_path photos/`` needs
    nothing else (the card gives its options; predicting on files reads no dataset)."""
    chosen = dict(named_classes(args))
    weights = option(args, "--model.weights")[1]
    if "data" in chosen or not chosen.get("model") or not weights or option(args, "--ckpt_path")[1]:
        return args
    from zoo.weights import catalogue

    entry = catalogue.find(class_name(chosen["model"]), weights)
    if entry is None:
        return args
    subcommand = next((i for i, a in enumerate(args) if a in SUBCOMMANDS), -1)
    return args[:subcommand + 1] + ["--data", entry.data] + args[subcommand + 1:]


def prepare(args: list[str]) -> list[str]:
    check_names(args)
    for note in dropped_options(args):
        rank_zero_warn(note)
    return with_checkpoint(choices_first(data_of_the_card(args)))
