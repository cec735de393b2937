"""``zoo weights``: every trained weights file of the catalogue; ``zoo weights MODEL NAME``: one's card."""

from __future__ import annotations

from zoo.commands.help import show
from zoo.weights.table import card, weights_table
from zoo_common import ConfigError


def main(argv: list[str]) -> None:
    if len(argv) not in (0, 2):
        raise ConfigError("usage: zoo weights (every entry), or zoo weights MODEL NAME (one card)")
    show(weights_table() if not argv else card(*argv))
