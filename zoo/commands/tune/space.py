"""A search space: the CLI's own options, each sampled on the scale it acts on.

A space file (``configs/search/*.yaml``) holds one key, ``search``, mapping an option of ``zoo fit`` to how
it is sampled::

    search:
      optimizer.init_args.lr: {scale: log, low: 0.0001, high: 1.0}
      optimizer.init_args.momentum: {scale: one_minus_log, low: 0.9, high: 0.999}
      data.init_args.batch_size: {scale: choice, values: [64, 128, 256]}

Scales: ``log`` (log-uniform: as many trials in 0.001-0.01 as in 0.1-1), ``one_minus_log`` (for an average's
β: 1-β log-uniform, so 0.9-0.99 gets as many trials as 0.99-0.999: ~10 and ~100 steps averaged), ``uniform``,
``int`` (uniform integers, ``step`` optional) and ``choice`` (``values``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from zoo_common import ConfigError

SCALES = ("log", "one_minus_log", "uniform", "int", "choice")
ONE_MINUS = "1-"  # the study's name of the parameter sampled for a one_minus_log option: 1-β


def is_space_file(path: str) -> bool:
    """A YAML file whose only top-level key is ``search`` (``zoo fit``'s configs have none). A file that is not
    valid YAML is a ConfigError naming its line and column, whichever kind it was meant to be."""
    from zoo.commands.names import read_config

    return "search" in read_config(path)


def _number(option: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"search space: {option}: {key} is {value!r}, not a number")
    return float(value)


def check(option: str, spec) -> dict:
    """One option's entry, checked: a scale the zoo knows, a range that can be sampled on it."""
    if not isinstance(spec, dict) or spec.get("scale") not in SCALES:
        got = spec.get("scale") if isinstance(spec, dict) else spec
        raise ConfigError(f"search space: {option}: scale {got!r} is not one of {', '.join(SCALES)} "
                          "(write e.g. {scale: log, low: 0.0001, high: 1.0})")
    scale = spec["scale"]
    if scale == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"search space: {option}: a choice needs values: [a, b, ...]")
        return {"scale": scale, "values": values}
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"search space: {option}: a {scale} scale needs low and high")
    low, high = _number(option, "low", spec["low"]), _number(option, "high", spec["high"])
    if low >= high:
        raise ConfigError(f"search space: {option}: low {spec['low']} must be below high {spec['high']}")
    if scale == "log" and low <= 0:
        raise ConfigError(f"search space: {option}: a log scale needs low > 0 (got {spec['low']}); "
                          "use scale: uniform for a range from 0")
    if scale == "one_minus_log" and not 0 <= low < high < 1:
        raise ConfigError(f"search space: {option}: one_minus_log samples 1-β log-uniformly and needs "
                          f"0 <= low < high < 1 (got {spec['low']} .. {spec['high']})")
    out = {"scale": scale, "low": low, "high": high}
    if scale == "int":
        if low != int(low) or high != int(high):
            raise ConfigError(f"search space: {option}: an int scale needs whole low and high")
        out = {"scale": scale, "low": int(low), "high": int(high), "step": int(spec.get("step", 1))}
        if out["step"] < 1:
            raise ConfigError(f"search space: {option}: step must be 1 or more")
    return out


def load(paths: list[str]) -> dict[str, dict]:
    """The options of one or more space files (a later file's entry replaces an earlier one's)."""
    space: dict[str, dict] = {}
    for path in paths:
        entries = yaml.safe_load(Path(path).read_text()).get("search")
        if not isinstance(entries, dict) or not entries:
            raise ConfigError(f"{path}: `search:` must map options to their scales, e.g. "
                              "optimizer.init_args.lr: {scale: log, low: 0.0001, high: 1.0}")
        for option, spec in entries.items():
            space[str(option).removeprefix("--")] = check(str(option), spec)
    if not space:
        raise ConfigError("no search space: pass one with -c configs/search/FILE.yaml (see configs/search/)")
    return space


def canonical(space: dict) -> str:
    return json.dumps(space, sort_keys=True)


def param_name(option: str, spec: dict) -> str:
    """The study's name for an option's parameter (what Optuna's samplers see)."""
    return ONE_MINUS + option if spec["scale"] == "one_minus_log" else option


def suggest(trial, space: dict) -> dict:
    """The option values of a trial, sampled (or fixed, for a trial run again) through Optuna's trial."""
    values = {}
    for option, spec in space.items():
        scale, name = spec["scale"], param_name(option, spec)
        if scale == "log":
            values[option] = trial.suggest_float(name, spec["low"], spec["high"], log=True)
        elif scale == "one_minus_log":  # β = 1 - u, u log-uniform over [1-high, 1-low]
            values[option] = 1.0 - trial.suggest_float(name, 1.0 - spec["high"], 1.0 - spec["low"], log=True)
        elif scale == "uniform":
            values[option] = trial.suggest_float(name, spec["low"], spec["high"])
        elif scale == "int":
            values[option] = trial.suggest_int(name, spec["low"], spec["high"], step=spec["step"])
        else:  # a list value (hidden_sizes: [256, 256]) as its JSON text: Optuna's storages keep plain values
            values[option] = decode(trial.suggest_categorical(name, [encode(v) for v in spec["values"]]))
    return values


