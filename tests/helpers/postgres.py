"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, pg_ctl start on a free port of
127.0.0.1 (trust authentication, nothing outside this machine), stopped and removed afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

BIN = Path(os.environ.get("ZOO_PG_BIN", "/usr/lib/postgresql/15/bin"))


def missing() -> str | None:
    """Why no server can be started here (None: one can)."""
    if not (BIN / "initdb").is_file() or not (BIN / "pg_ctl").is_file():
        return f"PostgreSQL's initdb and pg_ctl are not in {BIN} (set ZOO_PG_BIN to their folder)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root, and no runuser to start PostgreSQL as another user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(password: str | None = None):
    """Yields a postgresql:// URL of a new, empty database; with ``password``, the server asks for it (and the
    URL carries it)."""
    folder = Path(tempfile.mkdtemp(prefix="zoo-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres"
        shutil.chown(folder, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = folder / "data", _free_port()
    run = lambda *words: subprocess.run([*as_user, *words], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        auth = ["--auth=trust"]
        if password:
            (folder / "pw").write_text(password)
            if as_user:
                shutil.chown(folder / "pw", as_user[2])
            auth = ["--auth=scram-sha-256", f"--pwfile={folder / 'pw'}"]
        run(str(BIN / "initdb"), "-D", str(data), "-U", "zoo", *auth, "--no-sync")
        run(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        yield f"postgresql://zoo{':' + password if password else ''}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
