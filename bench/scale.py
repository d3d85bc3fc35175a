"""Scale: a synthetic shop of N items and M events, from import to live operations under load.

    python bench/scale.py --items 100000 --events 2000000 [--seed 0] [--dim 384]
                          [--clients 4] [--seconds 30] [--train-budget 600] [--json FILE]
    python bench/scale.py --training-slope [--items 100000] [--slope-events 1e6,5e6,2e7]

The shop is generated deterministically from ``--seed``: items with titles and descriptions
from a vocabulary, categories, brands and prices; their text vectors are precomputed (a random
projection of the category and brand structure plus noise, so neighbours are meaningful), as
running the real encoders at these sizes would take days on two cores (their throughput is
``bench/encoding.py``'s). Shoppers have sessions and a favourite category; item popularity
within a category follows a power law. Everything is bulk-loaded with PostgreSQL ``COPY``.

Stages, each with time, throughput, peak RSS of this process and of PostgreSQL (all its
processes together) and the database size after it:

1. ``import_items``, ``import_events``: COPY of items, customers and interactions (+ stats);
2. ``vector_load``: COPY of the text and content vectors;
3. ``index_build``: their HNSW indexes (``CREATE INDEX CONCURRENTLY``);
4. ``training``: the hybrid model (streamed training data, ``--train-budget`` seconds);
5. ``activation``: the model's item vectors in their own space, index, pointer switch;
6. ``serving_idle``: ``--clients`` threads for ``--seconds`` calling similar items (the
   model's space), recommendations (customers with history) and search (a text query vector)
   through the same functions as the API; p50/p95/p99 and recall@10 of the served lists
   against exact ranking;
7. ``live_reencode``: the same load while 10 % of the items are re-encoded through the
   encoding pipeline (a fast hashing text encoder stands in for the model encoder);
8. ``live_activation``: the same load while another model version is activated.

Targets (issue 16): during the live stages recall@10 >= 0.95, no errors, p99 <= 2x idle.

``--training-slope``: for each event count, the streamed training load and one epoch of the
hybrid model, with time and peak memory, and the slope per million events.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, setup_django


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


EVENTS = np.array(["view", "click", "cart", "purchase", "like"])
EVENT_P = np.array([0.70, 0.15, 0.08, 0.05, 0.02])
ADJECTIVES = _words(
    "classic modern vintage light heavy soft warm cool bright dark slim wide compact large "
    "smart simple premium eco urban rugged elegant casual sporty cosy bold fresh"
)
NOUNS = _words(
    "shirt boot bag lamp chair table kettle mug pan knife watch ring scarf hat glove sock "
    "jacket coat dress skirt sofa rug pillow blanket towel bottle speaker cable charger mouse "
    "keyboard desk shelf mirror clock vase candle plant pot brush comb soap cream perfume "
    "tent rope torch ball racket helmet bike pump saddle"
)
WORDS = _words(
    "cotton leather wool steel oak glass ceramic bamboo linen silk rubber canvas copper "
    "recycled handmade durable waterproof breathable portable foldable adjustable wireless "
    "quiet fast gentle strong natural organic for the home office travel outdoor kids gift"
)
K = 10


# --------------------------------------------------------------------------- generation


@dataclass
class Shop:
    """The generated catalogue and the structure the events are drawn from."""

    n_items: int
    category: np.ndarray  # item -> category index
    brand: np.ndarray  # item -> brand index
    price: np.ndarray
    cat_centres: np.ndarray  # (categories, dim)
    brand_centres: np.ndarray  # (brands, dim)
    dim: int
    seed: int

    @property
    def n_categories(self) -> int:
        return len(self.cat_centres)


def make_shop(n_items: int, *, dim: int, seed: int) -> Shop:
    rng = np.random.default_rng([seed, 1])
    n_cat = int(np.clip(n_items // 400, 8, 400))
    n_brand = int(np.clip(n_items // 100, 16, 5000))
    # category sizes vary (a Dirichlet share), brands belong mostly to a few categories
    share = rng.dirichlet(np.full(n_cat, 2.0))
    category = rng.choice(n_cat, size=n_items, p=share)
    # each brand has a home category; 70 % of an item's brands come from its category's own
    brand_home = rng.integers(n_cat, size=n_brand)
    by_home = np.argsort(brand_home, kind="stable")
    per_cat = np.bincount(brand_home, minlength=n_cat)
    start = np.r_[0, np.cumsum(per_cat)[:-1]]
    own = by_home[
        (
            start[category]
            + (rng.random(n_items) * np.maximum(per_cat[category], 1)).astype(np.int64)
        )
        % n_brand
    ]
    use_own = (rng.random(n_items) < 0.7) & (per_cat[category] > 0)
    brand = np.where(use_own, own, rng.integers(n_brand, size=n_items))
    price = np.round(np.exp(rng.normal(3.0 + (category % 5) * 0.4, 0.6)), 2)
    cat_centres = rng.normal(size=(n_cat, dim)).astype(np.float32)
    brand_centres = rng.normal(size=(n_brand, dim)).astype(np.float32)
    return Shop(n_items, category, brand, price, cat_centres, brand_centres, dim, seed)


def item_vectors(shop: Shop, start: int, stop: int) -> np.ndarray:
    """Text vectors of items [start, stop): a random projection of category and brand plus
    noise (deterministic per item block), unit length."""
    rng = np.random.default_rng([shop.seed, 2, start])
    c, b = shop.category[start:stop], shop.brand[start:stop]
    v = shop.cat_centres[c] + 0.6 * shop.brand_centres[b]
    v += 0.7 * rng.normal(size=v.shape).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def item_texts(shop: Shop, start: int, stop: int) -> list[tuple[str, str, str, str]]:
    """(external id, title, description, brand name) of items [start, stop)."""
    rng = np.random.default_rng([shop.seed, 3, start])
    out = []
    for n in range(start, stop):
        noun = NOUNS[shop.category[n] % len(NOUNS)]
        adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
        words = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=8))
        brand = f"brand{shop.brand[n]}"
        out.append(
            (f"sku-{n}", f"{adj.title()} {brand} {noun} {n}", f"A {noun} in {words}.", brand)
        )
    return out


def make_events(shop: Shop, n_events: int, *, seed: int) -> dict[str, np.ndarray]:
    """Sessions of 1..~15 events by users with a favourite category (80 % of a session's
    events in it); within a category, item popularity follows a power law."""
    rng = np.random.default_rng([seed, 4, n_events])
    n_users = max(50, n_events // 25)
    favourite = rng.integers(shop.n_categories, size=n_users)
    # items of each category, in a random popularity order
    order = np.lexsort((rng.random(shop.n_items), shop.category))
    counts = np.bincount(shop.category, minlength=shop.n_categories)
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    n_sessions = max(1, n_events // 6)
    session_len = rng.geometric(1 / 6, size=n_sessions)
    session_len = np.minimum(session_len, 40)
    session_of = np.repeat(np.arange(n_sessions), session_len)[:n_events]
    if len(session_of) < n_events:  # pad with more short sessions
        extra = np.arange(n_sessions, n_sessions + n_events - len(session_of))
        session_of = np.r_[session_of, extra]
    n_sessions = int(session_of.max()) + 1
    # active users have more sessions (a power law over users)
    session_user = np.minimum(
        (n_users * rng.random(n_sessions) ** 2.0).astype(np.int64), n_users - 1
    )
    session_start = rng.uniform(0, 180 * 86400, size=n_sessions)
    user = session_user[session_of]
    in_fav = rng.random(n_events) < 0.8
    category = np.where(in_fav, favourite[user], rng.integers(shop.n_categories, size=n_events))
    category = np.where(counts[category] > 0, category, favourite[user])
    category = np.where(counts[category] > 0, category, int(np.argmax(counts)))
    rank = np.minimum(
        (counts[category] * rng.random(n_events) ** 3.0).astype(np.int64), counts[category] - 1
    )
    item = order[offsets[category] + rank]
    position = np.arange(n_events) - np.searchsorted(session_of, session_of)
    when = session_start[session_of] + 30.0 * position
    event = rng.choice(len(EVENTS), size=n_events, p=EVENT_P)
    # 80 % of users are customers (an account), the others shop anonymously by session
    customer = rng.random(n_users) < 0.8
    return {
        "user": user,
        "session": session_of,
        "item": item,
        "event": event,
        "time": when,
        "customer": customer,
    }


# --------------------------------------------------------------------------- loading


def copy_rows(table: str, columns: str, rows: Any, chunk: int = 200_000) -> int:
    """COPY the rows in statements of ``chunk`` rows (each its own transaction: deferred
    foreign-key checks stay bounded)."""
    from django.db import connection

    rows = iter(rows)
    n = 0
    while True:
        block = list(itertools.islice(rows, chunk))
        if not block:
            return n
        sql = f"COPY {table} ({columns}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in block:
                copy.write_row(row)
        n += len(block)


def import_items(shop: Shop) -> int:
    from django.db import connection

    from shop_recs.catalog.models import Item, ItemEncoding

    now = datetime.now(UTC)
    table = connection.ops.quote_name(Item._meta.db_table)
    cats = [f"category-{c}" for c in range(shop.n_categories)]

    def rows():
        for start in range(0, shop.n_items, 50_000):
            stop = min(shop.n_items, start + 50_000)
            for n, (ext, title, desc, brand) in zip(
                range(start, stop), item_texts(shop, start, stop), strict=True
            ):
                yield (
                    ext,
                    title,
                    desc,
                    cats[shop.category[n]],
                    brand,
                    float(shop.price[n]),
                    "{}",
                    True,
                    True,
                    now,
                    now,
                )

    columns = (
        "external_id, title, description, category, brand, price, attributes, in_stock, "
        "is_active, created_at, updated_at"
    )
    n = copy_rows(table, columns, rows())
    enc = connection.ops.quote_name(ItemEncoding._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {enc} (item_id, status, error, attempts, requested_at, encoded_at) "
            f"SELECT id, 'done', '', 1, now(), now() FROM {table}"
        )
        cursor.execute(f"ANALYZE {table}")
    return n


def import_events(shop: Shop, events: dict[str, np.ndarray]) -> tuple[int, dict[str, Any]]:
    from django.db import connection

    from shop_recs.catalog.models import Customer, Interaction, Item
    from shop_recs.catalog.services.stats import item_stats_refresh

    customers = connection.ops.quote_name(Customer._meta.db_table)
    interactions = connection.ops.quote_name(Interaction._meta.db_table)
    now = datetime.now(UTC)
    is_customer = events["customer"]
    users = np.flatnonzero(is_customer)
    copy_rows(
        customers, "external_id, attributes, created_at", ((f"u{u}", "{}", now) for u in users)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT external_id, id FROM {customers}")
        pk_of_user = np.full(len(is_customer), -1, dtype=np.int64)
        for ext, pk in cursor.fetchall():
            if ext.startswith("u"):
                pk_of_user[int(ext[1:])] = pk
        cursor.execute(f"SELECT min(id) FROM {connection.ops.quote_name(Item._meta.db_table)}")
        first_item = int(cursor.fetchone()[0])
    base = np.datetime64("2026-01-01T00:00:00", "us")
    created = now.isoformat()
    columns = "customer_id, session_id, item_id, event, value, occurred_at, context, created_at"

    def block_text(sl: slice) -> bytes:
        """COPY text of a block of events, built column-wise (no Python object per field)."""
        pk = pk_of_user[events["user"][sl]]
        anon = pk < 0
        customer = np.where(anon, "\\N", pk.astype(str))
        session = np.where(anon, np.char.add("s", events["user"][sl].astype(str)), "")
        item = (first_item + events["item"][sl]).astype(str)
        event = EVENTS[events["event"][sl]]
        when = base + (events["time"][sl] * 1e6).astype("timedelta64[us]")
        stamp = np.char.add(np.datetime_as_string(when, unit="us"), "+00")
        fields = zip(
            customer.tolist(), session.tolist(), item.tolist(), event.tolist(), stamp.tolist(),
            strict=True,
        )  # fmt: skip
        tail = f"{{}}\t{created}"  # context, created_at
        lines = [f"{c}\t{s}\t{i}\t{e}\t1\t{t}\t{tail}" for c, s, i, e, t in fields]
        return ("\n".join(lines) + "\n").encode()

    started = time.perf_counter()
    n = 0
    for at in range(0, len(events["item"]), 200_000):
        sl = slice(at, at + 200_000)
        data = block_text(sl)
        # one COPY (one transaction) per block: deferred foreign-key checks stay bounded
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {interactions} ({columns}) FROM STDIN") as copy,
        ):
            copy.write(data)
        n += len(events["item"][sl])
    copied = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {interactions}")
    item_stats_refresh()
    done = time.perf_counter()
    return n, {"copy_s": copied - started, "stats_s": done - copied, "customers": len(users)}


def load_vectors(shop: Shop, encoder_version: str, encoder_name: str) -> int:
    from django.db import connection

    from shop_recs.catalog import vectors
    from shop_recs.catalog.models import Item

    table = vectors.embedding_table()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id) FROM {connection.ops.quote_name(Item._meta.db_table)}")
        first_item = int(cursor.fetchone()[0])
        # the spaces are empty: their indexes (migration 0003 creates text/384) are built in
        # the index_build stage, over the loaded vectors, as a first import does
        for space in ("text", "content"):
            cursor.execute(f"DROP INDEX IF EXISTS {vectors.index_name(space, shop.dim)}")
    now = datetime.now(UTC)
    versions = {"text": encoder_version, "content": "content-synthetic"}

    def rows():
        for start in range(0, shop.n_items, 20_000):
            stop = min(shop.n_items, start + 20_000)
            block = item_vectors(shop, start, stop)
            for n, vec in zip(range(start, stop), block, strict=True):
                literal = vectors.to_literal(vec)
                for space in ("text", "content"):
                    name = encoder_name if space == "text" else "content"
                    yield (
                        first_item + n,
                        space,
                        shop.dim,
                        literal,
                        name,
                        versions[space],
                        "synthetic",
                        now,
                    )

    n = copy_rows(
        table,
        "item_id, space, dim, vector, encoder, encoder_version, content_hash, updated_at",
        rows(),
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    return n


# --------------------------------------------------------------------------- measuring


class Sampler(threading.Thread):
    """Peak RSS of this process and of PostgreSQL (every server process, summed) every 0.5 s."""

    def __init__(self, pg_pid: int) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        try:
            self.postmaster = psutil.Process(pg_pid).parent()
        except psutil.Error:
            self.postmaster = None
        self.peak_self = 0
        self.peak_pg = 0
        self.running = True

    def pg_rss(self) -> int:
        if self.postmaster is None:
            return 0
        total = 0
        for proc in [self.postmaster, *self.postmaster.children()]:
            # unique set size: shared buffers are counted once, not per backend
            with contextlib.suppress(psutil.Error):
                total += proc.memory_full_info().uss
        return total

    def reset(self) -> None:
        self.peak_self = self.me.memory_info().rss
        self.peak_pg = self.pg_rss()

    def run(self) -> None:
        while self.running:
            self.peak_self = max(self.peak_self, self.me.memory_info().rss)
            self.peak_pg = max(self.peak_pg, self.pg_rss())
            time.sleep(0.5)


def db_size() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    units: int = 0
    unit: str = ""
    peak_rss_mb: float = 0.0
    peak_pg_mb: float = 0.0
    db_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        rate = (
            f"{self.units / self.seconds:,.0f} {self.unit}/s" if self.seconds and self.units else ""
        )
        return (
            f"| {self.name} | {self.seconds:,.1f} | {self.units:,} {self.unit} | {rate} | "
            f"{self.peak_rss_mb:,.0f} | {self.peak_pg_mb:,.0f} | {self.db_mb:,.0f} |"
        )


class Runner:
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.stages: list[Stage] = []

    def run(self, name: str, fn: Any, unit: str = "") -> Stage:
        print(f"== {name} ...", flush=True)
        self.sampler.reset()
        started = time.perf_counter()
        out = fn()
        stage = Stage(name, time.perf_counter() - started, unit=unit)
        if isinstance(out, tuple):
            stage.units, stage.extra = out
        else:
            stage.units = int(out or 0)
        time.sleep(0.6)  # one more sample
        stage.peak_rss_mb = self.sampler.peak_self / 2**20
        stage.peak_pg_mb = self.sampler.peak_pg / 2**20
        stage.db_mb = db_size() / 2**20
        self.stages.append(stage)
        print(stage.row(), flush=True)
        return stage


# --------------------------------------------------------------------------- serving


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"similar": [], "recommendations": [], "search": []}
    )
    errors: Counter[str] = field(default_factory=Counter)
    short: int = 0
    recalls: dict[str, list[float]] = field(default_factory=lambda: {"similar": [], "search": []})


class Load:
    """Client threads calling the serving functions (the API views' selectors) in a loop,
    and one thread measuring recall@10 of served lists against exact ranking."""

    def __init__(self, shop: Shop, *, clients: int, seed: int) -> None:
        from shop_recs.catalog.models import Customer, Item

        self.shop = shop
        self.clients = clients
        self.rng = random.Random(seed)
        first = Item.objects.order_by("pk").values_list("pk", flat=True).first()
        self.first_item = int(first)
        # popular items are asked about most: draw query items by event-count rank
        self.items = [f"sku-{n}" for n in range(shop.n_items)]
        self.customers = list(Customer.objects.order_by("?")[:2000])
        self.stop = threading.Event()
        self.tally = Tally()

    def query_vector(self, rng: random.Random) -> np.ndarray:
        c = rng.randrange(self.shop.n_categories)
        v = self.shop.cat_centres[c] + 0.5 * np.random.default_rng(rng.randrange(1 << 30)).normal(
            size=self.shop.dim
        )
        return (v / np.linalg.norm(v)).astype(np.float32)

    def client(self, n: int) -> None:
        from django.db import connections

        from shop_recs.ranking.recommend import recommendations
        from shop_recs.ranking.similar import item_similar, items_search

        rng = random.Random(n * 7919)
        try:
            while not self.stop.is_set():
                op = rng.choice(("similar", "recommendations", "search"))
                started = time.perf_counter()
                try:
                    if op == "similar":
                        found = item_similar(
                            external_id=rng.choice(self.items), space="hybrid", k=K
                        )
                        count = len(found or [])
                    elif op == "recommendations":
                        count = len(
                            recommendations(customer=rng.choice(self.customers), k=K).results
                        )
                    else:
                        count = len(
                            items_search(query_vectors={"text": self.query_vector(rng)}, k=K)
                        )
                    self.tally.latencies[op].append(time.perf_counter() - started)
                    if count < K:
                        self.tally.short += 1
                except Exception as exc:
                    self.tally.errors[f"{op}: {type(exc).__name__}: {str(exc)[:80]}"] += 1
        finally:
            connections.close_all()

    def recall_probe(self) -> None:
        """Served (HNSW) vs exact top-10, for similar items in the model's space and for
        search in the text space, on random queries, back to back."""
        from django.db import connection, connections, transaction

        from shop_recs.catalog import vectors
        from shop_recs.catalog.models import ItemEmbedding
        from shop_recs.ranking.registry import active_model
        from shop_recs.search.knn import vector_search
        from shop_recs.search.types import SimilarFilters

        rng = random.Random(99)
        table = vectors.embedding_table()

        def exact(space: str, literal: str, dim: int, exclude: int) -> list[int]:
            op = vectors.distance_operator(space)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_indexscan = off")
                cursor.execute(
                    f"SELECT item_id FROM {table} WHERE space = %s AND dim = %s AND item_id <> %s "
                    f"ORDER BY vector::vector({dim}) {op} %s::vector({dim}) LIMIT %s",
                    [space, dim, exclude, literal, K],
                )
                return [r[0] for r in cursor.fetchall()]

        try:
            while not self.stop.is_set():
                try:
                    found = active_model()
                    if found is not None:
                        version, model = found
                        space = vectors.space_key("hybrid", version.pk)
                        item_id = self.first_item + rng.randrange(self.shop.n_items)
                        row = (
                            ItemEmbedding.objects.filter(space=space, item_id=item_id)
                            .values_list("vector", flat=True)
                            .first()
                        )
                        if row is not None:
                            vec = np.asarray(row, dtype=np.float32)
                            q = vectors.to_literal(model.user_vector(None, vec[None, :]))
                            served = [
                                n.item.id
                                for n in vector_search(
                                    space=space,
                                    query=q,
                                    k=K,
                                    filters=SimilarFilters(in_stock=None),
                                    exclude_item_ids=[item_id],
                                )
                            ]
                            truth = exact(space, q, len(vec), item_id)
                            self.tally.recalls["similar"].append(len(set(served) & set(truth)) / K)
                    q = vectors.to_literal(self.query_vector(rng))
                    served = [
                        n.item.id
                        for n in vector_search(
                            space="text", query=q, k=K, filters=SimilarFilters(in_stock=None)
                        )
                    ]
                    truth = exact("text", q, self.shop.dim, -1)
                    self.tally.recalls["search"].append(len(set(served) & set(truth)) / K)
                except Exception as exc:
                    self.tally.errors[f"recall probe: {type(exc).__name__}: {str(exc)[:80]}"] += 1
        finally:
            connections.close_all()

    def __enter__(self) -> Load:
        self.threads = [
            threading.Thread(target=self.client, args=(n,), daemon=True)
            for n in range(self.clients)
        ]
        self.threads.append(threading.Thread(target=self.recall_probe, daemon=True))
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def summary(self, seconds: float) -> tuple[int, dict[str, Any]]:
        t = self.tally
        out: dict[str, Any] = {}
        every: list[float] = []
        for op, lat in t.latencies.items():
            every += lat
            out[op] = latency_summary(lat, seconds)
        out["all"] = latency_summary(every, seconds)
        out["errors"] = dict(t.errors)
        out["error_count"] = sum(t.errors.values())
        out["short_lists"] = t.short
        for name, values in t.recalls.items():
            out[f"recall@10 {name}"] = float(np.mean(values)) if values else None
            out[f"recall@10 {name} min"] = float(np.min(values)) if values else None
            out[f"recall probes {name}"] = len(values)
        return len(every), out


def latency_summary(lat: list[float], seconds: float) -> dict[str, float]:
    ms = [x * 1000 for x in lat]
    return {
        "requests": len(ms),
        "per_s": len(ms) / seconds if seconds else 0.0,
        "p50_ms": percentile(ms, 0.50) if ms else 0.0,
        "p95_ms": percentile(ms, 0.95) if ms else 0.0,
        "p99_ms": percentile(ms, 0.99) if ms else 0.0,
    }


# --------------------------------------------------------------------------- stages


def configure(args: argparse.Namespace) -> Any:
    """The plugin settings of the run (enabled through ``override_settings``, so the plugin's
    settings object reloads); returns the override to disable at the end."""
    from django.conf import settings
    from django.test.utils import override_settings

    override = override_settings(
        SHOP_RECS={
            **getattr(settings, "SHOP_RECS", {}),
            "THROTTLE_RATES": {"anon": None, "user": None},
            "IMAGE_ENCODER": None,
            "TEXT_ENCODER": "tests.hash_encoder.HashingTextEncoder",
            "TEXT_ENCODER_OPTIONS": {"dim": args.dim},
            "MODEL_PARAMS": {
                "dim": 64,
                "hidden": 128,
                "input_dim": 64,
                "text_components": 64,
                "batch_size": 512,
                "max_epochs": args.max_epochs,
                "patience": 2,
                "sampled_negatives": 2048,
            },
            "TRAIN_BUDGET_SECONDS": args.train_budget,
            "TRAIN_EVAL_USERS_MAX": 5000,
            "TRAIN_MIN_INTERACTIONS": 20,
            "MODEL_DIR": str(Path(os.environ.get("SHOP_RECS_DATA_DIR", "/tmp")) / "models"),
        }
    )
    override.enable()
    return override


def build_indexes(dim: int) -> int:
    from shop_recs.catalog import vectors

    for space in ("text", "content"):
        vectors.ensure_index(space, dim, concurrently=True)
    return 2


def train(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from shop_recs.ranking.training import model_train

    version = model_train(force=True, activate=False, note="bench/scale.py")
    epochs = [h for h in version.history]
    return version.data_counts.get("positives", 0), {
        "version": version.pk,
        "metrics": version.metrics,
        "epochs": len(epochs),
        "stopped": [h.get("stopped") for h in epochs if h.get("stopped")],
        "data_counts": version.data_counts,
        "duration_s": version.duration_seconds,
    }


def activate(version_pk: int) -> int:
    from shop_recs.catalog.models import ModelVersion
    from shop_recs.ranking.activation import model_activate

    return model_activate(version=ModelVersion.objects.get(pk=version_pk))


def copy_version(version_pk: int) -> int:
    """A second version to activate live: the first one's artefact registered again (the
    activation's work — vectors of every item into a new space, its index, the switch — is
    the same as for a retrained model)."""
    from shop_recs.catalog.models import ModelVersion

    version = ModelVersion.objects.get(pk=version_pk)
    version.pk = None
    version.is_active = False
    version.activated_at = None
    version.note = "bench/scale.py: live activation"
    version.save()
    return version.pk


def serving(
    load_args: tuple[Shop, argparse.Namespace], during: Any = None
) -> tuple[int, dict[str, Any]]:
    shop, args = load_args
    load = Load(shop, clients=args.clients, seed=args.seed)
    started = time.perf_counter()
    with load:
        if during is None:
            time.sleep(args.seconds)
            result = None
        else:
            time.sleep(2.0)  # the load is running before the operation starts
            result = during()
            time.sleep(2.0)
    seconds = time.perf_counter() - started
    n, out = load.summary(seconds)
    out["operation_result"] = result
    return n, out


def reencode(shop: Shop, share: float, seed: int) -> int:
    from shop_recs.catalog.models import Item
    from shop_recs.encoding.service import items_encode

    rng = np.random.default_rng([seed, 5])
    first = Item.objects.order_by("pk").values_list("pk", flat=True).first()
    chosen = np.sort(
        rng.choice(shop.n_items, size=max(1, int(shop.n_items * share)), replace=False)
    )
    report = items_encode(item_ids=(first + chosen).tolist(), force=True, batch_size=500)
    print(f"   re-encode: {report.summary()}", flush=True)
    return report.encoded


def print_tables(stages: list[Stage], args: argparse.Namespace) -> None:
    print()
    print(
        f"scale: {args.items:,} items, {args.events:,} events, dim {args.dim}, "
        f"seed {args.seed}, {args.clients} clients"
    )
    print()
    print(
        "| stage | seconds | work | throughput | peak RSS bench (MB) "
        "| peak RSS PostgreSQL (MB) | DB size (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for s in stages:
        print(s.row())
    serving_stages = [s for s in stages if s.name.startswith(("serving", "live"))]
    if serving_stages:
        print()
        print(
            "| stage | op | requests/s | p50 ms | p95 ms | p99 ms | errors | short "
            "| recall@10 similar (min) | recall@10 search (min) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for s in serving_stages:
            e = s.extra
            for op in ("similar", "recommendations", "search", "all"):
                d = e.get(op, {})
                rs = e.get("recall@10 similar")
                rq = e.get("recall@10 search")
                rec_s = (
                    f"{rs:.3f} ({e.get('recall@10 similar min'):.1f})"
                    if rs is not None and op == "all"
                    else ""
                )
                rec_q = (
                    f"{rq:.3f} ({e.get('recall@10 search min'):.1f})"
                    if rq is not None and op == "all"
                    else ""
                )
                print(
                    f"| {s.name} | {op} | {d.get('per_s', 0):.1f} | {d.get('p50_ms', 0):.1f} | "
                    f"{d.get('p95_ms', 0):.1f} | {d.get('p99_ms', 0):.1f} | "
                    f"{e.get('error_count', 0) if op == 'all' else ''} | "
                    f"{e.get('short_lists', 0) if op == 'all' else ''} | {rec_s} | {rec_q} |"
                )
        for s in serving_stages:
            for error, count in Counter(s.extra["errors"]).most_common(3):
                print(f"{s.name}: {count} x {error}")
        idle = next((s for s in stages if s.name == "serving_idle"), None)
        if idle:
            base = idle.extra["all"]["p99_ms"] or 1e-9
            for s in serving_stages:
                if s is idle:
                    continue
                e = s.extra
                ok = (
                    e["error_count"] == 0
                    and (e.get("recall@10 similar") or 1) >= 0.95
                    and (e.get("recall@10 search") or 1) >= 0.95
                    and e["all"]["p99_ms"] <= 2 * base
                )
                print(
                    f"{s.name}: p99 {e['all']['p99_ms']:.1f} ms = "
                    f"{e['all']['p99_ms'] / base:.2f}x idle, "
                    f"errors {e['error_count']}, recall@10 similar {e.get('recall@10 similar')}, "
                    f"search {e.get('recall@10 search')}: {'meets' if ok else 'MISSES'} the targets"
                )


def main_scale(args: argparse.Namespace) -> dict[str, Any]:
    override = configure(args)
    try:
        return _scale(args)
    finally:
        override.disable()


def _scale(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection

    from shop_recs.encoding.encoders import text_encoder

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pg_pid = int(cursor.fetchone()[0])
    sampler = Sampler(pg_pid)
    sampler.start()
    runner = Runner(sampler)
    shop_box: dict[str, Any] = {}

    def generate() -> int:
        shop_box["shop"] = make_shop(args.items, dim=args.dim, seed=args.seed)
        shop_box["events"] = make_events(shop_box["shop"], args.events, seed=args.seed)
        return args.items + args.events

    runner.run("generate", generate, "rows")
    shop = shop_box["shop"]
    runner.run("import_items", lambda: import_items(shop), "items")
    runner.run("import_events", lambda: import_events(shop, shop_box.pop("events")), "events")
    enc = text_encoder()
    runner.run("vector_load", lambda: load_vectors(shop, enc.version, enc.name), "vectors")
    runner.run("index_build", lambda: build_indexes(args.dim), "indexes")
    trained = runner.run("training", lambda: train(args), "positives")
    version = trained.extra["version"]
    runner.run("activation", lambda: activate(version), "vectors")
    second = copy_version(version)
    runner.run("serving_idle", lambda: serving((shop, args)), "requests")
    runner.run(
        "live_reencode",
        lambda: serving((shop, args), lambda: reencode(shop, 0.1, args.seed)),
        "requests",
    )
    runner.run(
        "live_activation", lambda: serving((shop, args), lambda: activate(second)), "requests"
    )
    sampler.running = False
    print_tables(runner.stages, args)
    return {"args": vars(args), "stages": [s.__dict__ for s in runner.stages]}


# --------------------------------------------------------------------------- training slope


def main_slope(args: argparse.Namespace) -> dict[str, Any]:
    override = configure(args)
    try:
        return _slope(args)
    finally:
        override.disable()


def _slope(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection

    from shop_recs.catalog.models import Customer, Interaction
    from shop_recs.encoding.encoders import text_encoder
    from shop_recs.ranking.dataset import training_dataset
    from shop_recs.recsys.hybrid import HybridRecommender

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        sampler = Sampler(int(cursor.fetchone()[0]))
    sampler.start()
    shop = make_shop(args.items, dim=args.dim, seed=args.seed)
    import_items(shop)
    enc = text_encoder()
    load_vectors(shop, enc.version, enc.name)
    results = []
    for m in [int(float(x)) for x in args.slope_events.split(",")]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"TRUNCATE {connection.ops.quote_name(Interaction._meta.db_table)}, "
                f"{connection.ops.quote_name(Customer._meta.db_table)} CASCADE"
            )
        import_events(shop, make_events(shop, m, seed=args.seed))
        sampler.reset()
        base_rss = sampler.me.memory_info().rss
        started = time.perf_counter()
        dataset, _ = training_dataset()
        load_s = time.perf_counter() - started
        params = dict(_model_params(args))
        params.update(max_epochs=1, validation_fraction=0.0, refit=False)
        if not results:  # warm-up (torch's first calls allocate and compile), not counted
            HybridRecommender(**params).fit(dataset, progress=False, time_budget=30)
            sampler.reset()
        started = time.perf_counter()
        model = HybridRecommender(**params)
        model.fit(dataset, progress=True, time_budget=args.train_budget)
        fit_s = time.perf_counter() - started
        time.sleep(0.6)
        last = model.training_history_[-1] if model.training_history_ else {}
        # a fit the budget stopped covers part of the epoch: scale to a whole one
        batches = -(-dataset.n_users // int(params.get("batch_size", 128)))
        share = min(1.0, last.get("batches", batches) / max(batches, 1))
        row = {
            "events": m,
            "positives": len(dataset),
            "users": dataset.n_users,
            "load_s": load_s,
            "epoch_s": fit_s / share,
            "epoch_share_done": share,
            "peak_rss_mb": sampler.peak_self / 2**20,
            "peak_above_start_mb": (sampler.peak_self - base_rss) / 2**20,
        }
        del dataset
        results.append(row)
        print(
            f"| {m:,} | {row['positives']:,} | {row['users']:,} | {load_s:.1f} | {fit_s:.1f} | "
            f"{row['peak_rss_mb']:,.0f} | {row['peak_above_start_mb']:,.0f} |",
            flush=True,
        )
    sampler.running = False
    print()
    print(
        "| events | positives | users | streamed load s | 1 epoch s | peak RSS MB "
        "| peak above start MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['events']:,} | {r['positives']:,} | {r['users']:,} | {r['load_s']:.1f} | "
            f"{r['epoch_s']:.1f} | {r['peak_rss_mb']:,.0f} | {r['peak_above_start_mb']:,.0f} |"
        )
    slopes = {}
    if len(results) >= 2:
        x = np.array([r["events"] for r in results]) / 1e6
        for key in ("load_s", "epoch_s", "peak_above_start_mb"):
            y = np.array([r[key] for r in results])
            slope, intercept = np.polyfit(x, y, 1)
            slopes[key] = {"per_million_events": float(slope), "intercept": float(intercept)}
            print(f"slope {key}: {slope:.2f} per million events (intercept {intercept:.1f})")
    return {"args": vars(args), "slope": results, "fits": slopes}


def _model_params(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    return settings.SHOP_RECS["MODEL_PARAMS"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=384, help="text vector width (MiniLM: 384)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30.0, help="idle serving stage length")
    p.add_argument(
        "--train-budget", type=float, default=600.0, help="training wall-clock budget (s)"
    )
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--database-url", default="")
    p.add_argument("--json", default="", help="write the results as JSON to this file")
    p.add_argument("--training-slope", action="store_true")
    p.add_argument("--slope-events", default="1e6,5e6,2e7")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    setup_django(args.database_url)
    result = main_slope(args) if args.training_slope else main_scale(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
