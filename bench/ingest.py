"""Event ingestion throughput: concurrent clients post batches to gunicorn on loopback.

    python bench/ingest.py [--events 100000] [--clients 4] [--batch 1000] [--workers 2]

Sets up a throwaway embedded PostgreSQL (or uses --database-url / $DATABASE_URL), creates a
catalog, starts gunicorn, and has N client threads post event batches with unique idempotency
keys; a share of batches is sent twice, as a client retrying after a timeout would. The
baseline, measured in the same run on the same database, is the catalog service called
in-process (no HTTP, no JSON); the ratio says what the web layer costs.

Prints events/s for both, the ratio, batch latency percentiles and, last,
``acknowledged=N stored=N duplicates=N`` (acknowledged: events the server answered "created").
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests
from _common import free_port, setup_django, start_gunicorn
from tqdm import tqdm


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="events to post over HTTP")
    p.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    p.add_argument("--batch", type=int, default=1000, help="events per request (max 1000)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--retry-share", type=float, default=0.1, help="share of batches sent twice")
    p.add_argument("--baseline-events", type=int, default=20_000)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def make_events(rng: random.Random, n: int, args: argparse.Namespace, tag: str) -> list[dict]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    kinds = ["view"] * 12 + ["click"] * 5 + ["cart"] * 2 + ["purchase"]
    return [
        {
            "item_id": f"bench-item-{rng.randrange(args.items)}",
            "customer_id": f"bench-cust-{rng.randrange(args.customers)}",
            "event": rng.choice(kinds),
            "occurred_at": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "idempotency_key": f"{tag}-{i}-{uuid.uuid4().hex[:8]}",
        }
        for i in range(n)
    ]


def main() -> None:
    args = parse_args()
    if not 1 <= args.batch <= 1000:
        raise SystemExit("--batch must be between 1 and 1000 (the API's batch limit)")
    setup_django(args.database_url)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from shop_recs.catalog import services
    from shop_recs.catalog.models import Customer, Interaction, Item

    rng = random.Random(args.seed)
    Item.objects.bulk_create(
        [Item(external_id=f"bench-item-{i}", title=f"Item {i}") for i in range(args.items)],
        ignore_conflicts=True,
    )
    Customer.objects.bulk_create(
        [Customer(external_id=f"bench-cust-{i}") for i in range(args.customers)],
        ignore_conflicts=True,
    )
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    token, _ = Token.objects.get_or_create(user=user)

    # Baseline: the same service the API calls, in-process, same batch size.
    base_events = make_events(rng, args.baseline_events, args, "base")
    t0 = time.perf_counter()
    for start in range(0, len(base_events), args.batch):
        chunk = base_events[start : start + args.batch]
        services.interactions_record(
            events=[
                services.EventIn(**{**e, "occurred_at": datetime.fromisoformat(e["occurred_at"])})
                for e in chunk
            ]
        )
    base_rate = len(base_events) / (time.perf_counter() - t0)
    connection.close()

    port = free_port()
    server = start_gunicorn(port, args.workers)
    events = make_events(rng, args.events, args, "http")
    batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
    retried = set(rng.sample(range(len(batches)), int(len(batches) * args.retry_share)))
    url = f"http://127.0.0.1:{port}/api/v1/events/"
    headers = {"Authorization": f"Token {token.key}"}
    latencies: list[float] = []
    created_ids: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    local = threading.local()
    bar = tqdm(total=len(events), unit="ev", desc="posting")

    def post(index: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        for attempt in range(2 if index in retried else 1):
            t = time.perf_counter()
            r = session.post(url, json={"events": batches[index]}, headers=headers, timeout=120)
            elapsed = time.perf_counter() - t
            if r.status_code != 200:
                raise SystemExit(f"batch {index}: HTTP {r.status_code}: {r.text[:300]}")
            body = r.json()
            with lock:
                latencies.append(elapsed)
                statuses.update(res["status"] for res in body["results"])
                created_ids.update(
                    res["id"] for res in body["results"] if res["status"] == "created"
                )
                if attempt == 0:
                    bar.update(len(batches[index]))

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(post, range(len(batches))))
        wall = time.perf_counter() - t0
    finally:
        bar.close()
        server.terminate()
        server.wait(timeout=30)

    acknowledged = statuses["created"]
    stored = Interaction.objects.filter(idempotency_key__startswith="http-").count()
    distinct_keys = (
        Interaction.objects.filter(idempotency_key__startswith="http-")
        .values("idempotency_key")
        .distinct()
        .count()
    )
    duplicates = (stored - distinct_keys) + sum(1 for n in created_ids.values() if n > 1)
    rate = acknowledged / wall
    lat = sorted(latencies)
    print(
        f"requests: {len(lat)} ({len(retried)} batches retried), clients={args.clients}, "
        f"gunicorn workers={args.workers}, batch={args.batch}"
    )
    print(
        f"batch latency: p50={statistics.median(lat) * 1000:.0f} ms "
        f"p99={lat[int(0.99 * (len(lat) - 1))] * 1000:.0f} ms"
    )
    print(f"baseline (service in-process): {base_rate:,.0f} events/s")
    print(
        f"HTTP ingestion: {rate:,.0f} events/s over {wall:.1f} s "
        f"(retries answered duplicate: {statuses['duplicate']})"
    )
    print(f"ratio http/baseline: {rate / base_rate:.2f}")
    print(f"acknowledged={acknowledged} stored={stored} duplicates={duplicates}")


if __name__ == "__main__":
    main()
