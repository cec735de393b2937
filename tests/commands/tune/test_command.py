"""``zoo tune``: the scales sample what they claim, bad input is refused before anything is written, workers
share a study (embedded SQLite, a real PostgreSQL server) and run each trial once, a killed worker's trial is
run again, and the processes of a DDP trial train with the same values and are pruned together."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

optuna = pytest.importorskip("optuna", reason="zoo tune needs the .[tune] extra (pip install -e '.[dev]')")
from optuna.trial import TrialState  # noqa: E402

from tests.helpers import CONFIGS, ENV, REPO, in_namespace, postgres, run_main  # noqa: E402
from zoo.commands.tune import space as spaces  # noqa: E402
from zoo_common import ConfigError  # noqa: E402

LINREG = str(CONFIGS / "linreg_synthetic.yaml")
LR = "search:\n  optimizer.init_args.lr: {scale: log, low: 0.001, high: 0.1}\n"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def sample(space: dict, n: int = 4000, seed: int = 0) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(spaces.suggest(trial, space))
        study.tell(trial, 0.0)
    return out


def per_decade(values: list[float], edges: list[float]) -> list[float]:
    return [sum(a <= v < b for v in values) / len(values) for a, b in zip(edges, edges[1:])]


def looks_log_uniform(values: list[float], edges: list[float]) -> bool:
    """As many values between each pair of edges (edges a factor apart) as between any other: within 3 points."""
    return all(abs(f - 1 / (len(edges) - 1)) < 0.03 for f in per_decade(values, edges))


def test_log_scale_samples_each_decade_alike():
    space = {"lr": spaces.check("lr", {"scale": "log", "low": 1e-4, "high": 1.0})}
    values = [s["lr"] for s in sample(space)]
    edges = [1e-4, 1e-3, 1e-2, 1e-1, 1.0 + 1e-12]
    assert min(values) >= 1e-4 and max(values) <= 1.0
    assert looks_log_uniform(values, edges), per_decade(values, edges)
    # the check has teeth: the same number drawn uniformly puts ~90% in the last decade
    uniform = [s["lr"] for s in sample({"lr": spaces.check("lr", {"scale": "uniform", "low": 1e-4, "high": 1.0})})]
    assert not looks_log_uniform(uniform, edges)


def test_one_minus_log_scale_samples_averaging_lengths_alike():
    """β in 0.9 .. 0.999: 1-β log-uniform, so β < 0.99 (averages of ~10-100 steps) as often as β >= 0.99."""
    space = {"m": spaces.check("m", {"scale": "one_minus_log", "low": 0.9, "high": 0.999})}
    betas = [s["m"] for s in sample(space)]
    assert min(betas) >= 0.9 and max(betas) <= 0.999
    steps = [1 / (1 - b) for b in betas]  # how many steps the average spans: 10 .. 1000
    assert looks_log_uniform(steps, [10, 100, 1000 + 1e-6]), per_decade(steps, [10, 100, 1000 + 1e-6])
    # against a broken variant: β itself log-uniform puts ~91% below 0.99
    broken = [s["m"] for s in sample({"m": spaces.check("m", {"scale": "log", "low": 0.9, "high": 0.999})})]
    assert not looks_log_uniform([1 / (1 - b) for b in broken], [10, 100, 1000 + 1e-6])


def test_int_and_choice_scales_cover_their_values():
    space = {"units": spaces.check("units", {"scale": "int", "low": 32, "high": 512, "step": 32}),
             "batch": spaces.check("batch", {"scale": "choice", "values": [64, 128, [256, 256]]})}
    drawn = sample(space, 1500)
    assert {d["units"] for d in drawn} == set(range(32, 513, 32))
    counts = [sum(d["batch"] == v for d in drawn) for v in (64, 128, [256, 256])]
    assert all(abs(c / 1500 - 1 / 3) < 0.05 for c in counts), counts


def test_grid_spaces_each_option_evenly_on_its_scale():
    space = {"lr": spaces.check("lr", {"scale": "log", "low": 1e-4, "high": 1.0}),
             "m": spaces.check("m", {"scale": "one_minus_log", "low": 0.9, "high": 0.999})}
    grid = spaces.grid(space, 3)
    assert grid["lr"] == pytest.approx([1e-4, 1e-2, 1.0])
    assert grid["1-m"] == pytest.approx([1e-3, 1e-2, 1e-1])  # β 0.999, 0.99, 0.9


def test_narrowed_ranges_surround_the_best_values_on_their_scale():
    space = {"lr": spaces.check("lr", {"scale": "log", "low": 1e-4, "high": 1.0}),
             "m": spaces.check("m", {"scale": "one_minus_log", "low": 0.5, "high": 0.999}),
             "b": spaces.check("b", {"scale": "choice", "values": [64, 128, 256]})}
    best = [{"lr": 1e-3, "m": 0.9, "b": 64}, {"lr": 1e-2, "m": 0.99, "b": 256}]
    narrow = spaces.narrowed(space, best)
    # the span (a factor 10) widened by a quarter of it on each side: x 10^-0.25 .. x 10^0.25
    assert narrow["lr"]["low"] == pytest.approx(1e-3 * 10 ** -0.25, rel=1e-3)
    assert narrow["lr"]["high"] == pytest.approx(1e-2 * 10 ** 0.25, rel=1e-3)
    assert 1 - narrow["m"]["high"] == pytest.approx(0.01 * 10 ** -0.25, rel=1e-3)
    assert 1 - narrow["m"]["low"] == pytest.approx(0.1 * 10 ** 0.25, rel=1e-3)
    assert narrow["b"] == {"scale": "choice", "values": [64, 256]}
    # written as a space file, it reads back as the same space
    path_text = spaces.as_yaml(narrow)
    import yaml

    again = {o: spaces.check(o, s) for o, s in yaml.safe_load(path_text)["search"].items()}
    assert again == narrow


@pytest.mark.parametrize("name, reference", [
    ("random", lambda seed: optuna.samplers.RandomSampler(seed=seed)),
    ("tpe", lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)),
])
def test_a_seeded_sampler_proposes_what_optunas_own_does_with_that_seed(name, reference):
    """The sampler --sampler NAME --sampler_seed S makes: the same proposals as Optuna's own sampler seeded with
    S, past TPE's random start-up too (12 finished trials), and other ones with another seed."""
    from zoo.commands.tune.study import make_sampler

    given = {"optimizer.init_args.lr": {"scale": "log", "low": 0.001, "high": 0.1},
             "optimizer.init_args.momentum": {"scale": "one_minus_log", "low": 0.5, "high": 0.99},
             "data.init_args.batch_size": {"scale": "choice", "values": [32, 64, 128]}}
    space = {option: spaces.check(option, spec) for option, spec in given.items()}
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def proposals(sampler) -> list[dict]:
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for i in range(14):
            trial = study.ask()
            spaces.suggest(trial, space)
            study.tell(trial, (i * 7919) % 13 / 13.0)  # values that do not depend on the sampler
        return [t.params for t in study.trials[-4:]]

    mine = proposals(make_sampler(name, space, 3, 5))
    assert mine == proposals(reference(3))
    assert mine != proposals(make_sampler(name, space, 4, 5))


