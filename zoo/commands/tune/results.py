"""What a study found: its trials as a table (``trials.csv``), the best trial's config (``best.yaml``, which
``zoo fit -c`` runs), each parameter's importance, ranges narrowed around the best trials (``narrowed.yaml``,
the next search's space), and plots (``history.png``, ``params.png``, ``curves.png``), in the study's folder."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from zoo.commands.tune import space as spaces
from zoo_common import atomic_write, atomic_write_text

ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3, TrialState.FAIL: 4}


def shown(path) -> str:
    """A path as the user reads it: relative to the working directory when under it."""
    if not path:
        return "—"
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def values_of(trial, space: dict) -> dict:
    """The option values a trial ran with (its params, 1-β turned back into β)."""
    if trial.user_attrs.get("values"):
        return trial.user_attrs["values"]
    out = {}
    for option, spec in space.items():
        name = spaces.param_name(option, spec)
        if name in trial.params:
            out[option] = 1.0 - trial.params[name] if spec["scale"] == "one_minus_log" else spaces.decode(trial.params[name])
    return out


def _value(trial) -> float | None:
    if trial.value is not None:
        return trial.value
    steps = trial.intermediate_values
    return steps[max(steps)] if steps else None


def rows(study: optuna.Study, space: dict) -> list[dict]:
    """Every trial but the surplus ones (two workers asking at once for the last), best first."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        value = _value(t)
        out.append({"trial": t.number, "state": t.state.name, "value": value, "epochs": t.user_attrs.get("epochs"),
                    "seconds": t.user_attrs.get("seconds"), "values": values_of(t, space),
                    "note": t.user_attrs.get("error") or t.user_attrs.get("run") or ""})
    key = lambda r: (ORDER[TrialState[r["state"]]], math.inf if r["value"] is None else (-r["value"] if maximize else r["value"]))
    return sorted(out, key=key)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def table(trials: list[dict], space: dict, metric: str) -> str:
    """The rows (``rows()``) as aligned text."""
    options = list(space)
    head = ["trial", "state", metric, "epochs", "time (s)", *(o.rsplit(".", 1)[-1] for o in options)]
    body = [[str(r["trial"]), r["state"].lower(), "—" if r["value"] is None else f"{r['value']:.4f}",
             _fmt(r["epochs"]), _fmt(r["seconds"]), *(_fmt(r["values"].get(o)) for o in options)] for r in trials]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in [head, *body])


