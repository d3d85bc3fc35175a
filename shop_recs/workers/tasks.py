"""Celery tasks: thin, take ids, call one service, retry transient failures.

All are idempotent (safe to run twice: acks_late redelivers a task whose worker died).

``encode_items`` and ``train_model`` also run admin background jobs (``job_id``): the job
service records progress and the outcome on the job row, see :mod:`catalog.services.jobs`,
which also
explains why, without a broker, a job runs in a thread of the web process; the work of each
kind of job is :mod:`shop_recs.workers.jobs`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from shop_recs.catalog import services
from shop_recs.conf import recs_settings
from shop_recs.workers.routing import queue_of

# Encoding, training and the admin jobs are imported inside their tasks: web processes import
# this module to queue tasks, and must not pay for what only a worker runs.

logger = logging.getLogger(__name__)


class PluginTask(Task):
    """Sends each task to the queue of its kind (``SHOP_RECS["TASK_QUEUES"]``, read when it is
    sent), so the split works in a shop's own Celery app without routes of its own; an explicit
    ``queue=`` or a route of the app's ``task_routes`` for the task still wins."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        if "queue" not in options and not self._routed_by_app():
            queue = queue_of(self.name, recs_settings.TASK_QUEUES)
            if queue:
                options["queue"] = queue
        return super().apply_async(args, kwargs, **options)

    def _routed_by_app(self) -> bool:
        routes = self.app.conf.task_routes
        return isinstance(routes, dict) and self.name in routes


# ConnectionError covers encoding.images.ImageFetchRetry (a download timeout or refused connection)
TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
RETRY = {
    "base": PluginTask,
    "acks_late": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(**RETRY)
def refresh_item_stats(item_ids: list[int]) -> int:
    """Recompute popularity statistics of these items."""
    return services.item_stats_refresh(item_ids=[int(i) for i in item_ids])


@shared_task(**RETRY)
def refresh_all_item_stats() -> int:
    """Periodic full refresh (celery beat), repairing anything a lost task left stale."""
    written = services.item_stats_refresh()
    logger.info("refreshed stats of %d items", written)
    return written


@shared_task(**RETRY)
def flush_experiments() -> int:
    """Periodic (celery beat): write the experiments' spooled lists and events."""
    from shop_recs.catalog.services import experiments

    return experiments.flush(wait=False)


@shared_task(**RETRY)
def encode_items(
    item_ids: list[int] | None = None, force: bool = False, job_id: int | None = None
) -> dict[str, Any]:
    """Encode items (text, images, content vectors); unchanged items are skipped. With
    ``job_id``, run that background job (its items and options are on the job)."""
    from shop_recs.encoding.service import items_encode
    from shop_recs.workers import jobs

    if job_id is not None:
        return jobs.job_run_encode(job_id=int(job_id))
    report = items_encode(item_ids=[int(i) for i in item_ids or []], force=force)
    logger.info("encode_items: %s", report.summary())
    return {"encoded": report.encoded, "skipped": report.skipped, "failed": report.failed}


@shared_task(**RETRY)
def encode_item(item_id: int) -> dict[str, int]:
    return encode_items([item_id])


FETCH_RETRIES = 3


@shared_task(**{**RETRY, "max_retries": FETCH_RETRIES})
def fetch_item_image(image_id: int) -> str:
    """Download an image registered by URL; its item is re-encoded afterwards. A timeout or a
    refused connection is retried with backoff; the last attempt records the failure."""
    from shop_recs.catalog.models import ItemImage
    from shop_recs.encoding.images import item_image_fetch

    image = ItemImage.objects.filter(pk=image_id).first()
    if image is None:
        return "gone"
    last_try = fetch_item_image.request.retries >= FETCH_RETRIES
    return item_image_fetch(image=image, retry_transient=not last_try).status


@shared_task(base=PluginTask, acks_late=True)
def activate_model(job_id: int) -> dict[str, object]:
    """Run an admin activation (or roll back) job: on the train queue, where the model code
    and its artefacts are, never in a web worker."""
    from shop_recs.workers import jobs

    return jobs.job_run_activate(job_id=int(job_id))


@shared_task(
    base=PluginTask, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=60, max_retries=3
)
def train_model(
    force: bool = False, note: str = "", job_id: int | None = None
) -> dict[str, object]:
    """Train, evaluate and (if not worse, or forced) activate a new model version. With
    ``job_id``, run that background job (its options are on the job)."""
    from shop_recs.ranking.dataset import TrainingError
    from shop_recs.ranking.training import model_train, selection_summary
    from shop_recs.workers import jobs

    if job_id is not None:
        return jobs.job_run_train(job_id=int(job_id))
    try:
        version = model_train(force=force, note=note or "celery train_model")
    except TrainingError as exc:  # not transient: too little data, or a run in progress
        logger.warning("train_model: %s", exc)
        return {"error": str(exc)}
    chosen = (version.selection or {}).get("chosen") or {}
    logger.info(
        "train_model: model %s%s, recall@10 %s, active %s",
        version.pk,
        selection_summary(version),
        version.metrics.get("recall@10"),
        version.is_active,
    )
    return {
        "version": version.pk,
        "active": version.is_active,
        "metrics": version.metrics,
        "family": chosen.get("family"),
    }


@shared_task(**RETRY)
def mirror_products(pks: list[Any], removed: list[str] | None = None) -> int:
    """Mirror the shop's changed products (ITEM_SOURCE) into items; see
    :mod:`shop_recs.storefront.source.queue`."""
    from shop_recs.storefront import source

    return source.mirror_products(pks=list(pks), removed=list(removed or []))


@shared_task(**RETRY)
def sync_products() -> str:
    """Periodic reconciliation of the items with the shop's products (``recs_sync``): catches
    up on changes a process noted but could not hand out (it was killed)."""
    from shop_recs.storefront import source

    if source.item_source() is None:
        return "no item source"
    report = source.sync_all(progress=False)
    logger.info("sync_products: %s", report.summary())
    return report.summary()


# A search waits for this task (SHOP_RECS["SEARCH_ENCODER"] "worker"): not acknowledged late
# (a query nobody waits for any more is not worth a redelivery), never retried, and sent with
# an expiry so that a queue that waited for a worker does not encode stale queries.
@shared_task(base=PluginTask, ignore_result=False, acks_late=False)
def encode_query(text: str) -> dict[str, list[float]]:
    """Encode a search query in the spaces it is compared in (text; image for a joint
    encoder), for a web process that does not load the encoders."""
    from shop_recs.search.query import local_query_vectors

    return {space: vec.tolist() for space, vec in local_query_vectors(str(text)).items()}
