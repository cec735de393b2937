"""Which run ``--ckpt_path best|last`` means: the newest run of the settings given, not just of the model on
the data (a benchmark's run, or a two-node run, of the same model is not the one a user resumes)."""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_info

from zoo.commands.runs import run_config, runs_with
from zoo_common import class_name

#: ``--ckpt_path best|last`` as the command line gave it, before it became a path: (which, root, model, data)
CHOSEN: tuple[str, str, str | None, str | None] | None = None

# what makes two runs the same run: the trainer's options may change between a run and its resume
# (more epochs, other devices), these may not; where the data lives, or what it predicts, is no setting of the run
IDENTITY = ("model", "data", "optimizer", "lr_scheduler", "seed_everything")
# (and what the data determines: linked into the model, saved as null)
NOT_IDENTITY = {"predict_path", "root", "download", "cache_dir", "workers", "num_classes", "in_channels", "input_size",
                "num_features"}


def _plain(value):
    """Tuples as lists, as a YAML file gives them back."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def identity(config: dict) -> dict:
    """The settings that make a run that run, from a config as a dict (``config.yaml`` or the parsed one)."""
    config = _plain(config)
    out = {}
    for key in IDENTITY:
        value = config.get(key)
        if isinstance(value, dict):
            args = {k: v for k, v in (value.get("init_args") or {}).items() if k not in NOT_IDENTITY}
            value = {"class": class_name(value.get("class_path")), **args}
        out[key] = value
    return out


def differences(mine: dict, theirs: dict) -> list[str]:
    """``key: theirs -> mine`` for each setting that differs (nested one level: ``optimizer.lr``)."""
    out = []
    for key in IDENTITY:
        a, b = theirs.get(key), mine.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k} {a.get(k)!r} (here {b.get(k)!r})" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key} {a!r} (here {b!r})")
    return out


def choose_run(config, subcommand: str) -> None:
    """``--ckpt_path best|last`` with a model and data chosen: the newest run of *these* settings (model and
    data options, optimizer, scheduler, seed), not just the newest of the model on the data; the run taken
    is named, with how to take another. ``zoo fit ... --ckpt_path last`` with no run of these settings starts
    a new run rather than continue another's."""
    if CHOSEN is None or not config.get("ckpt_path"):
        return
    which, root, model, data = CHOSEN
    mine = identity(config.as_dict())
    # each candidate run with what differs from these settings (nothing: a run of these settings)
    candidates = {run: differences(mine, identity(run_config(run))) for run in runs_with(which, root, model, data)}
    if not candidates:
        return
    same = [run for run, differ in candidates.items() if not differ]
    what = f"{class_name(model)} on {class_name(data)}"
    if same:
        config.ckpt_path = str(same[0] / "checkpoints" / f"{which}.ckpt")
        others = len(candidates) - len(same)
        rank_zero_info(f"--ckpt_path {which}: {config.ckpt_path}, the newest of {len(same)} run(s) of {what} with "
                       f"these settings" + (f" ({others} run(s) with other settings left alone)" if others else "")
                       + "; give a checkpoint's path to choose another")
        return
    newest_run = next(iter(candidates))
    newest = newest_run / "checkpoints" / f"{which}.ckpt"
    changed = "; ".join(candidates[newest_run][:4])
    if subcommand == "fit" and which == "last":
        config.ckpt_path = None
        rank_zero_info(f"--ckpt_path last: no run of {what} with these settings has a checkpoint, starting a new run "
                       f"(the newest, {newest}, differs: {changed}; give its path to continue it)")
    else:
        config.ckpt_path = str(newest)
        rank_zero_info(f"--ckpt_path {which}: {newest}, the newest run of {what}, whose settings differ from "
                       f"these: {changed}; give a checkpoint's path to choose another")

