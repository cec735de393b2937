"""``zoo list``: every model and DataModule with the first line of its docstring."""

from __future__ import annotations

from pathlib import Path

import datamodules.registry  # noqa: F401  (registers the DataModules)
import zoo.models  # noqa: F401  (registers the models)
from zoo.commands.help import catalogue, show
from zoo_common import ConfigError, get_model, list_models

# beside zoo/ in a checkout (the README's table is made from one)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def main(argv: list[str]) -> None:
    if argv:
        raise ConfigError(f"zoo list takes no options (got {' '.join(argv)}); `zoo COMMAND --help` shows a command's")
    show(catalogue())


def _config_for(model: str) -> str:
    """The model's book experiment: the config in configs/ that trains it (Fashion-MNIST's where there are
    several), with what its opening comment says of it."""
    configs = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        text = path.read_text()
        if f"class_path: zoo.{model}\n" in text and not path.stem.endswith(("_cpu", "_photos")) and "finetune" not in path.stem:
            configs.append((not path.stem.endswith("fashion_mnist"), path, text))
    if not configs:
        return "—"
    _, path, text = min(configs)
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    return f"`configs/{path.name}`: {' '.join(header).rstrip('.')}"


def _accepts(cls: type) -> str:
    size = cls.min_input_size
    words = "feature vectors" if size == 0 else "any size" if size == 1 else f"{size} px and up"
    return f"{words} ({cls.accepts})" if cls.accepts else words


def readme_table() -> str:
    """The README's table of the models, from what each class declares (a test checks that the README holds it)."""
    def order(name: str) -> tuple:
        book = get_model(name).book
        return (not book, tuple(int(p) for p in book.split(".")) if book else (), name)

    lines = ["| model (`--model`) | book | config (book settings) | inputs it accepts |", "| --- | --- | --- | --- |"]
    for name in sorted(list_models(), key=order):
        cls = get_model(name)
        lines.append(f"| `{name}` | {cls.book or '—'} | {_config_for(name)} | {_accepts(cls)} |")
    return "\n".join(lines)
