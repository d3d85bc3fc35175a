"""pgvector plumbing shared by services (writes) and selectors (reads).

Embeddings of every space live in one table with an untyped ``vector`` column, so an encoder
swap needs no schema change. Each (space, dim) pair gets a partial HNSW index on the expression
``vector::vector(dim)``; queries use that same expression and predicate so the planner can use
the index.

Model vectors are versioned: the item vectors of model version 12 are the space
``hybrid@12`` (:func:`space_key`), with an index of their own, so activating a version writes
and indexes its vectors beside the live ones and only then moves the active pointer
(``ModelVersion.is_active``). Readers resolve the public name ``hybrid`` to the active
version's key in one place (:func:`space_key`, or in SQL :func:`served_space_sql`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from django.db import connection
from django.db.models import Q

from shop_recs.catalog.models import ItemEmbedding
from shop_recs.conf import recs_settings

HNSW_MAX_DIM = 2000  # pgvector's limit for indexing the vector type
# pgvector's range of hnsw.ef_search is 1..1000 (SET refuses more); an HNSW scan returns at
# most ef_search rows, so a longer list is ranked exactly (shop_recs.search.knn).
HNSW_MAX_EF_SEARCH = 1000
_SPACE = re.compile(r"^([a-z_]{1,16})(?:@(\d{1,9}))?$")
#: Public spaces whose stored vectors are per model version (``hybrid@<version id>``).
VERSIONED_SPACES = frozenset({"hybrid"})


def embedding_table() -> str:

    return connection.ops.quote_name(ItemEmbedding._meta.db_table)


def check_space(space: str) -> str:
    """``space`` if it is a valid stored space name (``text``, ``hybrid@12``), else ValueError:
    names are interpolated into SQL and index names."""
    if not isinstance(space, str) or not _SPACE.match(space):
        raise ValueError(f"bad space name {space!r}")
    return space


def base_space(space: str) -> str:
    """The public name of a stored space: ``hybrid@12`` -> ``hybrid``."""
    return space.partition("@")[0]


def active_version_id() -> int | None:
    """The active model version's id (the pointer readers follow), or None."""
    from shop_recs.catalog.models import ModelVersion

    return ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()


_NO_VERSION = object()


def space_key(space: str, version_id: int | object | None = _NO_VERSION) -> str:
    """The stored space of a public space name: the only place that resolves ``hybrid`` to
    ``hybrid@<version id>`` (the active version's unless ``version_id`` is given; with no
    active version, ``hybrid@0``, which holds nothing). Other spaces, and keys that already
    name a version, are returned unchanged."""
    check_space(space)
    if space not in VERSIONED_SPACES:
        return space
    version = active_version_id() if version_id is _NO_VERSION else version_id
    return f"{space}@{int(version or 0)}"  # type: ignore[call-overload]


def served_space_sql(column: str) -> str:
    """SQL condition on a ``space`` column: true for the spaces readers see (every unversioned
    space and the active version's key), so explanations and listings never show a previous
    or half-written model version. Resolves the active pointer in the same statement."""
    from shop_recs.catalog.models import ModelVersion

    versions = connection.ops.quote_name(ModelVersion._meta.db_table)
    # an uncorrelated subquery: evaluated once per statement (an InitPlan), not per row
    return (
        "("
        + " AND ".join(
            f"({column} NOT LIKE '{name}@%%' OR {column} = (SELECT '{name}@' || v.id "
            f"FROM {versions} v WHERE v.is_active LIMIT 1))"
            for name in sorted(VERSIONED_SPACES)
        )
        + ")"
    )


def served_spaces_q() -> Q:
    """ORM filter of ``ItemEmbedding`` rows readers see: every unversioned space and the
    active model version's (the same rule as :func:`served_space_sql`)."""
    q = Q()
    for space in sorted(VERSIONED_SPACES):
        q &= ~Q(space__startswith=f"{space}@") | Q(space=space_key(space))
    return q


def public_space_sql(column: str) -> str:
    """SQL expression: the public name of a stored space (``split_part(space, '@', 1)``)."""
    return f"split_part({column}, '@', 1)"


def index_method(space: str) -> str:
    """``ivfflat`` for model spaces, ``hnsw`` for content spaces.

    Model vectors are ranked by inner product against queries from the *user* tower (or the
    user tower applied to an item), which lie outside the item vectors' own distribution.
    HNSW's graph links items to their item neighbours and loses its way towards such queries:
    on a 100k-item trained model (bench/scale.py) HNSW recall@10 was 0.36 at ef_search 40,
    0.44 at 100 and 0.66 at 400 (0.79 at 200 with the MIPS-to-cosine reduction), while
    IVFFlat with sqrt(N) lists found 0.95 at 3 % of them probed and 0.97 at 6 % (2.7 ms).
    Content embeddings are compared with their own kind, where HNSW is the better index."""
    return "ivfflat" if base_space(space) in IVF_SPACES else "hnsw"


