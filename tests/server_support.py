"""gunicorn serving the standalone app on loopback, against a database of the caller's choice:
the browser tests, the fault and throttle tests and the benchmarks (``bench/_common.py``)
all start it through :func:`start_gunicorn`.

No Django import at module level, so a benchmark can import it before ``django.setup()``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent

#: Environment variables of the test or benchmark process that must not reach a server: it
#: would start its own embedded database, delete it, or queue to a broker.
_NOT_INHERITED = ("CELERY_BROKER_URL", "SHOP_RECS_EMBEDDED_CLEANUP", "DJANGO_ALLOW_ASYNC_UNSAFE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a standalone server (``shop_recs.settings``) on ``database_url``,
    throttles off unless ``extra`` sets them."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
        "DATABASE_URL": database_url,
        "SHOP_RECS_THROTTLE_ANON": "",
        "SHOP_RECS_THROTTLE_USER": "",
    }
    for key in _NOT_INHERITED:
        env.pop(key, None)
    env.update(extra or {})
    return env


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path | None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_gunicorn(
    env: Mapping[str, str],
    *,
    workers: int = 1,
    threads: int = 1,
    port: int | None = None,
    log: Path | None = None,
    ready_path: str = "/api/v1/items/?page_size=1",
    timeout: float = 90,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """``gunicorn shop_recs.wsgi`` on 127.0.0.1 (a free port unless given), ready when
    ``ready_path`` answers 2xx; its output goes to ``log`` (else inherited)."""
    port = port or free_port()
    out = log.open("w") if log else None
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "shop_recs.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            *extra_args,
        ],
        cwd=ROOT,
        env=dict(env),
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(server.url + ready_path, timeout=10).ok:
                return server
        # a first request can take long on a loaded machine (the worker's first database
        # connection, imports): a read timeout means "not ready yet", as a refused connection
        except (requests.ConnectionError, requests.Timeout):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"gunicorn did not start:\n{server.log_tail(3000)}")
        time.sleep(0.3)


@contextmanager
def gunicorn(env: Mapping[str, str], **kwargs: object) -> Iterator[Server]:
    server = start_gunicorn(env, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
