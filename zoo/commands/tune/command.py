"""``zoo tune``: the command line, checked in full before anything is written, then one worker of the study.

    zoo tune -c configs/lenet_fashion_mnist.yaml -c configs/search/lr_momentum.yaml --n_trials 20

Any ``zoo fit`` option goes beside the tune options; a ``-c`` file with a ``search:`` key is a search space.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import yaml

from zoo.commands.names import import_class
from zoo.commands.tune import space as spaces
from zoo_common import ConfigError, ZooError

ROOT = Path("lightning_logs") / "tune"


class Interrupted(ZooError):
    exit_code = 130  # as a shell reports Ctrl-C


class Terminated(ZooError):
    exit_code = 143  # as a shell reports SIGTERM


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every zoo command
        raise ConfigError(f"zoo tune: {message}; `zoo tune --help` lists the options")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zoo tune", allow_abbrev=False, description=(
        "Hyperparameter search on Optuna: each trial an ordinary `zoo fit` run with sampled option values. "
        "Any `zoo fit` option goes beside these; a -c file with a `search:` key is the search space "
        "(configs/search/). Run the same command on more machines with --storage postgresql://... to add workers."))
    p.add_argument("-c", "--config", action="append", default=[], help="a zoo fit config, or a search space file")
    p.add_argument("--n_trials", type=int, default=20, help="finished trials the study ends with, all workers together (20)")
    p.add_argument("--study", help="the study's name (default: the configs' names, e.g. lenet_fashion_mnist-lr_momentum); "
                                   "the same name continues a study")
    p.add_argument("--storage", help="where the study lives: postgresql://USER:PASSWORD@HOST:PORT/DB (many machines), "
                                     "journal:FILE (a shared filesystem), sqlite:///FILE (default: "
                                     "lightning_logs/tune/STUDY/study.db)")
    p.add_argument("--sampler", choices=("random", "tpe", "grid"), default="random",
                   help="random (default), tpe (a model of the good region after 10 random trials), grid")
    p.add_argument("--grid_points", type=int, default=3, help="grid: values per option, evenly spaced on its scale (3)")
    p.add_argument("--sampler_seed", type=int, default=None, help="the sampler's seed (one worker: the same trials again)")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="stop hopeless trials after an epoch: median (default), halving (successive halving), none")
    p.add_argument("--metric", help="the metric to optimise (default: the model's monitored one, e.g. val/acc)")
    p.add_argument("--direction", choices=("maximize", "minimize"), help="with --metric: which way is better")
    p.add_argument("--heartbeat", type=int, default=60, help="seconds between a worker's heartbeats; a trial "
                                                            "whose worker missed two is run again (60)")
    p.add_argument("--root_dir", default=str(ROOT), help="the folder of the studies' folders: each study's "
                                                         "database, trial runs, logs and results (lightning_logs/tune)")
    p.add_argument("--results", action="store_true", help="print (and write) a study's results; train nothing")
    return p


def split_configs(configs: list[str]) -> tuple[list[str], list[str]]:
    """(search space files, zoo fit configs)."""
    for path in configs:
        if not Path(path).is_file():
            raise ConfigError(f"-c {path}: no such file")
    return [c for c in configs if spaces.is_space_file(c)], [c for c in configs if not spaces.is_space_file(c)]


def parse_fit(words: list[str]) -> dict:
    """``zoo fit``'s own parse of these words (``--print_config``: nothing instantiated, nothing written);
    ConfigError with its one line when it refuses them."""
    from zoo.commands import messages
    from zoo.commands.lightning import cli_main

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            cli_main(["fit", *words, "--print_config"])  # prints the config and exits before anything runs
    except SystemExit as e:
        if e.code not in (0, None):
            raise ConfigError(f"zoo fit {' '.join(words)}: refused") from None
    except Exception as e:  # noqa: BLE001 (the parser's own one line)
        raise ConfigError(messages.describe(e)[0].removeprefix("error: ")) from None
    return yaml.safe_load(out.getvalue()) or {}


def monitored(config: dict) -> tuple[str, str]:
    """The model's monitored metric and which way is better (what its best checkpoint is chosen by)."""
    cls = import_class((config.get("model") or {}).get("class_path", ""))
    return getattr(cls, "monitor", "val/loss"), "maximize" if getattr(cls, "monitor_mode", "min") == "max" else "minimize"


