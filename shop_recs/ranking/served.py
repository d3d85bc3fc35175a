"""A log of served recommendation lists, for the dashboard's coverage (services and a read).

Serving code calls :func:`record` with the item ids a response returned. Lists are buffered per
process and written in bulk when ``SHOP_RECS["SERVED_LOG_BUFFER"]`` lists are waiting (default
20; 0 switches logging off) or the oldest waits longer than :data:`MAX_AGE_SECONDS` (checked on
the next ``record``). Logging never fails a response: a database error is logged and the lists
are dropped. A process that stops loses what its buffer holds (at most one buffer: this is a
sample, not an audit log). Each write keeps only the newest :data:`KEEP` rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, connection, transaction

from shop_recs.catalog.models import Item, ServedList
from shop_recs.conf import recs_settings

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 30.0
KEEP = 10_000

_lock = threading.Lock()
_buffer: list[tuple[str, list[int]]] = []
_oldest: float | None = None


def record(endpoint: str, item_ids: Sequence[int]) -> None:
    """Log one served list (``endpoint``: e.g. ``similar``, ``recommend``, ``search``)."""
    global _oldest
    size = int(recs_settings.SERVED_LOG_BUFFER or 0)
    if size <= 0 or not item_ids:
        return
    now = time.monotonic()
    with _lock:
        _buffer.append((str(endpoint)[:32], [int(i) for i in item_ids]))
        if _oldest is None:
            _oldest = now
        due = len(_buffer) >= size or now - _oldest >= MAX_AGE_SECONDS
        batch = _take() if due else []
    if batch:
        _write(batch)


def _take() -> list[tuple[str, list[int]]]:
    """The buffered lists, leaving the buffer empty (call with the lock held)."""
    global _oldest
    batch = list(_buffer)
    _buffer.clear()
    _oldest = None
    return batch


def flush() -> int:
    """Write the buffered lists now; returns how many were written."""
    with _lock:
        batch = _take()
    return _write(batch) if batch else 0


def pending() -> int:
    """Lists waiting in this process's buffer."""
    with _lock:
        return len(_buffer)


def _write(batch: list[tuple[str, list[int]]]) -> int:
    try:
        with transaction.atomic():  # a savepoint when the caller is in a transaction
            ServedList.objects.bulk_create(
                [ServedList(endpoint=endpoint, item_ids=ids) for endpoint, ids in batch]
            )
            _prune()
    except DatabaseError:
        logger.exception("served lists could not be logged (%d dropped)", len(batch))
        return 0
    return len(batch)


def _prune() -> None:
    cutoff = (
        ServedList.objects.order_by("-id").values_list("id", flat=True)[KEEP : KEEP + 1].first()
    )
    if cutoff is not None:
        ServedList.objects.filter(id__lte=cutoff).delete()


def coverage(*, last_n: int = 1000) -> dict[str, Any]:
    """What the last ``last_n`` served lists covered: how many lists, distinct items, and the
    share of the active catalogue that was recommended at least once."""
    last_n = max(int(last_n), 1)
    served = connection.ops.quote_name(ServedList._meta.db_table)
    items = connection.ops.quote_name(Item._meta.db_table)
    # table names are quoted identifiers of our own models; values travel as parameters
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH recent AS (SELECT id, endpoint, item_ids, served_at FROM {served} "  # noqa: S608
            "ORDER BY served_at DESC, id DESC LIMIT %s) "
            "SELECT (SELECT count(*) FROM recent), (SELECT min(served_at) FROM recent), "
            "count(DISTINCT u.item_id), count(DISTINCT u.item_id) FILTER (WHERE i.is_active) "
            f"FROM recent CROSS JOIN LATERAL unnest(recent.item_ids) AS u(item_id) "
            f"LEFT JOIN {items} i ON i.id = u.item_id",
            [last_n],
        )
        lists, since, distinct, distinct_active = cursor.fetchone()
        cursor.execute(
            f"SELECT endpoint, count(*) FROM (SELECT endpoint FROM {served} "  # noqa: S608
            "ORDER BY served_at DESC, id DESC LIMIT %s) recent GROUP BY endpoint",
            [last_n],
        )
        by_endpoint = Counter(dict(cursor.fetchall()))
    active = Item.objects.filter(is_active=True).count()
    return {
        "last_n": last_n,
        "lists": int(lists or 0),
        "since": since,
        "distinct_items": int(distinct or 0),
        "active_items_served": int(distinct_active or 0),
        "active_items": active,
        "share": (distinct_active or 0) / active if active else 0.0,
        "by_endpoint": dict(sorted(by_endpoint.items())),
    }
