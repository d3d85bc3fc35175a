"""pgvector plumbing shared by services (writes) and selectors (reads).

Embeddings of every space live in one table with an untyped ``vector`` column, so an encoder
swap needs no schema change. Each (space, dim) pair gets a partial HNSW index on the expression
``vector::vector(dim)``; queries use that same expression and predicate so the planner can use
the index.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from django.db import connection

HNSW_MAX_DIM = 2000  # pgvector's limit for indexing the vector type
_SPACE = re.compile(r"^[a-z_]{1,16}$")


def embedding_table() -> str:
    from catalog.models import ItemEmbedding

    return connection.ops.quote_name(ItemEmbedding._meta.db_table)


def index_name(space: str, dim: int) -> str:
    return f"recs_emb_{space}_{int(dim)}_hnsw"


def index_sql(space: str, dim: int, table: str) -> str:
    if not _SPACE.match(space):
        raise ValueError(f"bad space name {space!r}")
    dim = int(dim)
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(space, dim)} ON {table} "
        f"USING hnsw ((vector::vector({dim})) vector_cosine_ops) "
        f"WHERE space = '{space}' AND dim = {dim}"
    )


_ensured: set[tuple[str, str, int]] = set()


def ensure_index(space: str, dim: int) -> bool:
    """Create the partial HNSW index for (space, dim) if missing. False when dim is too large to
    index (queries then scan exactly)."""
    if dim > HNSW_MAX_DIM:
        return False
    key = (connection.alias, space, int(dim))
    if key not in _ensured:
        with connection.cursor() as cursor:
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