def settings_from(args, extra: list[str]) -> dict:
    """Everything a worker needs, checked: the space, zoo fit's words, the metric; the study's name and folder."""
    space_files, fit_configs = split_configs(args.config)
    if args.n_trials < 1 or args.grid_points < 2 or args.heartbeat < 1:
        raise ConfigError("--n_trials and --heartbeat must be 1 or more, --grid_points 2 or more")
    space = spaces.load(space_files) if space_files else None
    fit_args = [w for c in fit_configs for w in ("-c", c)] + extra
    name = args.study or "-".join(Path(c).stem for c in [*fit_configs, *space_files]) or "study"
    if any(ch in name for ch in "/\\") or name.startswith("."):
        raise ConfigError(f"--study {name}: a name, not a path")
    settings = {"study": name, "folder": (Path(args.root_dir) / name).absolute(), "fit_args": fit_args, "space_dict": space}
    if space is None:
        return settings
    config = parse_fit(fit_args)  # zoo fit's options, before the space's
    from zoo.commands.tune.worker import option_words

    for values in spaces.extremes(space):  # every option of the space exists and takes the ends of its range
        try:
            parse_fit(fit_args + option_words(values))
        except ConfigError as e:
            raise ConfigError(f"search space: {e}") from None
    metric, direction = monitored(config)
    if args.metric:
        metric, direction = args.metric, args.direction or ("minimize" if "loss" in args.metric else "maximize")
    elif args.direction:
        direction = args.direction
    if not metric.startswith("val/"):
        raise ConfigError(f"--metric {metric}: trials are compared on a validation metric (val/acc, val/loss), "
                          "so that the test set stays unseen")
    return settings | {"space": spaces.canonical(space), "metric": metric, "direction": direction}


def main(argv: list[str]) -> None:
    if argv in (["-h"], ["--help"]):
        parser().print_help()
        return
    from zoo.commands.messages import cannot_write, permission_message

    try:
        tune(argv)
    except OSError as e:
        if not cannot_write(e):
            raise
        raise ConfigError(permission_message(e, f"a study's folder goes under --root_dir (default {ROOT}): "
                                                "give zoo tune a folder you may write to")) from None


def tune(argv: list[str]) -> None:
    try:  # before anything else: the checks below use it too
        import optuna
    except ImportError:
        raise ConfigError("zoo tune needs Optuna: pip install 'd2l-zoo[tune]' (or -e '.[tune]' in a clone)") from None
    args, extra = parser().parse_known_args(argv)
    settings = settings_from(args, extra)
    folder = settings["folder"]
    if settings["space_dict"] is None and not args.results:
        raise ConfigError("no search space: add -c configs/search/FILE.yaml (a file with a `search:` key); "
                          "configs/search/ has the zoo's")
    from zoo.commands.tune import results
    from zoo.commands.tune.storage import default_url, describe, open_storage
    from zoo.commands.tune.study import make_pruner, make_sampler, open_study, quiet

    quiet()
    url = args.storage or default_url(folder)
    if args.results:
        if not args.storage and not (folder / "study.db").is_file():
            raise ConfigError(f"no study {settings['study']!r} under {args.root_dir}; give its --study name "
                              "(and --storage, or --root_dir)")
        storage = open_storage(url, args.heartbeat, create=False)
        try:
            study = optuna.load_study(study_name=settings["study"], storage=storage)
        except KeyError:
            raise ConfigError(f"no study {settings['study']!r} in {describe(url)}") from None
        space = json.loads(study.user_attrs["space"])
        print(results.report(study, space, study.user_attrs["metric"], folder))
        return
    settings |= {"storage": url, "where": describe(url)}
    space = settings["space_dict"]
    sampler = make_sampler(args.sampler, space, args.sampler_seed, args.grid_points)
    pruner = make_pruner(args.pruner)
    if not args.storage and not (folder / "study.db").is_file():
        folder.mkdir(parents=True, exist_ok=True)  # the embedded default, made once the rest is known to be good
    storage = open_storage(url, args.heartbeat)
    study = open_study(settings["study"], storage, settings, sampler, pruner)
    n = args.n_trials
    if args.sampler == "grid":
        size = 1
        for values in spaces.grid(space, args.grid_points).values():
            size *= len(values)
        if n > size:
            print(f"--sampler grid: {size} points, so {size} trials (not {n})")
            n = size
    print(f"Study {settings['study']} ({describe(url)}): {n} trials of {', '.join(space)}; "
          f"{args.sampler} sampling, {'no' if args.pruner == 'none' else args.pruner} pruning, {settings['metric']} {settings['direction']}d; "
          f"runs in {results.shown(folder / 'trials')}", flush=True)
    from zoo.commands.tune.worker import Stopped, Worker

    try:
        ran = Worker(study, settings, folder, n, args.pruner).run()
    except Stopped as e:
        raise Terminated(str(e)) from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted (the trial it was running is marked failed); run the same command to go "
                          f"on with study {settings['study']}") from None
    print(f"This worker ran {ran} trial(s).")
    print(results.report(study, space, settings["metric"], folder))
