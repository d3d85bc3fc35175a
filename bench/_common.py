"""Shared set-up for the benchmarks: a throwaway database, Django, gunicorn on loopback."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.server_support import free_port, server_env  # noqa: E402
from tests.server_support import start_gunicorn as _start  # noqa: E402

__all__ = ["ROOT", "free_port", "p50", "percentile", "setup_django", "start_gunicorn"]


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


def start_gunicorn(
    port: int, workers: int, extra_env: dict[str, str] | None = None, *, threads: int = 1
) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:port against the database Django is using in this process
    (throttles off: a benchmark measures the server, not the rate limiter). The tests start
    it the same way (``tests/server_support.py``)."""
    from django.db import connection

    from shop_recs.embedded_db import database_url

    env = server_env(database_url(connection.settings_dict), extra_env)
    try:
        server = _start(
            env, workers=workers, threads=threads, port=port, extra_args=("--log-level", "warning")
        )
    except RuntimeError as exc:
        raise SystemExit(f"gunicorn did not become ready: {exc}") from exc
    return server.proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def p50(values: list[float]) -> float:
    return statistics.median(values)
