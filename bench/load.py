"""Read load: N concurrent clients for a fixed time against gunicorn on loopback.

    python bench/load.py [--clients 8] [--seconds 60] [--warmup 10] [--workers 2] [--threads 4]
                         [--bundle demo/bundle] [--database-url URL] [--mix 1,1,1]
                         [--families hybrid sequence]

The catalogue is a bundle (default: the demo's 1,000 products and ~22,000 events), imported
and encoded with the real encoders into a fresh embedded PostgreSQL, and a model is trained
and activated, as ``make demo`` does (with ``--database-url`` an existing database is used,
and imported into only when it has no items). Then every client loops, for ``--seconds``
after a ``--warmup`` that is not counted (each gunicorn worker loads the text encoder at its
first search), over the three reads the widgets and a shop's pages make, picked at random by
``--mix`` (weights):

- similar items: ``GET /api/v1/items/{id}/similar/?k=10`` (the model's space once trained);
- recommendations: ``POST /api/v1/recommendations/`` with three recently viewed items;
- search: ``GET /api/v1/search/?q=...&k=10`` with two words of a product title.

Prints requests, requests/s, p50/p95/p99 latency and errors (non-2xx answers or failed
connections, by status) per operation and in all. Throttles are off: this measures the
server. Clients and server share the machine's cores.

``--families A B ...`` compares model families at request time in one run: for each, a model of
that family alone is trained (``MODEL_FAMILIES``) and activated with ``recs_train --force``,
and the same load runs against it (same clients, seed and requests); the last lines give each
family's p50 per operation as a ratio to the first family's (e.g. the order-aware ``sequence``
tower against the order-blind ``hybrid``: issue 18's target is recommendations p50 <= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from _common import ROOT, free_port, percentile, setup_django, start_gunicorn

OPERATIONS = ("similar", "recommendations", "search")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--bundle", default=str(ROOT / "demo" / "bundle"))
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--mix", default="1,1,1", help="weights of similar,recommendations,search")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--families",
        nargs="+",
        default=None,
        help="train and load-test one model per family (MODEL_FAMILIES), ratios to the first",
    )
    return p.parse_args()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def prepare(bundle: str, train: bool = True) -> tuple[list[str], list[str], str]:
    """The catalogue in the database (imported, encoded, a model trained when none is
    active); returns the active items' ids, title words to search for, and a summary."""
    from django.core.management import call_command

    from shop_recs.catalog.models import Interaction, Item, ModelVersion

    if not Item.objects.exists():
        print(f"importing {bundle} (encoding every item with the bundled encoders)...")
        call_command("recs_import", bundle, verbosity=0)
    if train and not ModelVersion.objects.filter(is_active=True).exists():
        print("training a model...")
        call_command("recs_train", "--if-none-active", "--note", "bench/load.py", verbosity=0)
    items = list(Item.objects.filter(is_active=True).values_list("external_id", "title"))
    words = sorted({w.lower() for _, t in items for w in t.split() if len(w) > 3 and w.isalpha()})
    model = ModelVersion.objects.filter(is_active=True).first()
    summary = (
        f"{len(items)} items, {Interaction.objects.count()} events, "
        f"model {model.pk if model else 'none'}"
    )
    return [ext for ext, _ in items], words, summary


def train_family(family: str) -> str:
    """Train a model of ``family`` only and activate it; its summary."""
    from django.core.management import call_command
    from django.test import override_settings

    from shop_recs.catalog.models import ModelVersion

    print(f"training a {family} model...")
    with override_settings(SHOP_RECS={**settings_dict(), "MODEL_FAMILIES": [family]}):
        call_command("recs_train", "--force", "--note", f"bench/load.py {family}", verbosity=0)
    model = ModelVersion.objects.get(is_active=True)
    chosen = (model.selection or {}).get("chosen", {}).get("family", "?")
    return f"model {model.pk} ({chosen})"


def settings_dict() -> dict:
    from django.conf import settings

    return dict(getattr(settings, "SHOP_RECS", {}))


