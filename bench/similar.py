"""Similar-items latency and quality: raw pgvector SQL vs the HTTP endpoint, HNSW vs exact.

    python bench/similar.py [--sizes 10000 100000] [--dim 384] [--queries 200] [--clients 4]

For each catalog size N: N items with synthetic clustered unit vectors in the text space (a
mixture of Gaussians, like real embeddings), 50 categories, 90% in stock. Measures
- raw SQL p50/p99 of the HNSW query the selector runs (the baseline),
- the endpoint GET /api/v1/items/{id}/similar/?space=text under gunicorn: p50/p99 sequentially
  and requests/s with concurrent clients,
- recall@10 of what the selector returns vs exact search, without and with a selective filter
  (one category, ~2% of items), and how often k of k results came back.
Last line: ratios against the targets (endpoint p50 / raw SQL p50 <= 3, recall@10 >= 0.95).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
from _common import free_port, p50, percentile, setup_django, start_gunicorn
from tqdm import tqdm


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def synthetic_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centers = rng.normal(size=(max(10, n // 200), dim))
    labels = rng.integers(0, len(centers), size=n)
    vecs = centers[labels] + 0.6 * rng.normal(size=(n, dim))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def load(n: int, dim: int, rng: np.random.Generator) -> None:
    """Bulk-load items and vectors with COPY, then (re)build the HNSW index once."""
    from django.db import connection

    from shop_recs.catalog import vectors
    from shop_recs.catalog.models import Item, ItemEmbedding

    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {Item._meta.db_table} CASCADE")
        cur.execute(f"DROP INDEX IF EXISTS {vectors.index_name('text', dim)}")
        vectors._ensured.clear()
    vecs = synthetic_vectors(n, dim, rng)
    cats = rng.integers(0, 50, size=n)
    stock = rng.random(n) < 0.9
    raw = connection.connection  # psycopg connection
    items_table, emb_table = Item._meta.db_table, ItemEmbedding._meta.db_table
    with raw.cursor() as cur:
        with cur.copy(
            f"COPY {items_table} (external_id, title, description, category, brand, attributes,"
            " in_stock, is_active, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in tqdm(range(n), desc=f"items {n}", unit="item", leave=False):
                copy.write_row(
                    (
                        f"b{i}",
                        f"Item {i}",
                        "",
                        f"cat-{cats[i]}",
                        "",
                        "{}",
                        bool(stock[i]),
                        True,
                        "2026-01-01",
                        "2026-01-01",
                    )
                )
        cur.execute(f"SELECT id, external_id FROM {items_table}")
        ids = {ext: pk for pk, ext in cur.fetchall()}
        with cur.copy(
            f"COPY {emb_table} (item_id, space, dim, vector, encoder, encoder_version,"
            " content_hash, updated_at) FROM STDIN"
        ) as copy:
            for i in tqdm(range(n), desc=f"vectors {n}", unit="vec", leave=False):
                copy.write_row(
                    (
                        ids[f"b{i}"],
                        "text",
                        dim,
                        vectors.to_literal(vecs[i]),
                        "synthetic",
                        "synthetic",
                        "-",
                        "2026-01-01",
                    )
                )
    raw.commit()
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '1GB'")
        vectors.ensure_index("text", dim)
        cur.execute("ANALYZE")
    print(f"  N={n}: HNSW index built in {time.perf_counter() - t0:.1f}s")


def raw_sql_latency(query_ids: list[int], dim: int, k: int) -> list[float]:
    """The selector's HNSW statement alone, with the query vector already in hand."""
    from django.db import connection

    from shop_recs.catalog import vectors
    from shop_recs.catalog.models import Item, ItemEmbedding

    table, items = ItemEmbedding._meta.db_table, Item._meta.db_table
    expr = f"e.vector::vector({dim})"
    sql = (
        f"SELECT e.item_id, {expr} <=> %s::vector({dim}) AS dist FROM {table} e "
        f"JOIN {items} i ON i.id = e.item_id WHERE e.space = 'text' AND e.dim = {dim} "
        f"AND i.is_active AND i.in_stock = true AND NOT (e.item_id = ANY(%s)) "
        f"ORDER BY {expr} <=> %s::vector({dim}) LIMIT %s"
    )
    vecs = {
        r.item_id: vectors.to_literal(r.vector)
        for r in ItemEmbedding.objects.filter(item_id__in=query_ids, space="text")
    }
    out = []
    with connection.cursor() as cur:
        # the ef_search the selector runs with (HNSW_EF_SEARCH, widened for a large k)
        from shop_recs.conf import recs_settings

        cur.execute(f"SET hnsw.ef_search = {max(int(recs_settings.HNSW_EF_SEARCH), 2 * k)}")
        for qid in query_ids:
            t = time.perf_counter()
            cur.execute(sql, [vecs[qid], [qid], vecs[qid], k])
            cur.fetchall()
            out.append(time.perf_counter() - t)
    return out