def encode(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else "json:" + json.dumps(value)


def decode(value):
    return json.loads(value.removeprefix("json:")) if isinstance(value, str) and value.startswith("json:") else value


def extremes(space: dict) -> list[dict]:
    """Option values that together reach every end of every range and every choice: parsing these proves the
    space's options exist and take its values."""
    low = {o: (s["values"][0] if s["scale"] == "choice" else s["low"]) for o, s in space.items()}
    high = {o: (s["values"][-1] if s["scale"] == "choice" else s["high"]) for o, s in space.items()}
    out = [low, high]
    for option, spec in space.items():
        out += [{**low, option: v} for v in spec.get("values", [])[1:-1]]
    return out


def grid(space: dict, points: int) -> dict[str, list]:
    """``points`` values per option, evenly spaced on its own scale (every value of a choice): Optuna's grid."""
    out = {}
    for option, spec in space.items():
        scale, name = spec["scale"], param_name(option, spec)
        if scale == "choice":
            out[name] = [encode(v) for v in spec["values"]]
            continue
        low, high = (1.0 - spec["high"], 1.0 - spec["low"]) if scale == "one_minus_log" else (spec["low"], spec["high"])
        if scale in ("log", "one_minus_log"):
            values = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / max(points - 1, 1)) for i in range(points)]
        else:
            values = [low + (high - low) * i / max(points - 1, 1) for i in range(points)]
        values[0], values[-1] = low, high  # the ends exactly (exp(log(x)) can step out of the range)
        if scale == "int":
            values = sorted({int(round((v - low) / spec["step"])) * spec["step"] + int(low) for v in values})
        out[name] = values
    return out


def to_scale(spec: dict, value: float) -> float:
    """A value where its scale is uniform (log of it, or of 1-β)."""
    if spec["scale"] == "log":
        return math.log(value)
    if spec["scale"] == "one_minus_log":
        return math.log(1.0 - value)
    return float(value)


def from_scale(spec: dict, x: float) -> float:
    if spec["scale"] == "log":
        return math.exp(x)
    if spec["scale"] == "one_minus_log":
        return 1.0 - math.exp(x)
    return x


def narrowed(space: dict, best: list[dict]) -> dict:
    """Coarse to fine: each range shrunk to the span of the best trials' values on its own scale, widened by a
    quarter of that span on each side (at least a tenth of the old range) and kept inside the old range."""
    out = {}
    for option, spec in space.items():
        values = [b[option] for b in best if option in b]
        if not values:
            out[option] = spec
            continue
        if spec["scale"] == "choice":
            out[option] = {"scale": "choice", "values": [v for v in spec["values"] if v in values]}
            continue
        lo_old, hi_old = sorted((to_scale(spec, spec["low"]), to_scale(spec, spec["high"])))
        xs = [to_scale(spec, v) for v in values]
        span = max(max(xs) - min(xs), (hi_old - lo_old) / 10)
        lo, hi = max(lo_old, min(xs) - span / 4), min(hi_old, max(xs) + span / 4)
        a, b = sorted((from_scale(spec, lo), from_scale(spec, hi)))
        if spec["scale"] == "int":
            a, b = int(math.floor(a)), int(math.ceil(b))
            if a == b:
                b = min(spec["high"], a + spec["step"])
                a = b - spec["step"]
            out[option] = {"scale": "int", "low": a, "high": b, **({"step": spec["step"]} if spec["step"] != 1 else {})}
        else:
            # 4 significant digits, of 1-β for a β (0.9944, not 0.99)
            # (1 - 0.451 is 0.5489999999999999 in binary: written back at 12 digits, 0.549)
            r = (lambda v: float(f"{1.0 - float(f'{1.0 - v:.4g}'):.12g}")) if spec["scale"] == "one_minus_log" \
                else (lambda v: float(f"{v:.4g}"))
            out[option] = {"scale": spec["scale"], "low": r(a), "high": r(b)}
            if out[option]["low"] >= out[option]["high"]:  # rounding met: keep the unrounded ends
                out[option] |= {"low": a, "high": b}
    return out


def as_yaml(space: dict) -> str:
    """A space written as a space file (flow style: one option per line)."""
    lines = ["search:"]
    for option, spec in space.items():
        fields = ", ".join(f"{k}: {json.dumps(v)}" for k, v in spec.items() if not (k == "step" and v == 1))
        lines.append(f"  {option}: {{{fields}}}")
    return "\n".join(lines) + "\n"
