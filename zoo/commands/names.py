"""Checking model and DataModule names before LightningCLI does, to answer with the valid choices."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from pathlib import Path

import yaml

from zoo_common import (
    ConfigError,
    get_datamodule,
    get_model,
    import_class,
    list_datamodules,
    list_models,
)


def _options(args: list[str]) -> Iterator[tuple[str, str]]:
    """(word, the value after it) of every word: ``--key value`` and ``--key=value`` alike."""
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(args):
            value = args[i + 1]
        yield key, value


def _is_config(key: str, value: str) -> bool:
    return key in ("-c", "--config") and value.endswith((".yaml", ".yml")) and Path(value).is_file()


def named_classes(args: list[str]) -> Iterator[tuple[str, str]]:
    """(key, value) of every --model/--data given on the command line or in a -c config file."""
    for key, value in _options(args):
        if key in ("--model", "--data"):
            yield key[2:], value
        elif _is_config(key, value):
            config = read_config(value)
            for section in ("model", "data"):
                entry = config.get(section)
                name = entry.get("class_path") if isinstance(entry, dict) else entry
                if isinstance(name, str):
                    yield section, name


def read_config(path: str) -> dict:
    """A config file's content; a YAML syntax error is a ConfigError that names the file, line and column."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"-c {path}{where}: not valid YAML ({problem}); fix the file there") from None
    except OSError as e:
        raise ConfigError(f"-c {path}: cannot read it ({e.strerror})") from None
    return config if isinstance(config, dict) else {}


def check_names(args: list[str]) -> None:
    """Name the valid choices when a model or DataModule name is unknown (jsonargparse's message does not)."""
    known = {"model": list_models(), "data": list_datamodules()}
    for key, value in named_classes(args):
        # a file is a config of its own, which jsonargparse checks
        if value in known[key] or Path(value).exists() or import_class(value) is not None:
            continue
        what = "model" if key == "model" else "DataModule"
        short = value.rsplit(".", 1)[-1]
        close = [name for name in known[key] if name.lower() == short.lower()]
        close = close or difflib.get_close_matches(short, known[key], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"unknown {what} {value!r}; {hint}choose one of: {', '.join(known[key])} "
                          "(`zoo list` describes them)")


def dropped_options(args: list[str]) -> list[str]:
    """Options of a config's model or DataModule that another one chosen later on the command line does not
    take: jsonargparse drops them without a word, so the CLI warns."""
    notes = []
    chosen: dict[str, tuple[str, dict, str]] = {}
    for key, value in _options(args):
        if _is_config(key, value):
            config = read_config(value)
            for section in ("model", "data"):
                entry = config.get(section)
                if isinstance(entry, dict) and isinstance(entry.get("class_path"), str):
                    chosen[section] = (entry["class_path"], dict(entry.get("init_args") or {}), value)
        elif key in ("--model", "--data") and key[2:] in chosen:
            section = key[2:]
            old, options, config_file = chosen.pop(section)
            new = _registered(section, value)
            if new is None or old.rsplit(".", 1)[-1] == new.__name__:
                continue
            takes = _accepted(new)
            lost = sorted(k for k in options if k not in takes)
            if lost:
                notes.append(f"--{section} {value} replaces the {old.rsplit('.', 1)[-1]} of {config_file}: its "
                             f"option(s) {', '.join(lost)} do not apply and are dropped")
    return notes


def _accepted(cls: type) -> set[str]:
    """The keyword arguments a class's constructor takes, through ``**kwargs`` handed on to its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def _registered(section: str, name: str) -> type | None:
    try:
        return (get_model if section == "model" else get_datamodule)(name)
    except KeyError:
        return import_class(name)