def selector_latency(external_ids: list[str], k: int) -> list[float]:
    """The selector behind the endpoint, in-process: the same SQL statements (query vectors by
    id, then k-NN with item cards and per-space explanation), no HTTP, no DRF."""
    from shop_recs.ranking.similar import item_similar

    out = []
    for ext in external_ids:
        t = time.perf_counter()
        item_similar(external_id=ext, space="text", k=k)
        out.append(time.perf_counter() - t)
    return out


def quality(query_ids: list[int], k: int, category: str | None) -> tuple[float, float]:
    """Mean recall@k of the selector vs exact ranking, and the share of k-of-k answers."""
    from django.db import connection

    from shop_recs.catalog.models import Item, ItemEmbedding
    from shop_recs.catalog.vectors import to_literal
    from shop_recs.search.knn import vector_search
    from shop_recs.search.types import SimilarFilters

    filters = SimilarFilters(category=category)
    table, items = ItemEmbedding._meta.db_table, Item._meta.db_table
    recalls, full = [], 0
    for qid in query_ids:
        vec = np.asarray(ItemEmbedding.objects.get(item_id=qid, space="text").vector)
        found = vector_search(
            space="text", query=to_literal(vec), k=k, filters=filters, exclude_item_ids=[qid]
        )
        got = [n.item.id for n in found]
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT e.item_id FROM {table} e JOIN {items} i ON i.id = e.item_id "
                "WHERE e.space = 'text' AND i.is_active AND i.in_stock AND e.item_id <> %s "
                + ("AND i.category = %s " if category else "")
                + "ORDER BY (e.vector <=> %s::vector) + 0 LIMIT %s",
                [qid, *([category] if category else []), str(vec.tolist()), k],
            )
            exact = [r[0] for r in cur.fetchall()]
        recalls.append(len(set(got) & set(exact)) / max(1, len(exact)))
        full += len(got) == min(k, len(exact))
    return float(np.mean(recalls)), full / len(query_ids)


def http_latency(
    port: int, external_ids: list[str], k: int, clients: int
) -> tuple[list[float], float]:
    path = f"/api/v1/items/{{}}/similar/?space=text&k={k}"
    url = f"http://127.0.0.1:{port}{path}"
    seq = []
    for ext in external_ids:
        # http.client: a thin client, so the figure is the server's time, not the client's
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        t = time.perf_counter()
        conn.request("GET", path.format(ext))
        resp = conn.getresponse()
        body = resp.read()
        seq.append(time.perf_counter() - t)
        conn.close()
        if resp.status != 200 or len(json.loads(body)["results"]) != k:
            raise SystemExit(f"endpoint answered {resp.status}: {body[:300]!r}")
    local = threading.local()

    def one(ext: str) -> None:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        s.get(url.format(ext), timeout=30).raise_for_status()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, external_ids * 2))
    rps = 2 * len(external_ids) / (time.perf_counter() - t0)
    return seq, rps


def main() -> None:
    args = parse_args()
    setup_django(args.database_url)
    from shop_recs.catalog.models import Item

    rng = np.random.default_rng(args.seed)
    summary = []
    for n in args.sizes:
        load(n, args.dim, rng)
        ids = list(Item.objects.filter(in_stock=True).values_list("pk", "external_id"))
        picks = [
            ids[i] for i in rng.choice(len(ids), size=min(args.queries, len(ids)), replace=False)
        ]
        query_ids = [pk for pk, _ in picks]
        sql = raw_sql_latency(query_ids, args.dim, args.k)
        sel = selector_latency([ext for _, ext in picks], args.k)
        recall_all, full_all = quality(query_ids[:100], args.k, None)
        recall_cat, full_cat = quality(query_ids[:100], args.k, "cat-7")
        port = free_port()
        server = start_gunicorn(port, args.workers)
        try:
            seq, rps = http_latency(port, [ext for _, ext in picks], args.k, args.clients)
        finally:
            server.terminate()
            server.wait(timeout=30)
        ratio = p50(seq) / p50(sql)
        print(
            f"N={n}: raw k-NN SQL p50={p50(sql) * 1000:.2f} ms"
            f" p99={percentile(sql, 0.99) * 1000:.2f} ms | selector (all SQL of the endpoint,"
            f" in-process) p50={p50(sel) * 1000:.2f} ms"
            f" | endpoint p50={p50(seq) * 1000:.2f} ms p99={percentile(seq, 0.99) * 1000:.2f} ms,"
            f" {rps:.0f} req/s with {args.clients} clients ({args.workers} gunicorn workers)"
        )
        print(
            f"N={n}: recall@{args.k} vs exact: no filter {recall_all:.3f} (k of k: {full_all:.0%}),"
            f" category filter ~2% {recall_cat:.3f} (k of k: {full_cat:.0%});"
            f" endpoint/raw SQL p50 {ratio:.2f}, endpoint/selector p50 {p50(seq) / p50(sel):.2f}"
        )
        summary.append(
            f"N={n}: endpoint/SQL p50 {ratio:.2f} (target <= 3), recall@{args.k} "
            f"{min(recall_all, recall_cat):.3f} (target >= 0.95), "
            f"k of k {min(full_all, full_cat):.0%}"
        )
    print(" | ".join(summary))


if __name__ == "__main__":
    main()
