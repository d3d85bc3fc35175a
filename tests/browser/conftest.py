"""A live shop_recs server on the demo catalogue, and headless Chromium driven by Playwright.

The server is what `make demo` runs: a database of its own on the test session's embedded
PostgreSQL, the demo bundle imported and encoded with the real encoders, a trained and
activated model, gunicorn serving the app. Screenshots of every page the tests visit are
saved under ``test-artifacts/browser/`` (``$SHOP_RECS_TEST_ARTIFACTS`` overrides it).

Chromium comes from Debian (`apt-get install chromium`, which `make test` does as root);
Playwright's own browser download is not used. Without Chromium the tests fail under CI and
are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from shop_recs.embedded_db import database_url
from tests.server_support import free_port, server_env, start_gunicorn

ROOT = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = ROOT / "demo" / "bundle"
CHROMIUM = os.environ.get("SHOP_RECS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("SHOP_RECS_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "browser"
PASSWORD = "browser-pw-12345"  # a throwaway database's admin

# Playwright's sync API runs an event loop in this thread; the tests never touch the ORM while
# it runs, but Django's async guard would refuse the fixtures' own queries without this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    log: Path

    def manage(self, *args: str, timeout: float = 900) -> str:
        """Run a management command against the live server's database."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, self.url + path, timeout=60, **kwargs)


def _chromium_or_fail() -> None:
    if Path(CHROMIUM).exists():
        return
    message = (
        f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium "
        "chromium-driver` (make test does this as root) or set SHOP_RECS_CHROMIUM."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def demo_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    """gunicorn on a fresh database holding the demo catalogue, encoded, with a trained model."""
    _chromium_or_fail()
    name = f"shop_recs_browser_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        cfg = dict(connection.settings_dict)
    admin_cfg = {**cfg, "NAME": "postgres"}
    with psycopg.connect(database_url(admin_cfg), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    data_dir = tmp_path_factory.mktemp("browser-server")
    log = data_dir / "gunicorn.log"
    env = server_env(
        database_url({**cfg, "NAME": name}),
        {
            "SHOP_RECS_DATA_DIR": str(data_dir),
            "DJANGO_MEDIA_ROOT": str(data_dir / "media"),
            "DJANGO_STATIC_ROOT": str(data_dir / "static"),
            "DJANGO_SERVE_MEDIA": "1",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        },
    )  # throttles off: the tests call the API in bursts
    port = free_port()
    server = LiveServer(url=f"http://127.0.0.1:{port}", env=env, log=log)
    server.manage("migrate", "--noinput")
    server.manage("collectstatic", "--noinput", "--verbosity", "0")
    server.manage("recs_import", str(DEMO_BUNDLE))
    server.manage("recs_train", "--if-none-active", "--note", "browser tests")
    server.manage("createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com")
    web = None
    try:
        web = start_gunicorn(
            env, workers=1, threads=4, port=port, log=log, ready_path="/admin/login/"
        )
        yield server
    finally:
        if web is not None:
            web.stop()
        print(log.read_text()[-4000:] if log.exists() else "")
        with psycopg.connect(database_url(admin_cfg), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def launch_chromium() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (fails under CI, skips elsewhere, when
    Chromium is missing)."""
    _chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def browser(demo_server) -> Iterator[object]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, demo_server) -> Iterator[object]:
    context = browser.new_context(
        base_url=demo_server.url, viewport={"width": 1400, "height": 1000}
    )
    context.set_default_timeout(30_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def admin_page(page) -> object:
    """A page logged in to the admin as the superuser."""
    login(page, "admin", PASSWORD)
    return page


def login(page, username: str, password: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("input[type=submit]")


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
