"""``zoo.app.runs.RunLogger``, the logger named in older runs' ``config.yaml``: now ``zoo.commands.runs.RunLogger``."""

from zoo.commands.runs import RunLogger

__all__ = ["RunLogger"]
