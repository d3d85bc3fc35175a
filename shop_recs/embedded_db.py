"""Embedded PostgreSQL + pgvector for development, tests and the demo.

Used only when ``DATABASE_URL`` is unset. ``pgserver`` ships Postgres 16 with pgvector 0.6.2 and
serialises start-up across processes with an inter-process lock, so a web server, a worker and a
management command that start together end up on one server per data directory.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The pgdata directories this process started or attached to (``manage.py recs_db``).
STARTED: list[Path] = []


def embedded_database(data_dir: Path, *, cleanup: str | None = None) -> dict[str, Any]:
    """Start (or attach to) the embedded server under ``data_dir`` and return Django DB settings.

    ``cleanup=None`` leaves the server running after this process exits, so data and the server
    survive restarts of the app; tests pass ``"delete"`` for a throwaway server.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI) and falls back to /tmp,
            # which is where pgserver's start-up lock belongs anyway.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:  # pragma: no cover - only without the runtime requirements
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded database package 'pgserver' is missing: "
            "run `make install` (or `pip install -r requirements.txt`), or set DATABASE_URL "
            "to a PostgreSQL server with the pgvector extension."
        ) from exc

    # pgserver checks for pgdata, then creates it with exist_ok=False: two processes starting at
    # once both see it missing and one fails (FileExistsError). Created here, idempotently; the
    # initdb and start-up that follow are serialised by pgserver's own lock.
    (data_dir / "pgdata").mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pgdata", cleanup_mode=cleanup)
    info = server.get_postmaster_info()
    if server.pgdata not in STARTED:
        STARTED.append(server.pgdata)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def database_url(cfg: dict[str, Any]) -> str:
    """A ``DATABASE_URL`` for Django DB settings, so child processes (workers, gunicorn) reach the
    same database; a socket directory becomes a percent-encoded host, as dj-database-url reads it.
    """
    host = quote(str(cfg.get("HOST") or "localhost"), safe="")
    user = quote(str(cfg.get("USER") or ""), safe="")
    password = f":{quote(str(cfg['PASSWORD']), safe='')}" if cfg.get("PASSWORD") else ""
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgresql://{user}{password}@{host}{port}/{cfg['NAME']}"


def postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster's process id from ``postmaster.pid``, or None."""
    try:
        first = (Path(pgdata) / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first.strip())
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def stop(pgdata: Path, *, timeout: float = 30.0) -> bool:
    """Stop the embedded server of ``pgdata`` (a fast shutdown: SIGINT to the postmaster, which
    as root is also how ``pg_ctl``, which refuses root, would be bypassed). True when it is no
    longer running."""
    pid = postmaster_pid(pgdata)
    if pid is None:
        return True
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if postmaster_pid(pgdata) is None:
            return True
        time.sleep(0.1)
    return False
