"""Operating the plugin inside a host shop: the database checks that run before ``migrate``,
the periodic jobs a shop adds to its own beat schedule, and the embedded database command."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command

from shop_recs.workers.schedule import beat_schedule

ROOT = Path(__file__).resolve().parent.parent

SQLITE_SETTINGS = """
SECRET_KEY = "x"
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "rest_framework",
    "rest_framework.authtoken", "django_filters", "drf_spectacular",
    "shop_recs.catalog", "shop_recs.api", "shop_recs.workers", "shop_recs.storefront",
    "shop_recs.dashboard",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
%(extra)s
"""


def _manage(tmp_path: Path, *args: str, settings: str, db: str = "", extra: str = "") -> tuple:
    (tmp_path / "hostsettings.py").write_text(
        textwrap.dedent(
            SQLITE_SETTINGS % {"db": db or str(tmp_path / "shop.sqlite3"), "extra": extra}
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SHOP_RECS_"))},
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": settings,
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_sqlite_shop_is_stopped_before_migrate_creates_anything(tmp_path) -> None:
    code, out = _manage(tmp_path, "check", settings="hostsettings")
    assert code != 0 and "shop_recs.E020" in out and "is sqlite" in out
    assert "embedded_database" in out  # the fix is named
    code, out = _manage(tmp_path, "migrate", "--noinput", settings="hostsettings")
    assert code != 0 and "shop_recs.E020" in out
    assert (
        not (tmp_path / "shop.sqlite3").exists() or (tmp_path / "shop.sqlite3").stat().st_size == 0
    )


def _machine_postgres() -> str | None:
    """The machine's own PostgreSQL (no pgvector package for it here), when it runs."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        url = "postgresql://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
        return url if row[0] == 0 else None
    except (OSError, psycopg.Error):
        return None


def test_a_postgres_without_pgvector_fails_the_database_check(tmp_path) -> None:
    url = _machine_postgres()
    if url is None:
        pytest.skip("no PostgreSQL without pgvector on 127.0.0.1:5432 to try")
    extra = f"import dj_database_url\nDATABASES = {{'default': dj_database_url.parse({url!r})}}"
    code, out = _manage(tmp_path, "check", settings="hostsettings", extra=extra)
    assert code == 0, out  # PostgreSQL: the vendor is right
    code, out = _manage(
        tmp_path, "check", "--database", "default", settings="hostsettings", extra=extra
    )
    assert code != 0 and "shop_recs.E021" in out and "no pgvector extension" in out


def test_the_periodic_jobs_a_shop_adds_to_its_beat_schedule(settings) -> None:
    assert beat_schedule() == {
        "shop-recs-refresh-item-stats": {
            "task": "shop_recs.workers.tasks.refresh_all_item_stats",
            "schedule": 3600.0,
        },
        "shop-recs-flush-experiments": {
            "task": "shop_recs.workers.tasks.flush_experiments",
            "schedule": 30.0,
        },
    }
    jobs = beat_schedule(
        stats_seconds=None, retrain_seconds=86400, sync_seconds=900, experiments_seconds=None
    )
    assert jobs == {
        "shop-recs-train-model": {
            "task": "shop_recs.workers.tasks.train_model",
            "schedule": 86400.0,
        },
        "shop-recs-sync-products": {
            "task": "shop_recs.workers.tasks.sync_products",
            "schedule": 900.0,
        },
    }
    from shop_recs.celery import app

    for entry in [*jobs.values(), *beat_schedule().values()]:
        assert entry["task"] in app.tasks  # the names are the registered tasks
    # the standalone service uses the same entries
    assert beat_schedule() == settings.CELERY_BEAT_SCHEDULE


@pytest.mark.django_db
def test_recs_db_status_names_the_embedded_server() -> None:
    out = io.StringIO()
    call_command("recs_db", "status", stdout=out)
    text = out.getvalue()
    assert "Embedded PostgreSQL: data in" in text and "running: process" in text
    assert "pgvector 0." in text and "recs_db stop" in text


@pytest.mark.slow
def test_recs_db_stops_the_embedded_server(tmp_path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SHOP_RECS_"))},
        "SHOP_RECS_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
    }
    env.pop("DATABASE_URL", None)

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "running: process" in manage("recs_db", "status")
    assert "Stopped the embedded server" in manage("recs_db", "stop")
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()
    from shop_recs.embedded_db import stop

    try:
        assert "running: process" in manage("recs_db")  # started again by the next command
    finally:
        stop(tmp_path / "pgdata")
