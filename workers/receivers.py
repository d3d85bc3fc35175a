"""Signal receivers: enqueue background tasks for catalog changes.

The catalog sends its signals from ``transaction.on_commit`` callbacks, so a task never runs
against data that is not yet visible (or was rolled back).
"""

from typing import Any

from django.dispatch import receiver

from catalog import signals
from workers import tasks


@receiver(signals.interactions_recorded, dispatch_uid="shop_recs.refresh_item_stats")
def on_interactions_recorded(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
    tasks.refresh_item_stats.delay(list(item_ids))
