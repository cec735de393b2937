"""Where a study lives: an SQLite file in the study's folder (no server), a PostgreSQL database shared by
workers on many machines, or a journal file on a shared filesystem; with heartbeats, so that the trial of a
worker that died is found and run again by a live one."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from zoo_common import ConfigError

HEARTBEAT_S = 60  # a worker's trial is dead after two heartbeats missed


def default_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'study.db').absolute()}"


def describe(url: str) -> str:
    """The storage as a user may read it (no password)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://...@{rest.rsplit('@', 1)[1]}"
    return url


SCHEMES = ("postgresql", "postgresql+psycopg", "sqlite", "mysql", "mysql+pymysql")


def refusal(text: str, kind: str) -> str:
    """What a database's refusal means and what to do, from its own message (psycopg's, SQLite's)."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), kind)[:200]
    lower = text.lower()
    if any(w in lower for w in ("password authentication failed", "no password supplied")) or \
            ("role" in lower and "does not exist" in lower):
        return f"the server refused the user or password ({first}); check USER:PASSWORD in the URL"
    if "database" in lower and "does not exist" in lower:
        return f"no such database ({first}); make it once with createdb, or name an existing one"
    if "unable to open database file" in lower:
        return f"cannot open the file ({first}); give sqlite:///FILE in a folder that exists and is writable"
    if "no module named" in lower or "can't load plugin" in lower:
        return f"no driver for it ({first}); pip install 'd2l-zoo[tune]' has PostgreSQL's"
    return f"cannot be reached ({first}); start the database, or check HOST:PORT in the URL"


class HeartbeatJournal(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeats its RDB storage has: each beat a trial's system attribute,
    so ``optuna.storages.fail_stale_trials`` finds a dead worker's trial on a shared filesystem too."""

    def __init__(self, backend, heartbeat_interval: int, grace_period: int, heartbeat_stale_trial_callback) -> None:
        super().__init__(backend)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_callback = heartbeat_stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        # keyed by the trial: a trial run again inherits its dead predecessor's attributes
        self.set_trial_system_attr(trial_id, f"heartbeat:{trial_id}", time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if now - t.system_attrs.get(f"heartbeat:{t._trial_id}", now) > self.grace_period]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_callback


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, create: bool = True):
    """The storage at ``url``, reachable, with heartbeats; a trial found dead is queued again with its values
    (Optuna's RetryHeartbeatStaleTrialCallback). ConfigError (one line) when it cannot be reached or made."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" in Optuna's words
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    beats = {"heartbeat_interval": heartbeat_s, "grace_period": 2 * heartbeat_s, "heartbeat_stale_trial_callback": retry}
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:")).expanduser()
        if not path.parent.is_dir():
            raise ConfigError(f"--storage {url}: no folder {path.parent}; give a journal file in an existing "
                              "folder (on a filesystem every worker sees)")
        if not path.exists() and not create:
            raise ConfigError(f"--storage {url}: no such journal file")
        return HeartbeatJournal(JournalFileBackend(str(path)), **beats)
    scheme = url.split("://", 1)[0] if "://" in url else None
    if scheme not in SCHEMES:
        what = f"unknown scheme {scheme!r}" if scheme else "not a storage"
        raise ConfigError(f"--storage {describe(url)}: {what}; give postgresql://USER:PASSWORD@HOST:PORT/DB, "
                          "sqlite:///FILE or journal:FILE")
    given = url
    if url.startswith("postgresql://"):  # psycopg 3, whatever SQLAlchemy's default driver (the .[tune] extra has it)
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # SQLite waits for another worker's write instead of failing with "database is locked"
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": 10}
    for attempt in range(10):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are "experimental" in Optuna's words
                return RDBStorage(url, engine_kwargs=engine, **beats)
        except Exception as e:  # noqa: BLE001 (no server, wrong password, no driver: one line)
            text = str(e)
            # workers started together on an empty database make its tables (and alembic's version row) at once: one
            # wins, the others retry (PostgreSQL: duplicate key; SQLite: already exists, UNIQUE constraint failed)
            if attempt < 9 and any(w in text for w in ("duplicate key", "already exists", "UNIQUE constraint failed")):
                time.sleep(0.2 + 0.3 * attempt)
                continue
            raise ConfigError(f"--storage {describe(given)}: {refusal(text, type(e).__name__)}") from None


class Heartbeat:
    """A thread that beats for a trial while its run trains (Optuna beats only inside ``study.optimize``); with
    ``study``, each beat also looks for other workers' dead trials and queues them again, so a dead worker's
    trial is noticed within two heartbeats and one, not after the live workers' own trials."""

    def __init__(self, storage, trial_id: int, study: optuna.Study | None = None) -> None:
        self.storage, self.trial_id, self.study, self.stop = storage, trial_id, study, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval() or HEARTBEAT_S
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
                if self.study is not None:
                    fail_stale(self.study)
            except Exception:  # noqa: BLE001 (a missed beat; the next one may get through)
                pass
            if self.stop.wait(interval):
                return

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