@pytest.mark.parametrize("spec, words", [
    ({"scale": "log", "low": 0.1, "high": 0.01}, "low 0.1 must be below high 0.01"),
    ({"scale": "log", "low": 0, "high": 1}, "a log scale needs low > 0"),
    ({"scale": "one_minus_log", "low": 0.9, "high": 1.0}, "0 <= low < high < 1"),
    ({"scale": "logarithmic", "low": 0.1, "high": 1}, "is not one of log, one_minus_log"),
    ({"scale": "choice", "values": []}, "a choice needs values"),
])
def test_bad_ranges_are_named(spec, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        spaces.check("optimizer.init_args.lr", spec)


def run_tune(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.cli", "tune", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)


def start_tune(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo.cli", "tune", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_trial_is_worth_its_best_epoch_and_a_study_goes_the_models_way(tmp_path):
    from zoo.commands.tune.command import monitored
    from zoo.commands.tune.study import open_study
    from zoo.commands.tune.worker import trial_value

    up, down = optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE
    assert trial_value([0.5, 0.8, 0.7], up) == 0.8 and trial_value([0.9, 0.4, 0.6], down) == 0.4
    assert monitored({"model": {"class_path": "zoo.LeNet"}}) == ("val/acc", "maximize")
    assert monitored({"model": {"class_path": "zoo.LinearRegression"}}) == ("val/loss", "minimize")
    for direction, expected in (("maximize", up), ("minimize", down)):
        settings = {"space": "{}", "fit_args": [], "metric": "val/acc", "direction": direction}
        study = open_study(f"s-{direction}", optuna.storages.InMemoryStorage(), settings,
                           optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())
        assert study.direction == expected


@pytest.mark.parametrize("accuracies, learned", [([0.095, 0.106, 0.101, 0.099, 0.1, 0.097], False),
                                                ([0.41, 0.83, 0.62, 0.77, 0.5, 0.3], True)], ids=["chance", "learned"])
def test_a_study_where_nothing_learned_narrows_nothing(tmp_path, accuracies, learned):
    """Eight LeNet trials at chance once printed a best trial, 'Importance: lr 1.00' and a narrowed range."""
    from zoo.commands.tune import results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"optimizer.init_args.lr": spaces.check("optimizer.init_args.lr", {"scale": "log", "low": 0.001, "high": 1})}
    dist = {"optimizer.init_args.lr": optuna.distributions.FloatDistribution(0.001, 1, log=True)}
    study = optuna.create_study(direction="maximize")
    for lr, value in zip([0.001, 0.003, 0.01, 0.03, 0.1, 1.0], accuracies):
        config = f"model:\n  class_path: zoo.models.lenet.LeNet\n  init_args:\n    num_classes: 10\noptimizer:\n  init_args:\n    lr: {lr}\n"
        study.add_trial(optuna.trial.create_trial(params={"optimizer.init_args.lr": lr}, distributions=dist,
                                                   value=value, user_attrs={"config": config}))
    text = results.report(study, space, "val/acc", tmp_path)
    assert ("Nothing learned yet" in text) != learned and ("Importance" in text) == learned
    assert (tmp_path / "narrowed.yaml").is_file() == learned


def _lr_study(values: list[tuple[float, float]]):
    dist = {"optimizer.init_args.lr": optuna.distributions.FloatDistribution(0.0001, 1, log=True)}
    study = optuna.create_study(direction="maximize")
    for lr, value in values:
        study.add_trial(optuna.trial.create_trial(params={"optimizer.init_args.lr": lr}, distributions=dist, value=value))
    return study


def test_too_few_trials_or_a_spread_best_narrow_nothing(tmp_path):
    """Three trials once gave narrowed.yaml with the original range: the best three are all of them."""
    from zoo.commands.tune import results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"optimizer.init_args.lr": spaces.check("optimizer.init_args.lr", {"scale": "log", "low": 0.0001, "high": 1})}
    text = results.report(_lr_study([(0.0002, 0.5), (0.01, 0.7), (0.9, 0.6)]), space, "val/acc", tmp_path)
    assert "No narrowed range yet: 3 finished trial(s)" in text and not (tmp_path / "narrowed.yaml").exists()
    # six trials, the best three at both ends and the middle: nothing narrower to say
    spread = [(0.0001, 0.9), (0.01, 0.9), (1.0, 0.9), (0.001, 0.2), (0.1, 0.2), (0.03, 0.1)]
    text = results.report(_lr_study(spread), space, "val/acc", tmp_path)
    assert "No narrower range" in text and not (tmp_path / "narrowed.yaml").exists()
    close = [(0.01, 0.9), (0.02, 0.9), (0.015, 0.9), (0.001, 0.2), (0.1, 0.2), (0.3, 0.1)]
    text = results.report(_lr_study(close), space, "val/acc", tmp_path)
    narrow = yaml.safe_load((tmp_path / "narrowed.yaml").read_text())["search"]["optimizer.init_args.lr"]
    assert 0.005 < narrow["low"] < 0.01 and 0.02 < narrow["high"] < 0.04, narrow


def test_plots_speak_of_the_metric_epochs_and_the_options_names():
    """Optuna's plots said "Objective Value" and "Step" and printed whole option paths that ran into each other."""
    from zoo.commands.tune import results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    given = {"optimizer.init_args.lr": {"scale": "log", "low": 0.001, "high": 1.0},
             "optimizer.init_args.momentum": {"scale": "one_minus_log", "low": 0.5, "high": 0.99},
             "model.init_args.hidden_sizes": {"scale": "choice", "values": [[64], [128, 128]]}}
    space = {option: spaces.check(option, spec) for option, spec in given.items()}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(6):
        trial = study.ask()
        spaces.suggest(trial, space)
        for epoch in range(3):
            trial.report(0.1 * epoch + 0.01 * i, epoch)
        study.tell(trial, 0.3 + 0.01 * i)
    drawn = results.figures(study, "val/acc")
    assert set(drawn) == {"history.png", "params.png", "curves.png"}
    words = {name: [text for ax in f.axes for text in (ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.get_xticklabels()))]
             for name, f in drawn.items()}
    assert "val/acc" in words["history.png"] and "val/acc" in words["curves.png"] and "val/acc" in words["params.png"]
    assert "epoch (0: the first)" in words["curves.png"]
    assert {"lr", "1 - momentum", "hidden_sizes", "[128, 128]"} <= set(words["params.png"])
    every = " ".join(w for ws in words.values() for w in ws)
    assert "Objective Value" not in every and "Step" not in every and "json:" not in every and "init_args" not in every