def main() -> None:
    args = parse_args()
    setup_django(args.database_url)
    ids, words, summary = prepare(args.bundle, train=not args.families)
    weights = [float(w) for w in args.mix.split(",")]
    if len(weights) != len(OPERATIONS) or not any(weights):
        raise SystemExit("--mix takes three weights: similar,recommendations,search")
    if not args.families:
        from django.db import connection

        connection.close()
        report(args, run_load(args, ids, words, weights), summary)
        return
    results: list[tuple[str, dict[str, Tally]]] = []
    for family in args.families:
        model = train_family(family)
        from django.db import connection

        connection.close()
        tallies = run_load(args, ids, words, weights)
        report(args, tallies, f"{summary}; {model}")
        results.append((family, tallies))
    base_family, base = results[0]
    print(f"\np50 ratio to {base_family} (same run, same requests):")
    for family, tallies in results[1:]:
        for op in OPERATIONS:
            a, b = base[op].latencies, tallies[op].latencies
            if a and b:
                ratio = percentile(b, 0.5) / percentile(a, 0.5)
                print(
                    f"  {op:<16} {family} {percentile(b, 0.5) * 1000:.1f} ms / {base_family} "
                    f"{percentile(a, 0.5) * 1000:.1f} ms = {ratio:.2f}x"
                )


def run_load(
    args: argparse.Namespace, ids: list[str], words: list[str], weights: list[float]
) -> dict[str, Tally]:
    """Serve with gunicorn and run the clients against it; the tallies per operation."""
    port = free_port()
    server = start_gunicorn(port, args.workers, threads=args.threads)
    base = f"http://127.0.0.1:{port}/api/v1"
    tallies = {op: Tally() for op in OPERATIONS}
    lock = threading.Lock()
    start_at = time.monotonic() + args.warmup
    stop_at = start_at + args.seconds

    def request(session: requests.Session, rng: random.Random, op: str) -> requests.Response:
        if op == "similar":
            return session.get(f"{base}/items/{rng.choice(ids)}/similar/?k={args.k}", timeout=60)
        if op == "recommendations":
            body = {"recent_item_ids": rng.sample(ids, 3), "k": args.k}
            return session.post(f"{base}/recommendations/", json=body, timeout=60)
        q = " ".join(rng.sample(words, 2))
        return session.get(f"{base}/search/", params={"q": q, "k": args.k}, timeout=60)

    def client(n: int) -> None:
        rng = random.Random(args.seed * 1000 + n)
        session = requests.Session()
        while True:
            op = rng.choices(OPERATIONS, weights)[0]
            began = time.monotonic()
            if began >= stop_at:
                return
            error = ""
            try:
                response = request(session, rng, op)
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                error = type(exc).__name__
                session = requests.Session()
            elapsed = time.monotonic() - began
            if began < start_at:
                continue  # warm-up: not counted
            with lock:
                tallies[op].latencies.append(elapsed)
                if error:
                    tallies[op].errors[error] += 1

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        print(
            f"{args.clients} clients for {args.seconds:.0f} s (after {args.warmup:.0f} s of "
            f"warm-up) on gunicorn {args.workers} workers x {args.threads} threads..."
        )
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return tallies


def report(args: argparse.Namespace, tallies: dict[str, Tally], summary: str) -> None:
    print(
        f"\nbench/load.py: {args.clients} clients, {args.seconds:.0f} s, gunicorn "
        f"{args.workers} workers x {args.threads} threads on 127.0.0.1, {os.cpu_count()} CPUs "
        f"shared with the clients; {summary}; k={args.k}, mix {args.mix}"
    )
    header = f"{'operation':<16}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
    print(header + f"{'p99 ms':>9}  errors")
    everything = Tally()
    for op, tally in [*tallies.items(), ("all", everything)]:
        if op != "all":
            everything.latencies += tally.latencies
            everything.errors.update(tally.errors)
        lat = tally.latencies
        errors = sum(tally.errors.values())
        detail = ", ".join(f"{k}: {v}" for k, v in tally.errors.most_common()) or "-"
        if not lat:
            print(f"{op:<16}{0:>9}")
            continue
        print(
            f"{op:<16}{len(lat):>9}{len(lat) / args.seconds:>9.1f}"
            f"{percentile(lat, 0.50) * 1000:>9.0f}{percentile(lat, 0.95) * 1000:>9.0f}"
            f"{percentile(lat, 0.99) * 1000:>9.0f}  {errors} ({detail})"
        )


if __name__ == "__main__":
    main()
