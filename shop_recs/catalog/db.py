"""Serving reads on a read replica: a database router and the context that enables it.

``SHOP_RECS["READ_DATABASE"]`` names an alias of ``DATABASES`` (a PostgreSQL streaming
replica of ``default``). Inside :func:`serving_reads` (entered by the serving views: similar
items, search, recommendations, and the storefront widgets), reads of the serving models below
go to that alias, and so do the k-NN statements (:func:`read_connection`). Everything else
stays on ``default``: every write, every read outside a serving request (admin, training,
encoding, imports), and the shopper's own events and customer rows even inside one, because a
shopper's history must include the event they recorded a moment ago, which a replica may not
have replayed yet. Catalogue data on a replica lags by the replication delay (usually well
under a second), which serving tolerates: an item edited a moment ago is served as it was.

Install::

    DATABASES = {"default": {...}, "replica": {...}}
    DATABASE_ROUTERS = ["shop_recs.catalog.db.ServingReadRouter"]
    SHOP_RECS = {"READ_DATABASE": "replica"}
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from shop_recs.conf import recs_settings

ROUTER = "shop_recs.catalog.db.ServingReadRouter"

#: Models (by model name, app ``shop_recs_catalog``) whose reads a serving request may take
#: from the replica: the catalogue, its vectors and statistics, merchandising rules and the
#: model versions. Not interactions or customers (read-your-own-writes), nor jobs, served-list
#: logs or the cache.
SERVING_MODELS = frozenset(
    {
        "item",
        "itemimage",
        "itemimageembedding",
        "itemembedding",
        "itemencoding",
        "itemstats",
        "merchrule",
        "modelversion",
        # running experiments and their arms, read by every served list
        "experiment",
        "arm",
        "arm_extra_rules",
    }
)

_serving: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "shop_recs_serving_reads", default=False
)


@contextmanager
def serving_reads() -> Iterator[None]:
    """Within this block, serving reads go to ``READ_DATABASE`` (when set)."""
    token = _serving.set(True)
    try:
        yield
    finally:
        _serving.reset(token)


def read_alias() -> str:
    """The alias serving reads use now: ``READ_DATABASE`` inside :func:`serving_reads`, else
    ``default``."""
    if _serving.get():
        alias = recs_settings.READ_DATABASE
        if alias:
            return str(alias)
    return DEFAULT_DB_ALIAS


def read_connection() -> BaseDatabaseWrapper:
    """The connection raw serving SQL (k-NN, popular items) runs on: see :func:`read_alias`."""
    return connections[read_alias()]


def _is_serving_model(model: Any) -> bool:
    meta = model._meta
    return meta.app_label == "shop_recs_catalog" and meta.model_name in SERVING_MODELS


class ServingReadRouter:
    """Routes reads of :data:`SERVING_MODELS` to ``READ_DATABASE`` inside
    :func:`serving_reads`; says nothing about anything else (the next router or ``default``
    decides), and never lets ``migrate`` touch the replica."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if not _serving.get() or not _is_serving_model(model):
            return None
        return recs_settings.READ_DATABASE or None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # a row read from the replica is the same row as on the primary
        replica = recs_settings.READ_DATABASE
        if replica and {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, replica}:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        replica = recs_settings.READ_DATABASE
        if replica and db == replica and db != DEFAULT_DB_ALIAS:
            return False  # a replica replays the primary's schema; it is never migrated
        return None


def _dotted(router: Any) -> str:
    if isinstance(router, str):
        return router
    cls = router if isinstance(router, type) else type(router)
    return f"{cls.__module__}.{cls.__qualname__}"


def check_read_database(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``READ_DATABASE`` names a configured alias, and the router is installed (without it the
    setting would silently do nothing)."""
    from django.core import checks

    alias = recs_settings.READ_DATABASE
    if not alias:
        return []
    out = []
    if alias not in settings.DATABASES:
        out.append(
            checks.Error(
                f"SHOP_RECS['READ_DATABASE'] = {alias!r} is not an alias of DATABASES "
                f"({', '.join(sorted(settings.DATABASES))}).",
                hint="Add the read replica to DATABASES under that alias, or set "
                "READ_DATABASE to None.",
                id="shop_recs.E040",
            )
        )
    if ROUTER not in [_dotted(r) for r in getattr(settings, "DATABASE_ROUTERS", [])]:
        out.append(
            checks.Error(
                f"SHOP_RECS['READ_DATABASE'] is set but {ROUTER} is not in DATABASE_ROUTERS: "
                "serving reads would all go to 'default'.",
                hint=f"DATABASE_ROUTERS = [{ROUTER!r}, ...]",
                id="shop_recs.E041",
            )
        )
    return out
