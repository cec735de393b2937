"""The networks, one file per family. Every module of this package is imported here, so a class decorated with
``@register_model`` where it is defined is all a new model takes: `zoo list`, the CLI, the tests' per-model
cases and the README's model table find it in the registry (``zoo_common.list_models``)."""

import importlib
import pkgutil

from zoo_common import get_model, list_models

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def __getattr__(name: str) -> type:
    """``from zoo.models import LeNet``: every registered model by its name."""
    try:
        return get_model(name)
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *list_models()])
