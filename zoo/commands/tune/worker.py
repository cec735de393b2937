"""One worker of a study: ask the study for a trial, train it as an ordinary ``zoo fit`` run, tell the study
how it ended; until the study has its trials. Any number of workers, on any machines that reach the storage.

A trial runs in a child process (``python -m zoo.commands.tune.trial fit ...``: ``zoo fit`` and the trial's reporter): DDP starts its processes from it as from any
run, a crash or a kill stays in it, and it dies with the worker (PR_SET_PDEATHSIG), so a killed worker leaves
no run training for a trial the study has already given up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from zoo.commands.tune import space as spaces
from zoo.commands.tune.report import ENV
from zoo.commands.tune.results import shown
from zoo.commands.tune.storage import Heartbeat, fail_stale
from zoo_common import die_with_parent

LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def option_words(values: dict) -> list[str]:
    """The sampled values as ``zoo fit`` options."""
    return [f"--{option}={value if isinstance(value, str) else json.dumps(value)}" for option, value in values.items()]


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1][:300]


def _output_fd() -> int | None:
    """A copy of this process's standard output for a trial to write its progress on (None when it has none)."""
    try:
        sys.stdout.flush()
        return os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a file (a test's capture)
        return None


class Stopped(Exception):
    """SIGTERM reached the worker (preemption, ``scancel``, ``kill``); the message is the one line to print."""


def _run_folder(log: Path) -> Path | None:
    """The trial's run folder, as its ``zoo fit`` announced it in the log."""
    try:
        found = re.findall(r"^Run folder: (\S+) \(", log.read_text(errors="replace"), flags=re.M)
    except OSError:
        return None
    return Path(found[-1]) if found else None


class Worker:
    def __init__(self, study: optuna.Study, settings: dict, folder: Path, n_trials: int, pruner: str) -> None:
        self.study, self.settings, self.folder, self.n_trials, self.pruner = study, settings, folder, n_trials, pruner
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.child: subprocess.Popen | None = None
        self.terminated = False

    def _on_sigterm(self, signum, frame) -> None:
        """SIGTERM: passed on to the trial's run, which writes its last.ckpt and stops; the worker then queues the
        trial again (``one``). Between trials there is nothing to save: stop now."""
        self.terminated = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
        else:
            raise Stopped("stopped by SIGTERM between trials; run the same command to go on with the study")

    def surplus(self, trial: optuna.Trial) -> bool:
        """Two workers asked at the same moment for the study's last trial: the later number is one too many."""
        earlier = [t for t in self.study.get_trials(deepcopy=False, states=LIVE) if t.number < trial.number]
        return len(earlier) >= self.n_trials

    def run(self) -> int:
        """Trials until the study has ``n_trials`` finished (complete or pruned); the number this worker ran."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        ran, failed_in_a_row, said_waiting = 0, 0, False
        while True:
            fail_stale(self.study)  # a dead worker's trial: failed, and queued again with its values
            trials = self.study.get_trials(deepcopy=False)  # read once a round: the study as all workers left it
            n = {state: sum(t.state == state for t in trials) for state in TrialState}
            done = n[TrialState.COMPLETE] + n[TrialState.PRUNED]
            if done >= self.n_trials:
                return ran
            failed = sum(t.state == TrialState.FAIL  # ran and failed (not killed, not Ctrl-C or SIGTERM, not surplus)
                         and t.user_attrs.get("error", "interrupted") not in ("interrupted", "stopped by SIGTERM")
                         for t in trials)
            if failed >= max(self.n_trials, 3):
                raise RuntimeError(f"{failed} trials of the study failed (their lines are above, the "
                                   "reasons in `zoo tune --results`); narrow the space to values the run can train with")
            if not n[TrialState.WAITING] and done + n[TrialState.RUNNING] >= self.n_trials:
                if not said_waiting:  # stay: if their worker dies, its trial is run again here
                    print(f"Waiting for {n[TrialState.RUNNING]} trial(s) running elsewhere", flush=True)
                    said_waiting = True
                time.sleep(min(5, self.study._storage.get_heartbeat_interval() or 5))
                continue
            trial = self.study.ask()
            if self.surplus(trial):
                trial.set_user_attr("surplus", True)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            said_waiting = False
            state = self.one(trial)
            ran += 1
            failed_in_a_row = failed_in_a_row + 1 if state == TrialState.FAIL else 0  # not counted: a diverged run
            if failed_in_a_row >= 3:
                raise RuntimeError("3 trials in a row failed (the last one's line is above); fix the options and "
                                   "run the same command again: the study goes on")

    def _queue_again(self, trial: optuna.Trial, values: dict, log: Path) -> None:
        """A trial whose run SIGTERM stopped: failed as 'stopped', and queued again with its values and where its
        run is, so the next worker to take it continues from its last.ckpt."""
        run = _run_folder(log)
        trial.set_user_attr("error", "stopped by SIGTERM")
        self.study.tell(trial, state=TrialState.FAIL)
        self.study.enqueue_trial(trial.params, user_attrs={"stopped_run": str(run) if run else "",
                                                           "stopped_trial": trial.number})
        saved = run / "checkpoints" / "last.ckpt" if run else None
        where = (f"its run saved {shown(saved)}, and the trial is queued again to continue from it" if saved and saved.is_file()
                 else "its run had no checkpoint yet; the trial is queued again from the start")
        raise Stopped(f"stopped by SIGTERM during trial {trial.number}: {where}; run the same command to go on")

    def one(self, trial: optuna.Trial) -> TrialState | None:
        values = spaces.suggest(trial, self.settings["space_dict"])
        retried = self.study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
        stopped_run = trial.user_attrs.get("stopped_run")  # a trial queued again after SIGTERM: where it was
        trial.set_user_attr("values", values)
        trial.set_user_attr("worker", self.name)
        runs = self.folder / "trials"
        runs.mkdir(parents=True, exist_ok=True)
        outcome = runs / f".outcome-{os.getpid()}-{trial.number}.json"
        log = self.folder / "logs" / f"trial_{trial.number}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "zoo.commands.tune.trial", "fit", *self.settings["fit_args"], *option_words(values),
                   f"--trainer.logger.init_args.save_dir={self.folder}", "--trainer.logger.init_args.name=trials",
                   "--trainer.enable_progress_bar=false"]
        progress = _output_fd()  # the trial's epoch lines come to the worker's output
        env = {**os.environ, ENV: json.dumps({
            "storage": self.settings["storage"], "study": self.study.study_name, "trial_id": trial._trial_id,
            "number": trial.number, "values": values, "metric": self.settings["metric"], "pruner": self.pruner,
            "outcome": str(outcome), "progress_fd": progress})}
        said = " ".join(f"{o.rsplit('.', 1)[-1]}={v:.4g}" if isinstance(v, float) else f"{o.rsplit('.', 1)[-1]}={v}"
                         for o, v in values.items())
        again = f" (again: trial {retried}'s worker died)" if retried is not None else ""
        if stopped_run:
            last = Path(stopped_run) / "checkpoints" / "last.ckpt"
            if last.is_file():  # this machine, or a runs folder on a shared filesystem
                command.append(f"--ckpt_path={last}")
                again = f" (again, continuing from {shown(last)})"
            else:
                again = f" (again, from the start: {shown(last)} is not on this machine)"
        print(f"Trial {trial.number}{again}: {said}", flush=True)
        start = time.monotonic()
        try:
            with Heartbeat(self.study._storage, trial._trial_id, self.study), open(log, "wb") as out:
                try:
                    self.child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                  preexec_fn=die_with_parent, pass_fds=() if progress is None else (progress,))
                finally:
                    if progress is not None:
                        os.close(progress)
                code = self.child.wait()
                self.child = None
        except KeyboardInterrupt:  # Ctrl-C reached the run too; the study gets a new trial in its place
            trial.set_user_attr("error", "interrupted")
            self.study.tell(trial, state=TrialState.FAIL)
            outcome.unlink(missing_ok=True)
            raise
        seconds = time.monotonic() - start
        trial.set_user_attr("seconds", round(seconds, 1))
        if self.terminated:
            self._queue_again(trial, values, log)
        result = json.loads(outcome.read_text()) if code == 0 and outcome.is_file() else None
        outcome.unlink(missing_ok=True)
        if result is None or not result["values"]:
            reason = _last_line(log) or f"exit status {code}"
            trial.set_user_attr("error", reason)
            self.study.tell(trial, state=TrialState.FAIL)
            print(f"Trial {trial.number} failed after {seconds:.0f} s: {reason} (log: {shown(log)})", flush=True)
            # a learning rate too large for the model is a result of the search, not a reason to stop it
            return None if "the training loss became" in reason else TrialState.FAIL
        trial.set_user_attr("epochs", result["epochs"])
        trial.set_user_attr("run", result["run"])
        trial.set_user_attr("config", result["config"])
        metric, vs = self.settings["metric"], result["values"]
        best = trial_value(vs, self.study.direction)
        if result["pruned"]:
            self.study.tell(trial, state=TrialState.PRUNED)  # Optuna keeps its last reported value
            print(f"Trial {trial.number} pruned after {result['epochs']} epoch(s), {seconds:.0f} s: {metric} "
                  f"{vs[-1]:.4f} ({shown(result['run'])})", flush=True)
            return TrialState.PRUNED
        self.study.tell(trial, best)
        print(f"Trial {trial.number} finished: best {metric} {best:.4f} in {result['epochs']} epoch(s), "
              f"{seconds:.0f} s ({shown(result['run'])})", flush=True)
        return TrialState.COMPLETE


def trial_value(values: list[float], direction) -> float:
    """A trial's value: its best epoch's metric (the epoch its best.ckpt holds), not its last one's."""
    return max(values) if direction == optuna.study.StudyDirection.MAXIMIZE else min(values)