def index_name(space: str, dim: int) -> str:
    m = _SPACE.match(check_space(space))
    assert m is not None
    name, version = m.group(1), m.group(2)
    tag = f"{name}_v{version}" if version else name
    suffix = "ivf" if index_method(space) == "ivfflat" else "hnsw"
    return f"recs_emb_{tag}_{int(dim)}_{suffix}"


def ivf_lists_for(rows: int) -> int:
    """IVFFlat lists for a space of ``rows`` vectors: sqrt(rows) (pgvector's advice above 1M
    rows; below, it suggests rows / 1000, which leaves lists of thousands of vectors to scan
    at a time), at least 1."""
    return max(1, round(math.sqrt(max(int(rows), 0))))


def index_sql(
    space: str, dim: int, table: str, *, concurrently: bool = False, lists: int = 1
) -> str:
    """The partial index of (space, dim); ``lists``: an IVFFlat index's list count."""
    check_space(space)
    dim = int(dim)
    how = "CONCURRENTLY " if concurrently else ""
    method = index_method(space)
    options = f" WITH (lists = {max(1, int(lists))})" if method == "ivfflat" else ""
    return (
        f"CREATE INDEX {how}IF NOT EXISTS {index_name(space, dim)} ON {table} "
        f"USING {method} ((vector::vector({dim})) {opclass(space)}){options} "
        f"WHERE space = '{space}' AND dim = {dim}"
    )


#: (alias, index name) -> the IVFFlat index's lists (read from the catalogue once)
_ivf_lists: dict[tuple[str, str], int] = {}


def ivf_lists(space: str, dim: int) -> int | None:
    """The lists of the IVFFlat index of (space, dim); None when the space has no IVFFlat
    index (a content space, or a model space indexed before IVFFlat, still served by HNSW)."""
    if index_method(space) != "ivfflat":
        return None
    name = index_name(space, dim)
    key = (connection.alias, name)
    if key not in _ivf_lists:
        row = _index_row(name)
        if row is None or not row[0]:
            return None
        options = dict(o.split("=", 1) for o in (row[1] or []))
        _ivf_lists[key] = int(options.get("lists", 100))  # pgvector's default
    return _ivf_lists[key]


_ensured: set[tuple[str, str, int]] = set()
#: Spaces whose missing indexes a bulk load (:func:`indexes_deferred`) builds at its end.
_deferred: set[str] = set()


def index_valid(name: str) -> bool | None:
    """Whether the index ``name`` is valid (``pg_index.indisvalid``); None when it is missing.
    A ``CREATE INDEX CONCURRENTLY`` that failed leaves an invalid index that serves nothing."""
    row = _index_row(name)
    return None if row is None else bool(row[0])


def _index_row(name: str) -> tuple[bool, list[str] | None] | None:
    """(``pg_index.indisvalid``, ``pg_class.reloptions``) of the index ``name``, or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT x.indisvalid, c.reloptions FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relname = %s",
            [name],
        )
        return cursor.fetchone()


def ensure_index(space: str, dim: int, *, concurrently: bool = False) -> bool:
    """Create the partial HNSW index for (space, dim) if missing. False when dim is too large to
    index (queries then scan exactly).

    ``concurrently``: ``CREATE INDEX CONCURRENTLY`` (writers are not blocked while it builds;
    possible only outside a transaction, otherwise the plain form is used); an invalid index
    left by an earlier failed concurrent build is dropped and built again."""
    if dim > HNSW_MAX_DIM:
        return False
    if space in _deferred:
        return True
    key = (connection.alias, space, int(dim))
    if key not in _ensured:
        concurrently = concurrently and not connection.in_atomic_block
        name = index_name(space, dim)
        if concurrently and index_valid(name) is False:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # Inside a transaction, deferred foreign-key checks of rows written earlier are
                # still pending, and PostgreSQL refuses CREATE INDEX until they have run.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            lists = 1
            if index_method(space) == "ivfflat":
                # IVFFlat clusters the vectors there now: built after a space's bulk write
                cursor.execute(
                    f"SELECT count(*) FROM {embedding_table()} WHERE space = %s AND dim = %s",
                    [space, int(dim)],
                )
                lists = ivf_lists_for(cursor.fetchone()[0])
            if concurrently:
                cursor.execute("SET maintenance_work_mem = '512MB'")
            try:
                cursor.execute(
                    index_sql(space, dim, embedding_table(), concurrently=concurrently, lists=lists)
                )
            finally:
                if concurrently:
                    cursor.execute("RESET maintenance_work_mem")
        if concurrently and not index_valid(name):
            raise RuntimeError(f"index {name} was not built (invalid after a concurrent build)")
        _ensured.add(key)
    return True


def drop_space(space: str) -> int:
    """Remove a stored space: its indexes (``DROP INDEX CONCURRENTLY`` outside a transaction,
    so readers of other spaces are never blocked), then its rows in batches. Returns rows
    deleted. Used for model versions older than the previous one."""
    check_space(space)
    table = embedding_table()
    how = "" if connection.in_atomic_block else "CONCURRENTLY "
    with connection.cursor() as cursor:
        for name, (index_space, _) in space_indexes().items():
            if index_space != space:
                continue
            cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
        deleted = 0
        while True:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE space = %s "
                "LIMIT 20000)",
                [space],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < 20000:
                break
    for key in [k for k in _ensured if k[0] == connection.alias and k[1] == space]:
        _ensured.discard(key)
        _ivf_lists.pop((connection.alias, index_name(space, key[2])), None)
    return deleted


def to_literal(vector: object) -> str:
    """A vector as pgvector's text form (cheap to send, exact for float32)."""
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


