"""``zoo list``: every model and DataModule with the first line of its docstring."""

from __future__ import annotations

import datamodules  # noqa: F401  (registers the DataModules)
import zoo.models  # noqa: F401  (registers the models)
from zoo.commands.help import catalogue, show
from zoo_common import ConfigError


def main(argv: list[str]) -> None:
    if argv:
        raise ConfigError(f"zoo list takes no options (got {' '.join(argv)}); `zoo COMMAND --help` shows a command's")
    show(catalogue())