def csv_text(trials: list[dict], space: dict, metric: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial", "state", metric, "epochs", "seconds", *space, "run_or_error"])
    for r in trials:
        writer.writerow([r["trial"], r["state"], r["value"], r["epochs"], r["seconds"],
                         *(json.dumps(r["values"].get(o)) if isinstance(r["values"].get(o), list) else r["values"].get(o) for o in space),
                         r["note"]])
    return out.getvalue()


def best_config(trial, study_name: str) -> str | None:
    """The best trial's ``config.yaml`` without the trial's logger, so that ``zoo fit -c`` makes a new
    run in ``lightning_logs/`` as any run."""
    text = trial.user_attrs.get("config")
    if not text:
        return None
    config = yaml.safe_load(text)
    trainer = config.get("trainer") or {}
    for key in ("logger", "enable_progress_bar"):
        trainer.pop(key, None)
    values = ", ".join(f"{o}={v}" for o, v in trial.user_attrs.get("values", {}).items())
    return (f"# The best trial ({trial.number}) of study {study_name}: value {trial.value:.4f}; "
            f"{values}\n# Run it again: zoo fit -c THIS_FILE\n" + yaml.safe_dump(config, sort_keys=False))


def chance_level(trial, metric: str) -> float | None:
    """What a classifier scores by guessing, for ``metric`` (val/acc: 1/C; val/loss: ln C), from the classes
    in the trial's config; None where that is not known (a regression, another metric)."""
    try:
        config = yaml.safe_load(trial.user_attrs.get("config") or "") or {}
        classes = int(((config.get("model") or {}).get("init_args") or {})["num_classes"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError):
        return None
    if classes < 2:
        return None
    return {"val/acc": 1.0 / classes, "val/loss": math.log(classes)}.get(metric)


def learned_nothing(trial, metric: str) -> str | None:
    """The one line that says a study's best trial is no better than chance (nothing to narrow around), or None."""
    chance = chance_level(trial, metric)
    if chance is None or trial.value is None:
        return None
    near = trial.value < 1.5 * chance if metric == "val/acc" else trial.value > 0.9 * chance
    if not near:
        return None
    return (f"Nothing learned yet: the best trial's {metric} {trial.value:.4f} is no better than chance "
            f"({chance:.4f}), so its values say nothing of the options; train longer (--trainer.max_epochs) "
            "before narrowing the space. No narrowed.yaml written.")


def importance(study: optuna.Study, space: dict) -> dict[str, float]:
    names = {spaces.param_name(o, s): o for o, s in space.items()}
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 3 or len(names) < 1:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except Exception:  # noqa: BLE001 (too few distinct values to tell)
        return {}
    return {names.get(k, k): v for k, v in found.items()}


MIN_TO_NARROW = 6  # below, the best 3 are most of the trials: their span is about the whole range


def best_trials(trials: list[dict]) -> list[dict]:
    """The best quarter of the finished trials (at least 3) of the rows (``rows()``, best first): what the
    next space narrows around."""
    complete = [r for r in trials if r["state"] == "COMPLETE"]
    return [r["values"] for r in complete[: max(3, len(complete) // 4)]]


def narrowing(trials: list[dict], space: dict, study_name: str, folder: Path) -> list[str]:
    """``narrowed.yaml`` around the best trials, and the lines that say so; or the line that says why not."""
    complete = sum(r["state"] == "COMPLETE" for r in trials)
    if complete < MIN_TO_NARROW:
        (folder / "narrowed.yaml").unlink(missing_ok=True)
        return [f"No narrowed range yet: {complete} finished trial(s); ranges are narrowed around the best quarter "
                f"once {MIN_TO_NARROW} have finished (--n_trials {MIN_TO_NARROW} or more)"]
    top = best_trials(trials)
    narrow = spaces.narrowed(space, top)
    if narrow == space:
        (folder / "narrowed.yaml").unlink(missing_ok=True)
        return [f"No narrower range: the best {len(top)} trials span each option's whole range; "
                "search longer (more trials or epochs) in the same space"]
    text = spaces.as_yaml(narrow)
    atomic_write_text(folder / "narrowed.yaml", f"# Ranges around the best {len(top)} trials of study {study_name}\n{text}")
    return [f"Narrowed around the best {len(top)} trials ({shown(folder / 'narrowed.yaml')}, the next search's space):",
            text.rstrip()]


def _tidy(panels: list, metric: str, name: str) -> None:
    """Optuna's plots in the study's words: the metric for "Objective Value", epochs for "Step", the options' own
    names; fewer, turned tick labels so that neighbouring panels do not overprint each other."""
    from matplotlib.ticker import MaxNLocator

    for i, ax in enumerate(panels):
        if ax.get_ylabel() in ("Objective Value", "Intermediate Value"):
            ax.set_ylabel(metric)
        if i and name == "params.png":
            ax.set_ylabel("")  # one metric axis for the row
        if ax.get_xlabel() == "Step":
            ax.set_xlabel("epoch (0: the first)")
        if name == "params.png":  # the option's own name (momentum, lr), its choices as written in the space
            label = ax.get_xlabel()
            ax.set_xlabel(("1 - " if label.startswith("1-") else "") + label.rsplit(".", 1)[-1])
            labels = [t.get_text() for t in ax.get_xticklabels()]
            if any("json:" in t for t in labels):
                ax.set_xticks(ax.get_xticks(), [t.strip("'").removeprefix("json:") for t in labels])
        elif ax.get_xscale() != "log":
            ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")


def figures(study: optuna.Study, metric: str) -> dict:
    """The study's plots as matplotlib figures, by file name (none without matplotlib, or with nothing to draw)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from optuna.visualization import matplotlib as ov
    except ImportError:
        return {}
    made = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, draw in (("history.png", lambda s: ov.plot_optimization_history(s, target_name=metric)),
                           ("params.png", lambda s: ov.plot_slice(s, target_name=metric)),
                           ("curves.png", ov.plot_intermediate_values)):
            try:
                axes = draw(study)
            except Exception:  # noqa: BLE001 (nothing to draw yet)
                continue
            panels = list(axes.flat) if hasattr(axes, "flat") else [axes]
            figure = panels[0].figure
            figure.set_size_inches(max(6.4, 4.0 * len(panels)), 4.8)
            figure.subplots_adjust(wspace=0.3)
            _tidy(panels, metric, name)
            for bar in [ax for ax in figure.axes if ax not in panels]:  # the colour bar: beside the last panel
                box = panels[-1].get_position()
                bar.set_position([box.x1 + 0.01, box.y0, 0.012, box.height])
            made[name] = figure
    return made


def plots(study: optuna.Study, folder: Path, metric: str) -> list[Path]:
    """``figures()`` written as PNG files into the study's folder."""
    drawn = figures(study, metric)
    if not drawn:
        return []
    import matplotlib.pyplot as plt

    made = []
    for name, figure in drawn.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        atomic_write(folder / name, lambda f, data=buffer.getvalue(): f.write(data))
        made.append(folder / name)
    return made


def report(study: optuna.Study, space: dict, metric: str, folder: Path) -> str:
    """The study's results, written into its folder and returned as the text to print."""
    folder.mkdir(parents=True, exist_ok=True)
    trials = rows(study, space)
    lines = [f"Study {study.study_name}: {metric}, {study.direction.name.lower()}d", table(trials, space, metric)]
    atomic_write_text(folder / "trials.csv", csv_text(trials, space, metric))
    for r in trials:
        if r["state"] == "FAIL":
            lines.append(f"trial {r['trial']} failed: {r['note'] or 'no reason kept'}")
    states = [r["state"] for r in trials]
    lines.append(", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
                           if states.count(s)))
    try:
        best = study.best_trial
    except ValueError:
        best = None
    chance = learned_nothing(best, metric) if best is not None else None
    if best is not None:
        config = best_config(best, study.study_name)
        lines.append(f"Best: trial {best.number}, {metric} {best.value:.4f}; run {shown(best.user_attrs.get('run'))}")
        if config:
            atomic_write_text(folder / "best.yaml", config)
            lines.append(f"Its config: {shown(folder / 'best.yaml')} (run it again: zoo fit -c {shown(folder / 'best.yaml')})")
    if chance:
        lines.append(chance)
        (folder / "narrowed.yaml").unlink(missing_ok=True)  # an earlier one would read as this study's advice
    found = importance(study, space) if not chance else {}
    if found:
        lines.append("Importance: " + ", ".join(f"{o} {v:.2f}" for o, v in found.items()))
    if not chance and best is not None:
        lines.extend(narrowing(trials, space, study.study_name, folder))
    made = plots(study, folder, metric)
    if made:
        lines.append("Plots: " + ", ".join(shown(p) for p in made))
    lines.append(f"Compare the trials' curves and HPARAMS: tensorboard --logdir {shown(folder / 'trials')}")
    return "\n".join(lines)