@lru_cache(maxsize=8)
def _server_version(alias: str) -> tuple[int, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return tuple(int(p) for p in row[0].split(".")) if row else (0,)


def pgvector_version() -> tuple[int, ...]:
    return _server_version(connection.alias)


#: Spaces ranked by inner product (model vectors, whose norms carry meaning); all others by
#: cosine distance (content embeddings are unit vectors).
INNER_PRODUCT_SPACES = frozenset({"hybrid"})
#: Spaces indexed with IVFFlat rather than HNSW (:func:`index_method`).
IVF_SPACES = INNER_PRODUCT_SPACES


def distance_operator(space: str) -> str:
    """pgvector's ordering operator for a space: ``<#>`` (negative inner product) or ``<=>``."""
    return "<#>" if base_space(space) in INNER_PRODUCT_SPACES else "<=>"


def opclass(space: str) -> str:
    return "vector_ip_ops" if base_space(space) in INNER_PRODUCT_SPACES else "vector_cosine_ops"


_INDEX_NAME = re.compile(r"^recs_emb_([a-z_]{1,16}?)(?:_v(\d+))?_(\d+)_(?:hnsw|ivf)$")


def _index_space(match: re.Match[str]) -> tuple[str, int]:
    name, version, dim = match.groups()
    return (f"{name}@{version}" if version else name), int(dim)


def space_indexes() -> dict[str, tuple[str, int]]:
    """The HNSW indexes of the embedding table: index name -> (stored space, dim)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s",
            [ItemEmbedding._meta.db_table],
        )
        names = [name for (name,) in cursor.fetchall()]
    return {name: _index_space(m) for name in names if (m := _INDEX_NAME.match(name))}


@contextmanager
def indexes_deferred(spaces: Iterable[str]) -> Iterator[None]:
    """Bulk loads: a space that holds no vectors yet (a first import) has its HNSW index
    built once after the load (pgvector's advice: much faster than inserting row by row into
    a graph). A space that holds vectors keeps its index throughout, since readers are using
    it: a live re-encode never degrades serving to exact scans. At the end every missing index
    is built with ``CREATE INDEX CONCURRENTLY`` (writers are not blocked), also when the block
    fails.
    """

    spaces = set(spaces)
    table = embedding_table()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT space, dim FROM {table} WHERE space = ANY(%s)", [sorted(spaces)]
        )
        live = {(space, int(dim)) for space, dim in cursor.fetchall()}
        dropped = [
            pair for name, pair in space_indexes().items() if pair[0] in spaces and pair not in live
        ]
        for space, dim in dropped:
            # empty: nobody reads it, so the index is built after the load instead
            cursor.execute(f"DROP INDEX IF EXISTS {index_name(space, dim)}")
            _ensured.discard((connection.alias, space, dim))
    deferred = spaces - {space for space, _ in live}
    _deferred.update(deferred)
    try:
        yield
    finally:
        _deferred.difference_update(deferred)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT space, dim FROM {table} WHERE space = ANY(%s)",
                [sorted(spaces)],
            )
            pairs = set(dropped) | {(space, int(dim)) for space, dim in cursor.fetchall()}
        indexed = set(space_indexes().values())
        for space, dim in sorted(pairs - indexed):
            _ensured.discard((connection.alias, space, dim))
            ensure_index(space, dim, concurrently=True)


def set_session_ef_search(sender: object, connection: object, **kwargs: object) -> None:
    """On every new PostgreSQL connection: ``SET hnsw.ef_search`` to ``HNSW_EF_SEARCH``, so a
    similarity query needs no extra round trip for it (persistent connections pay it once)."""
    if getattr(connection, "vendor", "") != "postgresql":
        return

    with connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(f"SET hnsw.ef_search = {session_ef_search()}")


def session_ef_search() -> int:
    """``HNSW_EF_SEARCH`` within pgvector's range (1..1000)."""
    return min(max(1, int(recs_settings.HNSW_EF_SEARCH)), HNSW_MAX_EF_SEARCH)
