"""Writes to the catalog. Keyword-only, typed, returning model objects (HackSoft styleguide).

One module per entity (items, images, customers, interactions, stats, rules, jobs); every public
name is re-exported here, so callers write ``services.item_create(...)``. Every change that other
layers care about is announced with a signal from ``catalog.signals`` after the transaction
commits, so nothing here knows about Celery, the API or the model.
"""

from shop_recs.catalog.services.common import (
    AlreadyExists,
    announce_after_commit,
    items_announce_changed,
    items_content_changed,
    items_mark_pending,
    items_request_encoding,
)
from shop_recs.catalog.services.customers import (
    PurgeReport,
    customer_create,
    customer_external_id,
    customer_for_user,
    customer_purge,
    customers_ensure,
)
from shop_recs.catalog.services.images import (
    IMAGE_EXTENSIONS,
    item_image_add_file,
    item_image_check_room,
    item_image_delete,
    next_image_position,
)
from shop_recs.catalog.services.interactions import (
    EventIn,
    EventOutcome,
    event_check,
    interactions_record,
)
from shop_recs.catalog.services.items import (
    UpsertCounts,
    item_create,
    item_deactivate,
    item_update,
    items_upsert,
)
from shop_recs.catalog.services.jobs import (
    JobFailed,
    JobProgress,
    job_begin,
    job_fail,
    job_finish,
    job_run,
    job_start,
)
from shop_recs.catalog.services.rules import (
    merch_rule_save,
)
from shop_recs.catalog.services.stats import (
    item_stats_refresh,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "AlreadyExists",
    "EventIn",
    "EventOutcome",
    "JobFailed",
    "JobProgress",
    "PurgeReport",
    "UpsertCounts",
    "announce_after_commit",
    "customer_create",
    "customer_external_id",
    "customer_for_user",
    "customer_purge",
    "customers_ensure",
    "event_check",
    "interactions_record",
    "item_create",
    "item_deactivate",
    "item_image_add_file",
    "item_image_check_room",
    "item_image_delete",
    "item_stats_refresh",
    "item_update",
    "items_announce_changed",
    "items_content_changed",
    "items_mark_pending",
    "items_request_encoding",
    "items_upsert",
    "job_begin",
    "job_fail",
    "job_finish",
    "job_run",
    "job_start",
    "merch_rule_save",
    "next_image_position",
]