def test_narrowed_momentum_is_written_as_its_decimal():
    """1 - 0.451 is 0.5489999999999999 in binary; the file says 0.549."""
    space = {"m": spaces.check("m", {"scale": "one_minus_log", "low": 0.0, "high": 0.999})}
    narrow = spaces.narrowed(space, [{"m": 0.6}, {"m": 0.7}, {"m": 0.8}])
    text = spaces.as_yaml(narrow)
    assert all(len(str(narrow["m"][k])) <= 8 for k in ("low", "high")), text
    assert 0 <= narrow["m"]["low"] < 0.6 and 0.8 < narrow["m"]["high"] < 0.999, text


def test_best_yaml_is_the_best_trials_config_whatever_the_order(tmp_path):
    from zoo.commands.tune import results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"optimizer.init_args.lr": spaces.check("optimizer.init_args.lr", {"scale": "log", "low": 0.001, "high": 0.1})}
    dist = {"optimizer.init_args.lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True)}
    for direction, best in (("maximize", 1), ("minimize", 2)):
        study = optuna.create_study(direction=direction)
        for i, (lr, value) in enumerate([(0.001, 0.5), (0.01, 0.9), (0.1, 0.2), (0.05, 0.6)]):
            config = f"optimizer:\n  init_args:\n    lr: {lr}\ntrainer:\n  max_epochs: {i + 1}\n"
            study.add_trial(optuna.trial.create_trial(params={"optimizer.init_args.lr": lr}, distributions=dist,
                                                       value=value, user_attrs={"config": config, "run": f"r{i}"}))
        folder = tmp_path / direction
        results.report(study, space, "val/acc", folder)
        written = yaml.safe_load((folder / "best.yaml").read_text())
        assert written["trainer"]["max_epochs"] == best + 1, direction  # the best trial's, not the last one's


@pytest.mark.parametrize("space, extra, words", [
    ("search:\n  optimizer.init_args.no_such: {scale: log, low: 0.001, high: 0.1}\n", [], "no_such"),
    ("search:\n  optimizer.init_args.lr: {scale: log, low: 0.1, high: 0.01}\n", [], "must be below high"),
    ("search:\n  optimizer.init_args.lr: {scale: log, low: 0, high: 0.1}\n", [], "needs low > 0"),
    (LR, ["--storage", "postgresql://zoo@127.0.0.1:1/none"], "cannot be reached"),
    (LR, ["--storage", "mysql-but-not-a-url"], "not a storage"),
    (LR, ["--storage", "sqllite:///study.db"], "unknown scheme 'sqllite'"),
    ("search:\n  optimizer.init_args.lr: {scale: log, low: 0.001, high: 0.1\n", [],
     "-c space.yaml, line 3, column 1: not valid YAML"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, space, extra, words, monkeypatch, capsys):
    (tmp_path / "space.yaml").write_text(space)
    before = files_under(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out = run_main(["tune", "-c", LINREG, "-c", "space.yaml", "--n_trials", "2", *extra], capsys)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], out
    assert files_under(tmp_path) == before  # no study folder, no database, no run


def trials_of(url: str, name: str) -> list:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = url.replace("postgresql://", "postgresql+psycopg://")
    return optuna.load_study(study_name=name, storage=storage).trials


def check_each_trial_once(trials: list, folder: Path, n: int, outputs: list[str]) -> None:
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == n
    # every finished trial ran once: one run folder each, naming it, and one "finished" line among the workers
    runs = [json.loads(p.read_text()) for p in folder.glob("trials/version_*/trial.json")]
    assert sorted(r["trial"] for r in runs) == sorted(t.number for t in finished)
    assert len({t.user_attrs["run"] for t in finished}) == n
    text = "\n".join(outputs)
    for t in finished:
        assert text.count(f"Trial {t.number} finished") == 1
    # the run trained with the trial's values: its config.yaml says so
    for t in finished:
        config = Path(t.user_attrs["run"], "config.yaml").read_text()
        assert f"lr: {t.params['optimizer.init_args.lr']}" in config
    assert len({t.user_attrs["worker"] for t in finished}) == 2, "both workers should have run trials"


def two_workers(tmp_path: Path, extra: list[str], n: int = 6) -> list[str]:
    (tmp_path / "space.yaml").write_text(LR)
    args = ["-c", LINREG, "-c", "space.yaml", "--n_trials", str(n), "--pruner", "none", "--study", "two",
            "--trainer.max_epochs", "2", *extra]
    workers = [start_tune(args, tmp_path) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    return outputs


@pytest.mark.slow  # two zoo tune processes, each starting a process per trial
def test_two_workers_share_an_embedded_study(tmp_path):
    outputs = two_workers(tmp_path, [])
    folder = tmp_path / "lightning_logs" / "tune" / "two"
    trials = trials_of(f"sqlite:///{folder / 'study.db'}", "two")
    check_each_trial_once(trials, folder, 6, outputs)
    # each run's row in TensorBoard's HPARAMS view carries its trial's number and values
    import yaml

    for t in trials:
        hparams = yaml.safe_load(Path(t.user_attrs["run"], "hparams.yaml").read_text())
        assert hparams["Trial"] == t.number
        assert hparams["optimizer.init_args.lr"] == t.params["optimizer.init_args.lr"]
    # the results: the table, the best trial's config (which `zoo fit -c` runs), the plots
    assert "Best: trial" in outputs[0] and (folder / "best.yaml").is_file()
    assert {"trials.csv", "history.png", "params.png", "narrowed.yaml"} <= {p.name for p in folder.iterdir()}
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    rerun = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "-c", str(folder / "best.yaml")], cwd=tmp_path,
                           env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    again = next((tmp_path / "lightning_logs" / "LinearRegression-SyntheticPoints").glob("version_*"))
    assert f"lr: {best.params['optimizer.init_args.lr']}" in (again / "config.yaml").read_text()
    # the same study name with another space: refused, and the study is as it was
    before = files_under(folder)
    (tmp_path / "other.yaml").write_text(LR.replace("0.001", "0.0001"))
    out = run_tune(["-c", LINREG, "-c", "other.yaml", "--study", "two"], tmp_path)
    assert out.returncode == 2 and "was made with another search space" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert files_under(folder) == before


@pytest.mark.slow
@pytest.mark.skipif(postgres.missing() is not None, reason=postgres.missing() or "")
def test_two_workers_share_a_postgresql_study(tmp_path):
    with postgres.server() as url:
        outputs = two_workers(tmp_path, ["--storage", url])
        trials = trials_of(url, "two")
    check_each_trial_once(trials, tmp_path / "lightning_logs" / "tune" / "two", 6, outputs)
    assert not (tmp_path / "lightning_logs" / "tune" / "two" / "study.db").exists()  # all in the server


def processes_with(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_killed_workers_trial_is_run_again_and_finished_trials_stay(tmp_path):
    (tmp_path / "space.yaml").write_text(LR)
    args = ["-c", LINREG, "-c", "space.yaml", "--n_trials", "3", "--pruner", "none", "--study", "kill",
            "--heartbeat", "1", "--trainer.max_epochs", "3"]
    folder = tmp_path / "lightning_logs" / "tune" / "kill"
    first = start_tune(args, tmp_path)
    seen = []
    for line in first.stdout:  # kill -9 the worker once its second trial is training
        seen.append(line)
        if line.startswith("Trial 1:"):
            break
    time.sleep(3)
    assert first.poll() is None, "".join(seen)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(1)
    assert processes_with(str(folder)) == [], "the killed worker's run should have died with it"
    url = f"sqlite:///{folder / 'study.db'}"
    before = {t.number: (t.state, t.value, t.params) for t in trials_of(url, "kill") if t.state == TrialState.COMPLETE}
    assert list(before) == [0]
    second = run_tune(args, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    trials = trials_of(url, "kill")
    killed = trials[1]
    assert killed.state == TrialState.FAIL  # found dead by its heartbeat
    again = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE and again[0].params == killed.params
    assert "again: trial 1's worker died" in second.stdout
    assert {t.number: (t.state, t.value, t.params) for t in trials if t.number in before} == before
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


@pytest.mark.slow
def test_a_ddp_trial_trains_with_the_same_values_and_is_pruned_together(tmp_path):
    """A study whose earlier trials reached val/loss 0 at every epoch: the median pruner stops the next trial at
    its first prunable epoch (the second); both processes of that 2-process gloo trial stop there."""
    (tmp_path / "space.yaml").write_text(
        LR + "  optimizer.init_args.momentum: {scale: one_minus_log, low: 0.5, high: 0.99}\n")
    (tmp_path / "probe.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: tests.helpers.tune_probe.RankProbe\n"
        f"      init_args:\n        out: {tmp_path / 'probe'}\n")
    common = ["-c", LINREG, "-c", "space.yaml", "--study", "ddp", "--pruner", "median", "--trainer.max_epochs", "5"]
    first = run_tune([*common, "--n_trials", "1"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    folder = tmp_path / "lightning_logs" / "tune" / "ddp"
    study = optuna.load_study(study_name="ddp", storage=f"sqlite:///{folder / 'study.db'}")
    done = study.trials[0]
    for _ in range(4):  # four more finished trials that did perfectly at every epoch
        study.add_trial(optuna.trial.create_trial(params=done.params, distributions=done.distributions, value=0.0,
                                                  intermediate_values=dict.fromkeys(range(5), 0.0)))
    out = run_tune([*common, "--n_trials", "6", "-c", str(CONFIGS / "trainer" / "ddp_cpu.yaml"), "-c", "probe.yaml"],
                   tmp_path, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    trial = optuna.load_study(study_name="ddp", storage=f"sqlite:///{folder / 'study.db'}").trials[-1]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["epochs"] == 2
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    values = trial.user_attrs["values"]
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["epochs"] == 2  # both stopped after the same epoch
        assert rank["lr"] == values["optimizer.init_args.lr"]
        assert rank["momentum"] == values["optimizer.init_args.momentum"]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # the same values, the same steps: the same weights
    run = Path(trial.user_attrs["run"])
    assert json.loads((run / "trial.json").read_text())["state"] == "PRUNED"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.value for e in events.Scalars("hp/pruned")] == [1.0]  # its HPARAMS row says so
    assert "pruned after 2 epoch(s)" in out.stdout
    assert not math.isnan(trial.intermediate_values[1])


def test_each_epoch_reaches_the_study_as_its_own_step():
    """The pruners compare trials at the same step: epoch e is step e (a rung's epoch), reported once."""
    from types import SimpleNamespace

    from zoo.commands.tune.report import ReportToStudy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    reporter = ReportToStudy({"metric": "val/acc", "number": trial.number, "values": {}})
    reporter.trial = optuna.Trial(study, trial._trial_id)
    for epoch, value in enumerate([0.3, 0.5, 0.4]):
        trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn="fit"), global_rank=0, world_size=1,
                                  current_epoch=epoch, callback_metrics={"val/acc": torch.tensor(value)},
                                  should_stop=False)
        reporter.on_validation_end(trainer, None)
    assert study.trials[0].intermediate_values == pytest.approx({0: 0.3, 1: 0.5, 2: 0.4})
    assert reporter.values == pytest.approx([0.3, 0.5, 0.4])


def test_a_dead_workers_trial_is_found_in_the_background_while_a_live_one_trains(tmp_path):
    """The living worker's trial beats through the worker's own Heartbeat thread (not by hand): a thread that
    stopped beating would let its trial be taken for dead. The same thread finds the dead worker's trial while
    the live worker's trial is still running (once, only between the live worker's own trials)."""
    from zoo.commands.tune.storage import Heartbeat, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(f"journal:{tmp_path / 'study.log'}", heartbeat_s=1)
    study = optuna.create_study(study_name="j", storage=storage)
    alive, dead = study.ask(), study.ask()
    for trial in (alive, dead):
        trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        storage.record_heartbeat(trial._trial_id)
    with Heartbeat(storage, alive._trial_id, study):  # its worker still beats, every second, and looks around
        deadline = time.monotonic() + 6  # grace: 2 beats; then the next beat looks
        while study.get_trials()[1].state == TrialState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.2)  # one more beat: the live trial must not be taken for dead
        trials = study.get_trials()
    assert [t.state for t in trials[:2]] == [TrialState.RUNNING, TrialState.FAIL]
    assert trials[2].state == TrialState.WAITING and trials[2].params == trials[1].params  # queued again
    assert trials[2].system_attrs["failed_trial"] == dead.number


@pytest.mark.slow  # a zoo tune process with a process per trial, then a second for the results
def test_a_study_on_a_journal_file_and_its_results_on_demand(tmp_path):
    (tmp_path / "space.yaml").write_text(LR)
    journal = f"journal:{tmp_path / 'study.log'}"
    out = run_tune(["-c", LINREG, "-c", "space.yaml", "--n_trials", "2", "--study", "j", "--storage", journal,
                    "--trainer.max_epochs", "1"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    shown = run_tune(["--results", "--study", "j", "--storage", journal], tmp_path)
    assert shown.returncode == 0, shown.stderr
    trials = optuna.load_study(study_name="j", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))).trials
    rows = [line.split() for line in shown.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])]
    # best first (val/loss: lowest), each with the value the study holds
    assert [int(r[0]) for r in rows] == [t.number for t in sorted(trials, key=lambda t: t.value)]
    assert [float(r[2]) for r in rows] == [round(t.value, 4) for t in sorted(trials, key=lambda t: t.value)]
    missing = run_tune(["--results", "--study", "nope"], tmp_path)
    assert missing.returncode == 2 and "no study 'nope'" in missing.stderr


@pytest.mark.slow  # a study of several trials, a process each
def test_diverging_trials_are_failed_with_their_reason_and_a_study_of_them_stops(tmp_path):
    (tmp_path / "space.yaml").write_text("search:\n  optimizer.init_args.lr: {scale: choice, values: [1000.0]}\n")
    out = run_tune(["-c", LINREG, "-c", "space.yaml", "--n_trials", "3", "--study", "nan", "--pruner", "none",
                    "--trainer.max_epochs", "1"], tmp_path)
    assert out.returncode == 1 and "3 trials of the study failed" in out.stderr, out.stdout + out.stderr
    trials = trials_of(f"sqlite:///{tmp_path / 'lightning_logs' / 'tune' / 'nan' / 'study.db'}", "nan")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert all("the training loss became" in t.user_attrs["error"] for t in trials)


@pytest.mark.slow  # a study of several trials, a process each
def test_a_grid_study_tries_each_point_once_and_ends(tmp_path):
    (tmp_path / "space.yaml").write_text(LR)
    out = run_tune(["-c", LINREG, "-c", "space.yaml", "--n_trials", "5", "--study", "g", "--sampler", "grid",
                    "--grid_points", "2", "--pruner", "none", "--trainer.max_epochs", "1"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 points, so 2 trials" in out.stdout
    trials = trials_of(f"sqlite:///{tmp_path / 'lightning_logs' / 'tune' / 'g' / 'study.db'}", "g")
    assert sorted(t.params["optimizer.init_args.lr"] for t in trials) == pytest.approx([0.001, 0.1])
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


def seeded_study(tmp_path: Path, name: str, extra: list[str]) -> tuple[optuna.Study, list[str]]:
    """A study made by one real trial of ``zoo tune`` (so its settings are the command's), to which the test adds
    finished trials of its own choosing; returns it and the arguments that continue it."""
    (tmp_path / "space.yaml").write_text(LR)
    args = ["-c", LINREG, "-c", "space.yaml", "--study", name, *extra]
    first = run_tune([*args, "--n_trials", "1", "--trainer.max_epochs", "1"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    storage = f"sqlite:///{tmp_path / 'lightning_logs' / 'tune' / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=storage), args


@pytest.mark.slow  # two zoo tune commands, a process per trial
def test_tpe_is_the_sampler_of_a_tpe_study(tmp_path):
    """Past TPE's 10 random start-up trials, --sampler tpe --sampler_seed 3 proposes what Optuna's own TPESampler
    with that seed proposes from the same finished trials (lowest loss around lr 0.01), and that lies near 0.01."""
    study, args = seeded_study(tmp_path, "tpe", ["--sampler", "tpe", "--sampler_seed", "3", "--pruner", "none"])
    dist = study.trials[0].distributions
    for lr, value in [(0.01, -2.0), (0.01 * 10**0.125, -1.5), (0.01 * 10**-0.125, -1.5),
                      *((10 ** (-3 + 2 * i / 7), 10.0) for i in range(8))]:
        study.add_trial(optuna.trial.create_trial(params={"optimizer.init_args.lr": lr}, distributions=dist, value=value))
    reference = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=10))
    reference.add_trials(study.trials)
    expected = reference.ask(dist).params["optimizer.init_args.lr"]
    out = run_tune([*args, "--n_trials", "13", "--trainer.max_epochs", "1"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(study.trials) == 13 and study.trials[12].params["optimizer.init_args.lr"] == expected
    assert abs(math.log10(expected) + 2) < 0.5  # near the best trials, as TPE should be


@pytest.mark.slow  # two zoo tune commands, a process per trial
def test_successive_halving_prunes_at_its_first_rung(tmp_path):
    """Four finished trials that reached a loss below any real run's at the first rung (epoch 2): successive halving
    keeps the best third there, so the next trial stops after 2 of its 5 epochs. The median pruner would not
    stop it (those trials reported no epochs), nor would no pruner."""
    study, args = seeded_study(tmp_path, "halving", ["--pruner", "halving"])
    done = study.trials[0]
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(params=done.params, distributions=done.distributions, value=-1.0,
                                                  system_attrs={"completed_rung_0": -1.0}))
    out = run_tune([*args, "--n_trials", "6", "--trainer.max_epochs", "5"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["epochs"] == 2, (trial.state, trial.user_attrs)
    assert "pruned after 2 epoch(s)" in out.stdout


@pytest.mark.parametrize("space_file", sorted((CONFIGS / "search").glob("*.yaml")), ids=lambda p: p.name)
def test_each_shipped_space_names_options_zoo_fit_takes(space_file, tmp_path, monkeypatch):
    """Every option of configs/search/ exists on the MLP's config and takes both ends of its range (nothing written)."""
    from zoo.commands.tune.command import parser, settings_from

    monkeypatch.chdir(tmp_path)
    args, extra = parser().parse_known_args(["-c", str(CONFIGS / "mlp_fashion_mnist.yaml"), "-c", str(space_file)])
    settings = settings_from(args, extra)
    assert settings["metric"] == "val/acc" and settings["direction"] == "maximize"
    assert set(settings["space_dict"]) and list(tmp_path.iterdir()) == []


def _open(url: str, barrier) -> None:
    from zoo.commands.tune.storage import open_storage

    barrier.wait()
    open_storage(url)


@pytest.mark.slow  # six workers behind a barrier
@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_workers_starting_together_on_an_empty_database_all_open_it(kind, tmp_path):
    """Each makes Optuna's tables at the same moment; the database lets one create them, the others retry."""
    import contextlib
    import multiprocessing

    if kind == "postgresql" and postgres.missing():
        pytest.skip(postgres.missing())
    context = multiprocessing.get_context("spawn")
    database = postgres.server() if kind == "postgresql" else contextlib.nullcontext(f"sqlite:///{tmp_path}/s.db")
    for _ in range(3 if kind == "sqlite" else 1):  # SQLite's race is narrower: give it more chances to show
        if kind == "sqlite":
            (tmp_path / "s.db").unlink(missing_ok=True)
        with database as url:
            barrier = context.Barrier(6)
            workers = [context.Process(target=_open, args=(url, barrier)) for _ in range(6)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(120)
            assert [w.exitcode for w in workers] == [0] * 6


@pytest.mark.skipif(postgres.missing() is not None, reason=postgres.missing() or "")
def test_a_refusing_database_is_named_for_what_it_refused():
    """A wrong password and a missing database are not 'cannot be reached; start the database'."""
    from zoo.commands.tune.storage import open_storage

    with postgres.server(password="right") as url:
        with pytest.raises(ConfigError, match="refused the user or password") as refused:
            open_storage(url.replace(":right@", ":wrong@"))
        assert "wrong" not in str(refused.value)  # the password is never shown
        with pytest.raises(ConfigError, match="no such database .*createdb"):
            open_storage(url.rsplit("/", 1)[0] + "/nodb")
        open_storage(url)  # the right one opens
    with pytest.raises(ConfigError, match="cannot be reached .*start the database"):
        open_storage(url)  # the server stopped


def test_in_an_unwritable_folder_root_dir_moves_the_study(tmp_path):
    """--trainer.default_root_dir moves a zoo fit run, not a study's folder: --root_dir does."""
    import shlex

    ro, elsewhere = tmp_path / "ro", tmp_path / "studies"
    ro.mkdir()
    (tmp_path / "space.yaml").write_text(LR)
    tune = [sys.executable, "-m", "zoo.cli", "tune", "-c", LINREG, "-c", str(tmp_path / "space.yaml"),
            "--n_trials", "1", "--trainer.max_epochs", "1"]
    out = in_namespace(f"mount --bind -o ro {ro} {ro} && cd {ro} && {shlex.join(tune)}; echo exit=$?; "
                       f"{shlex.join([*tune, '--root_dir', str(elsewhere)])}; echo exit=$?", tmp_path)
    first, second = out.stdout.split("exit=")[1:3]
    assert first.startswith("2"), out.stderr[-3000:]
    lines = out.stderr.splitlines()
    assert lines[0].startswith("error: cannot write") and str(ro) in lines[0] and "--root_dir" in lines[0], lines
    assert second.startswith("0"), out.stdout[-2000:] + out.stderr[-3000:]
    # the trial's progress on the worker's output, between its first and last line
    said = out.stdout.splitlines()
    start = next(i for i, line in enumerate(said) if line.startswith("Trial 0: lr="))
    assert said[start + 1].startswith("  trial 0, epoch 1/1: val/loss ") and said[start + 1].endswith(" s)"), said
    assert said[start + 2].startswith("Trial 0 finished: best val/loss"), said
    assert (elsewhere / "linreg_synthetic-space" / "study.db").is_file()
    assert len(list((elsewhere / "linreg_synthetic-space" / "trials").glob("version_*/config.yaml"))) == 1


def test_without_the_tune_extra_the_command_says_how_to_install_it(tmp_path):
    """A core install (no Optuna): one line naming the extra, exit 2, before any check that would need it."""
    (tmp_path / "hide" / "optuna").mkdir(parents=True)
    (tmp_path / "hide" / "optuna" / "__init__.py").write_text("raise ImportError('no optuna here')\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path / 'hide'}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "tune", "-c", LINREG, "-c",
                          str(CONFIGS / "search" / "lr.yaml")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == ["error: zoo tune needs Optuna: pip install 'd2l-zoo[tune]' "
                                               "(or -e '.[tune]' in a clone)"]
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow  # two zoo tune commands, a trial of 40 short epochs
def test_sigterm_to_a_worker_saves_the_trials_run_and_its_rerun_continues_from_it(tmp_path):
    """Preemption, scancel, kill: one line and exit 143; the trial's run writes last.ckpt, the trial is queued
    again, and the same command continues it from that checkpoint, in the same run folder."""
    (tmp_path / "space.yaml").write_text("search:\n  optimizer.init_args.lr: {scale: log, low: 0.01, high: 0.03}\n")
    args = ["-c", LINREG, "-c", "space.yaml", "--n_trials", "1", "--trainer.max_epochs", "40"]
    worker = start_tune(args, tmp_path)
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("lightning_logs/tune/*/trials/version_*/checkpoints/last.ckpt")):
        assert worker.poll() is None and time.monotonic() < deadline, worker.stdout.read()
        time.sleep(0.5)
    time.sleep(1)
    worker.send_signal(signal.SIGTERM)
    out = worker.communicate(timeout=120)[0]
    assert worker.returncode == 143, out
    said = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and "stopped by SIGTERM during trial 0" in said[0] and "last.ckpt" in said[0], out
    run = next(tmp_path.glob("lightning_logs/tune/*/trials/version_*"))
    stopped_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    again = run_tune(args, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Trial 1 (again, continuing from" in again.stdout
    log = next(tmp_path.glob("lightning_logs/tune/*/logs/trial_1.log")).read_text()
    assert f"Restoring states from the checkpoint path at {run / 'checkpoints' / 'last.ckpt'}" in log
    assert len(list(tmp_path.glob("lightning_logs/tune/*/trials/version_*"))) == 1  # the same run folder
    study = optuna.load_study(study_name=run.parent.parent.name, storage=f"sqlite:///{run.parent.parent / 'study.db'}")
    first, second = study.trials
    assert first.state == TrialState.FAIL and first.user_attrs["error"] == "stopped by SIGTERM"
    assert second.state == TrialState.COMPLETE and second.params == first.params
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] > stopped_at > 0
