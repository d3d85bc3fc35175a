"""k-nearest-neighbour queries in pgvector: one statement per list, filters in SQL.

Every list (similar items in any space, search, the model's recommendations, popular items)
is built here from the stored vectors and the item rows; what to ask for (which space, which
query vector, which rules) is decided by the callers in ``shop_recs.ranking``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from shop_recs.catalog import vectors
from shop_recs.catalog.db import read_connection
from shop_recs.catalog.models import Item, ItemImage, ItemStats, Space
from shop_recs.conf import recs_settings
from shop_recs.search.types import ItemCard, Neighbour, SimilarFilters, StoredVector


def _dims(literal: str) -> int:
    return literal.count(",") + 1


#: The dimension of each space's vectors as this process last saw them: what the one-statement
#: similar query (:func:`similar_by_external_id`) casts to, so it can use the space's index.
_space_dims: dict[str, int] = {}


def _stored_space(space: str) -> str:
    """The stored space to scan for ``space`` (``hybrid`` -> the active version's key,
    :func:`shop_recs.catalog.vectors.space_key`); ValueError for an unknown space."""
    Space(vectors.base_space(vectors.check_space(space)))
    return vectors.space_key(space)


def item_spaces(*, external_id: str) -> tuple[int, dict[str, int]] | None:
    """The item's id and the dimension of each space it has a vector in, by public name (a
    model's space only for the active version; no vectors are transferred); None for an
    unknown item."""
    items = connection.ops.quote_name(Item._meta.db_table)
    with read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT i.id, {vectors.public_space_sql('e.space')}, e.dim FROM {items} i "
            f"LEFT JOIN {vectors.embedding_table()} e ON e.item_id = i.id "
            f"AND {vectors.served_space_sql('e.space')} "
            "WHERE i.external_id = %s",
            [external_id],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    dims = {space: dim for _, space, dim in rows if space is not None}
    _space_dims.update(dims)
    return rows[0][0], dims


def filter_sql(
    filters: SimilarFilters, exclude_ids: Iterable[int], *, id_column: str = "e.item_id"
) -> tuple[str, list[Any]]:
    clauses, params = ["i.is_active"], []
    for clause, value in (
        ("i.category = %s", filters.category),
        ("i.brand = %s", filters.brand),
        ("i.in_stock = %s", filters.in_stock),
        ("i.price >= %s", filters.price_min),
        ("i.price <= %s", filters.price_max),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if filters.exclude:
        clauses.append("NOT (i.external_id = ANY(%s))")
        params.append(list(filters.exclude))
    if filters.exclude_brands:
        clauses.append("NOT (i.brand = ANY(%s))")
        params.append(list(filters.exclude_brands))
    if filters.exclude_categories:
        clauses.append("NOT (i.category = ANY(%s))")
        params.append(list(filters.exclude_categories))
    excluded = sorted(set(exclude_ids))
    if excluded:
        clauses.append(f"NOT ({id_column} = ANY(%s))")
        params.append(excluded)
    return " AND ".join(clauses), params


def _explain_sql(
    table: str, explain: dict[str, str] | int | None, *, id_column: str = "e.item_id"
) -> tuple[str, list[Any]]:
    """Per-space similarity of each result to the query: against query vectors given as
    literals (space -> vector), or against every vector of the stored item ``explain``."""
    similarity = "1 - (x.vector <=> q.v)"
    # by public name, and of model vectors only the active version's
    public, served = vectors.public_space_sql("x.space"), vectors.served_space_sql("x.space")
    if isinstance(explain, int):
        return (
            f"(SELECT json_object_agg({public}, {similarity.replace('q.v', 'q.vector')}) "
            f"FROM {table} x JOIN {table} q ON q.item_id = %s AND q.space = x.space "
            f"AND q.dim = x.dim WHERE x.item_id = {id_column} AND {served})",
            [explain],
        )
    if not explain:
        return "NULL", []
    values = ", ".join(["(%s, %s::vector)"] * len(explain))
    params: list[Any] = []
    for name, literal in sorted(explain.items()):
        params += [name, literal]
    return (
        f"(SELECT json_object_agg({public}, {similarity}) FROM {table} x "
        f"JOIN (VALUES {values}) AS q(space, v) ON q.space = {public} "
        f"AND x.dim = vector_dims(q.v) WHERE x.item_id = {id_column} AND {served})",
        params,
    )


def _query_sql(space: str, query: str | StoredVector) -> tuple[str, list[Any], int]:
    """The query vector as SQL (typed ``vector(dim)``), its parameters and its dimension."""
    table = vectors.embedding_table()
    if isinstance(query, StoredVector):
        dim = int(query.dim)
        return (
            f"(SELECT vector FROM {table} WHERE item_id = %s AND space = '{space}' "
            f"AND dim = {dim})::vector({dim})",
            [query.item_id],
            dim,
        )
    dim = _dims(query)
    return f"%s::vector({dim})", [query], dim


def _image_sql() -> str:
    images = connection.ops.quote_name(ItemImage._meta.db_table)
    return (
        # a stored, validated file only: an image registered by URL is neither checked nor
        # downloaded while pending, so its URL is never shown on a card
        f"(SELECT im.file FROM {images} im WHERE im.item_id = i.id AND im.status = 'ready' "
        "AND im.file <> '' ORDER BY im.position, im.id LIMIT 1)"
    )


@dataclass(frozen=True)
class ScanPlan:
    """How a k-NN query scans: ``fast`` (one statement at the connection's ``ef_search``, no
    transaction), ``use_index`` (else an exact scan), the first breadth ``ef`` of the careful
    path (HNSW's ``ef_search``, or IVFFlat's ``probes``: the setting ``knob``, widened up to
    ``max_ef`` when a filter starves the scan) and the ``settings`` it sets (``SET LOCAL``)
    before scanning."""

    fast: bool
    use_index: bool
    ef: int
    settings: tuple[str, ...]
    knob: str = "hnsw.ef_search"
    max_ef: int = vectors.HNSW_MAX_EF_SEARCH


#: IVFFlat probes: this share of the index's lists. On a 100k-item model space with 316
#: lists: recall@10 0.91 at 5 probes, 0.95 at 10, 0.97 at 20 ...
IVF_PROBE_SHARE = 0.06
#: ... and enough lists for about this many vectors (an index has ~sqrt(N) lists of ~sqrt(N)
#: vectors each): small spaces, where a few lists hold few of the true neighbours (0.81 at
#: 2,000 items with 10 of 45 lists), are scanned whole or nearly, which costs as little.
IVF_MIN_ROWS = 5000


def scan_plan(
    *, version: tuple[int, ...], dim: int, k: int, session_ef: int, ivf_lists: int | None = None
) -> ScanPlan:
    """The scan of :func:`vector_search` for a pgvector ``version``. pgvector 0.8 filters inside
    the index scan when ``hnsw.iterative_scan`` is on (relaxed order: the statement re-sorts),
    so a selective filter no longer starves the result; older versions filter after the scan,
    and the careful path retries with a larger ``ef_search`` or ranks the matches exactly. An
    HNSW scan yields at most ``ef_search`` rows, which pgvector caps at 1000: longer lists
    (``recs_export --k 600`` asks for 2k = 1200) and unindexed dimensions rank exactly.

    ``ivf_lists``: the space has an IVFFlat index of that many lists (model spaces,
    :func:`shop_recs.catalog.vectors.index_method`): it is probed at ``IVF_PROBE_SHARE`` of
    them, set per statement, widened like ``ef_search`` when a filter starves the scan."""
    iterative = tuple(version) >= (0, 8)
    if ivf_lists is not None:
        lists = max(1, int(ivf_lists))
        probes = min(
            lists, max(math.ceil(IVF_PROBE_SHARE * lists), math.ceil(IVF_MIN_ROWS / lists))
        )
        settings = ("SET LOCAL ivfflat.iterative_scan = relaxed_order",) if iterative else ()
        return ScanPlan(
            fast=False,
            use_index=dim <= vectors.HNSW_MAX_DIM,
            ef=probes,
            settings=settings,
            knob="ivfflat.probes",
            max_ef=lists,
        )
    max_ef = vectors.HNSW_MAX_EF_SEARCH
    ef = min(max(session_ef, 2 * k), max_ef)
    use_index = dim <= vectors.HNSW_MAX_DIM and k <= max_ef
    settings = ("SET LOCAL hnsw.iterative_scan = relaxed_order",) if iterative else ()
    return ScanPlan(
        fast=use_index and ef == session_ef and not iterative,
        use_index=use_index,
        ef=ef,
        settings=settings,
    )


def vector_search(
    *,
    space: str,
    query: str | StoredVector,
    k: int,
    filters: SimilarFilters,
    exclude_item_ids: Iterable[int] = (),
    explain: dict[str, str] | int | None = None,
) -> list[Neighbour]:
    """Nearest items to ``query`` in ``space`` by the space's metric (cosine, or inner product
    for model vectors), honouring the filters. ``query`` is a vector in pgvector text form or a
    :class:`StoredVector`. ``explain`` (space -> query literal, or a stored item's id) adds each
    result's similarity in those spaces, computed in the same statement.

    Returns up to k results, and exactly k whenever k items match. pgvector 0.6's HNSW filters
    after the index scan, so a selective filter can starve the result: the index is retried with
    a larger ``hnsw.ef_search``, and the matching set is ranked exactly when it is small or the
    index still comes back short. On pgvector >= 0.8 iterative index scans help in the server.
    """
    space = _stored_space(space)
    table = vectors.embedding_table()
    q_sql, q_params, dim = _query_sql(space, query)
    op = vectors.distance_operator(space)
    items = connection.ops.quote_name(Item._meta.db_table)
    where, params = filter_sql(filters, exclude_item_ids)
    expr = f"e.vector::vector({dim})"
    explain_sql, explain_params = _explain_sql(table, explain)
    columns = (
        f"e.item_id, i.external_id, i.title, i.category, i.brand, i.price, i.in_stock, "
        f"{_image_sql()} AS image, {explain_sql} AS sims"
    )
    base = (
        f"FROM {table} e JOIN {items} i ON i.id = e.item_id "
        f"WHERE e.space = '{space}' AND e.dim = {dim} AND {where}"
    )
    # The query vector is one InitPlan, evaluated once; both mentions read its result.
    knn = (
        f"WITH q AS MATERIALIZED (SELECT {q_sql} AS v) "
        f"SELECT {expr} {op} (SELECT v FROM q) AS dist, {columns} {base} "
        f"ORDER BY {expr} {op} (SELECT v FROM q) LIMIT %s"
    )
    knn_params = [*q_params, *explain_params, *params, k]
    plan = scan_plan(
        version=vectors.pgvector_version(),
        dim=dim,
        k=k,
        session_ef=vectors.session_ef_search(),
        ivf_lists=vectors.ivf_lists(space, dim),
    )
    use_index, ef, max_ef = plan.use_index, plan.ef, plan.max_ef
    conn = read_connection()
    with conn.cursor() as cursor:
        if plan.fast:
            # Fast path: the connection's ef_search (set when it opened) suffices; one
            # statement, no transaction. Falls through to the careful path when the filter
            # starves it.
            cursor.execute(knn, knn_params)
            rows = cursor.fetchall()
            if len(rows) >= k:
                return _neighbours(rows, op)
        with transaction.atomic(using=conn.alias):
            if use_index:
                for statement in plan.settings:
                    cursor.execute(statement)
                while True:
                    cursor.execute(f"SET LOCAL {plan.knob} = {int(ef)}")
                    cursor.execute(knn, knn_params)
                    rows = cursor.fetchall()
                    if len(rows) >= k:
                        return _neighbours(rows, op)
                    cursor.execute(f"SELECT count(*) {base}", params)
                    matching = cursor.fetchone()[0]
                    if len(rows) >= matching:
                        return _neighbours(rows, op)
                    if matching <= int(recs_settings.EXACT_SCAN_MAX) or ef >= max_ef:
                        break
                    ef = min(max_ef, ef * 4)
            # Exact ranking of the matching set: the MATERIALIZED CTE keeps the planner off
            # the index.
            cursor.execute(
                f"WITH cand AS MATERIALIZED (SELECT {expr} AS v, {columns} {base}) "
                f"SELECT v {op} {q_sql} AS dist, item_id, external_id, title, category,"
                " brand, price, in_stock, image, sims FROM cand ORDER BY dist LIMIT %s",
                [*explain_params, *params, *q_params, k],
            )
            return _neighbours(cursor.fetchall(), op)


def similar_by_external_id(
    *, external_id: str, space: str, k: int, filters: SimilarFilters
) -> tuple[int, list[Neighbour]] | None:
    """The item's id and its similar list in ``space`` (never itself, explained per
    space like :func:`vector_search` with ``explain`` = the item) in one statement: the item's
    lookup, its vector and the k-NN scan together, one round trip instead of two.

    None when one statement cannot answer it, and the caller takes the two-step path
    (:func:`item_spaces`, then :func:`vector_search`): an unknown item, no vector in the space,
    a dimension other than the space's last seen one (or none seen yet in this process), a scan
    that needs settings of its own (:func:`scan_plan`), or fewer than k rows (a filter that
    starved the index scan, which the careful path retries).
    """
    space = Space(space).value
    dim = _space_dims.get(space)
    if dim is None:
        return None
    plan = scan_plan(
        version=vectors.pgvector_version(),
        dim=dim,
        k=k,
        session_ef=vectors.session_ef_search(),
        ivf_lists=vectors.ivf_lists(space, dim),
    )
    if not plan.fast:
        return None
    table = vectors.embedding_table()
    items = connection.ops.quote_name(Item._meta.db_table)
    op = vectors.distance_operator(space)
    where, params = filter_sql(filters, ())
    expr = f"e.vector::vector({dim})"
    # explained in every space both items have, by public name, the active model's only
    public, served = vectors.public_space_sql("x.space"), vectors.served_space_sql("x.space")
    sims = (
        f"(SELECT json_object_agg({public}, 1 - (x.vector <=> y.vector)) FROM {table} x "
        f"JOIN {table} y ON y.item_id = (SELECT id FROM q) AND y.space = x.space "
        f"AND y.dim = x.dim WHERE x.item_id = e.item_id AND {served})"
    )
    # q is one row evaluated once (InitPlans), its vector NULL unless it has the expected
    # dimension: no cast can fail, and then, like for an unknown item, no row comes back.
    sql = (
        f"WITH q AS MATERIALIZED (SELECT i.id, e.dim, CASE WHEN e.dim = {dim} THEN "
        f"e.vector::vector({dim}) END AS v FROM {items} i LEFT JOIN {table} e "
        f"ON e.item_id = i.id AND e.space = '{space}' WHERE i.external_id = %s) "
        f"SELECT (SELECT id FROM q), {expr} {op} (SELECT v FROM q) AS dist, e.item_id, "
        f"i.external_id, i.title, i.category, i.brand, i.price, i.in_stock, {_image_sql()} "
        f"AS image, {sims} AS sims FROM {table} e JOIN {items} i ON i.id = e.item_id "
        f"WHERE (SELECT v FROM q) IS NOT NULL AND e.space = '{space}' AND e.dim = {dim} "
        f"AND e.item_id <> (SELECT id FROM q) AND {where} "
        f"ORDER BY {expr} {op} (SELECT v FROM q) LIMIT %s"
    )
    with read_connection().cursor() as cursor:
        cursor.execute(sql, [external_id, *params, k])
        rows = cursor.fetchall()
    if len(rows) < k:
        # none: unknown item, no vector, another dimension (the two-step path learns it);
        # fewer than k: a filter may have starved the index scan (the careful path retries)
        return None
    found = [row[1:] for row in rows]
    return int(rows[0][0]), _neighbours(found, op)


def _neighbours(rows: Iterable[tuple[Any, ...]], op: str = "<=>") -> list[Neighbour]:
    out = []
    # cosine distance -> similarity 1 - d; negative inner product -> the inner product
    to_score = (lambda d: 1.0 - d) if op == "<=>" else (lambda d: -d)
    for dist, *card, image, sims in sorted(rows, key=lambda r: float(r[0])):
        similarity = {name: round(float(v), 6) for name, v in (sims or {}).items()}
        out.append(
            Neighbour(
                item=ItemCard(*card, image=image or ""),
                score=round(to_score(float(dist)), 6),
                similarity=similarity,
            )
        )
    return out


def item_cards(
    *,
    item_ids: Iterable[int],
    filters: SimilarFilters,
    exclude_item_ids: Iterable[int] = (),
    space: str | None = None,
    query: str | StoredVector | None = None,
    explain: dict[str, str] | int | None = None,
) -> list[Neighbour]:
    """The items ``item_ids`` that pass the filters (active, not excluded), as list entries:
    what a pin rule inserts when its item is not among the candidates. Each one's score is
    against ``query`` in ``space`` like :func:`vector_search`'s, 0.0 without a query or when the
    item has no vector there."""
    ids = sorted(set(item_ids))
    if not ids:
        return []
    table = vectors.embedding_table()
    items = connection.ops.quote_name(Item._meta.db_table)
    op = "<=>"
    dist_sql, q_params = "NULL", []
    if space is not None and query is not None:
        space = _stored_space(space)
        q_sql, q_params, dim = _query_sql(space, query)
        op = vectors.distance_operator(space)
        dist_sql = (
            f"(SELECT e.vector::vector({dim}) {op} {q_sql} FROM {table} e "
            f"WHERE e.item_id = i.id AND e.space = '{space}' AND e.dim = {dim})"
        )
    where, params = filter_sql(filters, exclude_item_ids, id_column="i.id")
    explain_sql, explain_params = _explain_sql(table, explain, id_column="i.id")
    with read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT {dist_sql}, i.id, i.external_id, i.title, i.category, i.brand, i.price, "
            f"i.in_stock, {_image_sql()}, {explain_sql} FROM {items} i "
            f"WHERE i.id = ANY(%s) AND {where} ORDER BY i.id",
            [*q_params, *explain_params, ids, *params],
        )
        rows = cursor.fetchall()
    out = []
    for dist, *card, image, sims in rows:
        score = 0.0
        if dist is not None:
            score = 1.0 - float(dist) if op == "<=>" else -float(dist)
        out.append(
            Neighbour(
                item=ItemCard(*card, image=image or ""),
                score=round(score, 6),
                similarity={name: round(float(v), 6) for name, v in (sims or {}).items()},
            )
        )
    return out


def popular_items(
    *, k: int, filters: SimilarFilters, exclude_item_ids: Sequence[int] = ()
) -> list[Neighbour]:
    """The most popular items of the filtered set (ItemStats score, then newest)."""
    if k <= 0:
        return []
    where, params = filter_sql(filters, exclude_item_ids, id_column="i.id")
    items = connection.ops.quote_name(Item._meta.db_table)
    stats = connection.ops.quote_name(ItemStats._meta.db_table)
    with read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT i.id, i.external_id, i.title, i.category, i.brand, i.price, i.in_stock, "
            f"{_image_sql()}, coalesce(s.score, 0) "
            f"FROM {items} i LEFT JOIN {stats} s ON s.item_id = i.id WHERE {where} "
            "ORDER BY coalesce(s.score, 0) DESC, i.id DESC LIMIT %s",
            [*params, k],
        )
        rows = cursor.fetchall()
    return [
        Neighbour(item=ItemCard(*row[:7], image=row[7] or ""), score=round(float(row[8]), 6))
        for row in rows
    ]
