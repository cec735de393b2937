"""A study of ``zoo tune``: its sampler and pruner, made or continued by name, refused when the name is taken
by another search."""

from __future__ import annotations

import time
import warnings

import optuna

from zoo.commands.tune import space as spaces
from zoo_common import ConfigError

SAMPLERS = ("random", "tpe", "grid")
PRUNERS = ("median", "halving", "none")


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid, less its ``study.stop()`` once every point is taken: that works inside ``study.optimize``
    only (ask and tell raises); the worker stops at the grid's size itself."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def make_sampler(name: str, space: dict, seed: int | None, grid_points: int):
    if name == "tpe":  # random for the first 10 trials, then a model of where the good values lie
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    if name == "grid":
        return GridSampler(spaces.grid(space, grid_points), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str):
    """Pruners see one step per epoch. Median: stop a trial whose metric is worse than the median of the
    trials before it at the same epoch (after 5 trials, from the second epoch on). Halving: successive
    halving, a third of the trials go on at epochs 1, 3, 9, ..."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _differs(saved: dict, mine: dict) -> list[str]:
    # zoo fit's options may differ between workers (where the data is, how many devices a machine has)
    return [key for key in ("space", "metric", "direction") if saved.get(key) != mine.get(key)]


def open_study(name: str, storage, settings: dict, sampler, pruner) -> optuna.Study:
    """The study ``name``: made with ``settings`` (space, zoo fit's options, metric, direction) or continued
    when its settings are these. ConfigError when it exists with other settings."""
    mine = {key: settings[key] for key in ("space", "fit_args", "metric", "direction")}  # direction last: see below
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        # two workers starting at once: one makes it, the other loads it (its tables: storage.open_storage)
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction=settings["direction"], load_if_exists=True)
        if not study.user_attrs:  # direction written last: the sign that the rest is there
            for key, value in mine.items():
                study.set_user_attr(key, value)
        return study
    for _ in range(40):  # made by another worker this moment: its settings follow the study by a few writes
        if study.user_attrs.get("direction") is not None:
            break
        time.sleep(0.25)
    saved = {k: study.user_attrs.get(k) for k in mine}
    differ = _differs(saved, mine)
    if differ:
        what = ", ".join({"space": "search space", "metric": "metric", "direction": "direction"}[k] for k in differ)
        raise ConfigError(f"study {name!r} was made with another {what} (its: {saved[differ[0]]}); choose another "
                          "--study name, or run it with the options it was made with")
    return study


def quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the zoo says one line per trial itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the worker beats for its trials itself (storage.Heartbeat), as study.optimize would
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
