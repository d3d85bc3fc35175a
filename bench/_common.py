"""Shared set-up for the benchmarks: a throwaway database, Django, gunicorn on loopback."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def setup_django(database_url: str = "") -> None:
    """Django on ``database_url``, or on a fresh embedded PostgreSQL deleted at exit."""
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["SHOP_RECS_DATA_DIR"] = tempfile.mkdtemp(prefix="shop_recs_bench_")
        os.environ["SHOP_RECS_EMBEDDED_CLEANUP"] = "delete"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop_recs.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    port: int, workers: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:port against the database Django is using in this process."""
    from django.db import connection

    from shop_recs.embedded_db import database_url

    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
        # a benchmark measures the server, not the rate limiter
        "SHOP_RECS_THROTTLE_ANON": "",
        "SHOP_RECS_THROTTLE_USER": "",
        **(extra_env or {}),
    }
    env.pop("SHOP_RECS_EMBEDDED_CLEANUP", None)
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
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v1/items/?page_size=1", timeout=2).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not become ready within 90 s; see its output above")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def p50(values: list[float]) -> float:
    return statistics.median(values)
