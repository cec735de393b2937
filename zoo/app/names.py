"""Checking model and DataModule names before LightningCLI does, to answer with the valid choices."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import yaml
from zoo_common import ConfigError, list_datamodules, list_models


def named_classes(args: list[str]) -> Iterator[tuple[str, str]]:
    """(key, value) of every --model/--data given on the command line or in a -c config file."""
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(args):
            value = args[i + 1]
        if key in ("--model", "--data"):
            yield key[2:], value
        elif key in ("-c", "--config") and value.endswith((".yaml", ".yml")) and Path(value).is_file():
            try:
                config = yaml.safe_load(Path(value).read_text()) or {}
            except yaml.YAMLError:
                continue  # jsonargparse reports the syntax error itself
            for section in ("model", "data"):
                entry = config.get(section)
                name = entry.get("class_path") if isinstance(entry, dict) else entry
                if isinstance(name, str):
                    yield section, name


def import_class(dotted: str) -> type | None:
    """The class ``package.module.Class`` names (the user's own, say), or None where there is none."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        return None


def check_names(args: list[str]) -> None:
    """Name the valid choices when a model or DataModule name is unknown (jsonargparse's message does not)."""
    known = {"model": list_models(), "data": list_datamodules()}
    for key, value in named_classes(args):
        # a file is a config of its own, which jsonargparse checks
        if value in known[key] or Path(value).exists() or import_class(value) is not None:
            continue
        what = "model" if key == "model" else "DataModule"
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(known[key])} (`zoo list` describes them)")
