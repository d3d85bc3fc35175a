"""pgvector plumbing shared by services (writes) and selectors (reads).

Embeddings of every space live in one table with an untyped ``vector`` column, so an encoder
swap needs no schema change. Each (space, dim) pair gets a partial HNSW index on the expression
``vector::vector(dim)``; queries use that same expression and predicate so the planner can use
the index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from django.db import connection

from shop_recs.catalog.models import ItemEmbedding
from shop_recs.conf import recs_settings

HNSW_MAX_DIM = 2000  # pgvector's limit for indexing the vector type
# pgvector's range of hnsw.ef_search is 1..1000 (SET refuses more); an HNSW scan returns at
# most ef_search rows, so a longer list is ranked exactly (shop_recs.search.knn).
HNSW_MAX_EF_SEARCH = 1000
_SPACE = re.compile(r"^[a-z_]{1,16}$")


def embedding_table() -> str:

    return connection.ops.quote_name(ItemEmbedding._meta.db_table)


def index_name(space: str, dim: int) -> str:
    return f"recs_emb_{space}_{int(dim)}_hnsw"


def index_sql(space: str, dim: int, table: str) -> str:
    if not _SPACE.match(space):
        raise ValueError(f"bad space name {space!r}")
    dim = int(dim)
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(space, dim)} ON {table} "
        f"USING hnsw ((vector::vector({dim})) {opclass(space)}) "
        f"WHERE space = '{space}' AND dim = {dim}"
    )


_ensured: set[tuple[str, str, int]] = set()
#: Spaces whose indexes a bulk load (:func:`indexes_deferred`) builds at its end, not per row.
_deferred: set[str] = set()


def ensure_index(space: str, dim: int) -> bool:
    """Create the partial HNSW index for (space, dim) if missing. False when dim is too large to
    index (queries then scan exactly)."""
    if dim > HNSW_MAX_DIM:
        return False
    if space in _deferred:
        return True
    key = (connection.alias, space, int(dim))
    if key not in _ensured:
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # Inside a transaction, deferred foreign-key checks of rows written earlier are
                # still pending, and PostgreSQL refuses CREATE INDEX until they have run.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(index_sql(space, dim, embedding_table()))
        _ensured.add(key)
    return True


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


def distance_operator(space: str) -> str:
    """pgvector's ordering operator for a space: ``<#>`` (negative inner product) or ``<=>``."""
    return "<#>" if space in INNER_PRODUCT_SPACES else "<=>"


def opclass(space: str) -> str:
    return "vector_ip_ops" if space in INNER_PRODUCT_SPACES else "vector_cosine_ops"


_INDEX_NAME = re.compile(r"^recs_emb_([a-z_]{1,16})_(\d+)_hnsw$")


@contextmanager
def indexes_deferred(spaces: Iterable[str]) -> Iterator[None]:
    """Bulk loads: drop the HNSW indexes of these spaces, run the block, then build each index
    once over the loaded vectors (pgvector's advice: building after loading is much faster
    than inserting row by row into a graph). Readers in the meantime get exact answers, slower
    but correct; the indexes are rebuilt even when the block fails.
    """

    spaces = set(spaces)
    table_name = ItemEmbedding._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table_name])
        dropped = [
            (m.group(1), int(m.group(2)))
            for (name,) in cursor.fetchall()
            if (m := _INDEX_NAME.match(name)) and m.group(1) in spaces
        ]
        for space, dim in dropped:
            cursor.execute(f"DROP INDEX IF EXISTS {index_name(space, dim)}")
            _ensured.discard((connection.alias, space, dim))
    _deferred.update(spaces)
    try:
        yield
    finally:
        _deferred.difference_update(spaces)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT space, dim FROM {embedding_table()} WHERE space = ANY(%s)",
                [sorted(spaces)],
            )
            pairs = set(dropped) | {(space, int(dim)) for space, dim in cursor.fetchall()}
            cursor.execute("SET maintenance_work_mem = '512MB'")
            try:
                for space, dim in sorted(pairs):
                    _ensured.discard((connection.alias, space, dim))
                    ensure_index(space, dim)
            finally:
                cursor.execute("RESET maintenance_work_mem")


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
