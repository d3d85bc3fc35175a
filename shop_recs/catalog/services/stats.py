"""Per-item statistics (event counts, popularity), computed in the database."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from shop_recs.catalog.models import Event, Interaction, Item, ItemStats
from shop_recs.conf import recs_settings


def item_stats_refresh(*, item_ids: Iterable[int] | None = None, chunk_size: int = 5000) -> int:
    """Recompute event counts and the popularity score of items from their interactions.

    Idempotent: the result depends only on the stored interactions (so a retried or duplicated
    task is harmless). One INSERT ... SELECT ... ON CONFLICT per chunk: the aggregation runs in
    the database. Returns the number of items refreshed.
    """
    weights = recs_settings.EVENT_WEIGHTS
    if item_ids is None:
        ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    else:
        ids = sorted({int(i) for i in item_ids})
    stats = connection.ops.quote_name(ItemStats._meta.db_table)
    items = connection.ops.quote_name(Item._meta.db_table)
    events = connection.ops.quote_name(Interaction._meta.db_table)
    sql = f"""
        INSERT INTO {stats} (item_id, views, clicks, carts, purchases, ratings, likes,
                             distinct_shoppers, score, last_event_at, refreshed_at)
        SELECT i.id,
               count(x.id) FILTER (WHERE x.event = 'view'),
               count(x.id) FILTER (WHERE x.event = 'click'),
               count(x.id) FILTER (WHERE x.event = 'cart'),
               count(x.id) FILTER (WHERE x.event = 'purchase'),
               count(x.id) FILTER (WHERE x.event = 'rating'),
               count(x.id) FILTER (WHERE x.event = 'like'),
               count(DISTINCT x.customer_id),
               coalesce(sum(CASE x.event
                   WHEN 'view' THEN %(view)s WHEN 'click' THEN %(click)s
                   WHEN 'cart' THEN %(cart)s WHEN 'purchase' THEN %(purchase)s
                   WHEN 'like' THEN %(like)s
                   -- only good ratings say "people want this"
                   WHEN 'rating' THEN CASE WHEN x.value >= 4 THEN %(rating)s ELSE 0 END
                   ELSE 0 END), 0),
               max(x.occurred_at),
               now()
        FROM {items} i LEFT JOIN {events} x ON x.item_id = i.id
        WHERE i.id = ANY(%(ids)s)
        GROUP BY i.id
        ON CONFLICT (item_id) DO UPDATE SET
            views = EXCLUDED.views, clicks = EXCLUDED.clicks, carts = EXCLUDED.carts,
            purchases = EXCLUDED.purchases, ratings = EXCLUDED.ratings, likes = EXCLUDED.likes,
            distinct_shoppers = EXCLUDED.distinct_shoppers, score = EXCLUDED.score,
            last_event_at = EXCLUDED.last_event_at, refreshed_at = EXCLUDED.refreshed_at
    """
    written = 0
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk_size):
            params = {name: float(weights[name]) for name in Event.values}
            params["ids"] = ids[start : start + chunk_size]
            cursor.execute(sql, params)
            written += cursor.rowcount
    return written
