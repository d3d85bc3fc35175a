"""Signal receivers: enqueue background tasks for catalog changes, and prepare worker processes.

The catalog sends its signals from ``transaction.on_commit`` callbacks, so a task never runs
against data that is not yet visible (or was rolled back).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.exceptions import TimeoutError as ResultTimeout
from celery.signals import worker_init, worker_process_init
from django.db import connection
from django.dispatch import receiver

from shop_recs.catalog import signals
from shop_recs.catalog.models import BackgroundJob
from shop_recs.conf import recs_settings
from shop_recs.search.query import EncoderUnavailable, query_encoding_requested
from shop_recs.storefront.signals import mirror_requested
from shop_recs.workers import tasks
from shop_recs.workers.routing import queue_of

# What only a worker runs (encoders, the model's item tower) is imported where it is used:
# web processes import this module too.

logger = logging.getLogger(__name__)


@receiver(signals.interactions_recorded, dispatch_uid="shop_recs.refresh_item_stats")
def on_interactions_recorded(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
    tasks.refresh_item_stats.delay(list(item_ids))


@receiver(signals.interactions_deleted, dispatch_uid="shop_recs.refresh_item_stats_deleted")
def on_interactions_deleted(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
    tasks.refresh_item_stats.delay(list(item_ids))


@receiver(signals.item_content_changed, dispatch_uid="shop_recs.encode_items")
def on_item_content_changed(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
    size = int(recs_settings.ENCODE_BATCH_SIZE)
    for start in range(0, len(item_ids), size):
        tasks.encode_items.delay(list(item_ids[start : start + size]))


@receiver(signals.item_images_added, dispatch_uid="shop_recs.fetch_item_image")
def on_item_images_added(sender: Any, *, image_ids: list[int], **kwargs: Any) -> None:
    for image_id in image_ids:
        tasks.fetch_item_image.delay(image_id)


@receiver(signals.training_requested, dispatch_uid="shop_recs.train_model")
def on_training_requested(
    sender: Any, *, force: bool = False, note: str = "", **kwargs: Any
) -> None:
    tasks.train_model.delay(force=force, note=note)


@receiver(signals.items_encoded, dispatch_uid="shop_recs.hybrid_vectors")
def on_items_encoded(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
    # in the encoding process itself, right after the batch: the active model's item tower
    # gives the items hybrid vectors at once (no retraining, no extra task)
    from shop_recs.ranking.activation import hybrid_vectors_refresh

    hybrid_vectors_refresh(item_ids=list(item_ids))


@receiver(mirror_requested, dispatch_uid="shop_recs.mirror_products")
def on_mirror_requested(
    sender: Any, *, pks: list[Any], removed: list[str], **kwargs: Any
) -> str | None:
    """With a broker, a worker mirrors the batch; without one (eager), the web process's own
    mirroring thread keeps it (returning None), so it never runs in the request."""
    task = tasks.mirror_products
    if task.app.conf.task_always_eager:
        return None
    keys = [p if isinstance(p, int | str) else str(p) for p in pks]  # UUIDs travel as text
    task.delay(keys, list(removed))
    return "queued"


def _has_result_backend(app: Any) -> bool:
    backend = app.conf.result_backend
    return bool(backend) and str(backend) != "disabled"


@receiver(query_encoding_requested, dispatch_uid="shop_recs.encode_query")
def on_query_encoding_requested(
    sender: Any, *, text: str, required: bool, **kwargs: Any
) -> dict[str, list[float]] | None:
    """Have an encode worker encode a search query and wait for it (``SEARCH_ENCODER``
    "worker", or "auto" with a broker and a result backend); None: encode it here."""
    task = tasks.encode_query
    app = task.app
    if app.conf.task_always_eager or not _has_result_backend(app):
        if not required:
            return None
        raise EncoderUnavailable(
            "SHOP_RECS['SEARCH_ENCODER'] is 'worker', but the Celery app has "
            + ("no broker" if app.conf.task_always_eager else "no result backend")
            + " (CELERY_BROKER_URL, CELERY_RESULT_BACKEND): set it, or SEARCH_ENCODER 'local'."
        )
    queue = queue_of(task.name, recs_settings.TASK_QUEUES) or app.conf.task_default_queue
    timeout = float(recs_settings.SEARCH_ENCODE_TIMEOUT)
    try:
        result = task.apply_async(args=[text], expires=timeout)
        return result.get(timeout=timeout)
    except ResultTimeout:
        raise EncoderUnavailable(
            f"No encode worker answered within {timeout:g} s: start one on the queue "
            f"{queue!r} (celery -A <your app> worker -Q {queue})."
        ) from None
    except Exception as exc:  # broker down, or the worker failed: a 503, never a 500
        raise EncoderUnavailable(
            f"The search query could not be encoded by a worker on the queue {queue!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


JOB_TASKS = {
    BackgroundJob.Kind.ENCODE: tasks.encode_items,
    BackgroundJob.Kind.TRAIN: tasks.train_model,
    BackgroundJob.Kind.ACTIVATE: tasks.activate_model,
}


def _apply_in_thread(task: Any, job_id: int) -> None:
    try:
        task.apply(kwargs={"job_id": job_id})
    except Exception:  # the job records its own failures; this is a last resort
        logger.exception("background job %s crashed", job_id)
    finally:
        connection.close()  # this thread's own connection: never left open


@receiver(signals.job_requested, dispatch_uid="shop_recs.run_job")
def on_job_requested(sender: Any, *, job_id: int, kind: str, **kwargs: Any) -> str:
    """Queue an admin job's task; without a broker, run it in a thread (see
    catalog.services.jobs)."""
    task = JOB_TASKS[kind]
    if task.app.conf.task_always_eager:
        threading.Thread(
            target=_apply_in_thread, args=(task, job_id), name=f"shop_recs-job-{job_id}",
            daemon=True,
        ).start()  # fmt: skip
        return "thread"
    task.delay(job_id=job_id)
    return "queued"


def _prepare_process(threads: int) -> None:
    """Set torch threads explicitly and load the encoders once for this process (torch and
    sentence-transformers can hang when a model loaded before fork is used after it)."""
    if not recs_settings.WORKER_WARMUP:
        return
    from shop_recs.encoding.encoders import warm_up
    from shop_recs.recsys.encoders import set_torch_threads

    # SHOP_RECS_TORCH_THREADS, when set, wins (several worker processes on one host)
    set_torch_threads(None if os.environ.get("SHOP_RECS_TORCH_THREADS") else threads)
    warm_up()


@worker_process_init.connect(dispatch_uid="shop_recs.worker_process_init")
def on_worker_process_init(**kwargs: Any) -> None:
    # prefork child: share the cores between the pool's processes
    from celery import current_app

    concurrency = int(current_app.conf.worker_concurrency or os.cpu_count() or 1)
    _prepare_process(max(1, (os.cpu_count() or 1) // concurrency))


@worker_init.connect(dispatch_uid="shop_recs.worker_init")
def on_worker_init(sender: Any = None, **kwargs: Any) -> None:
    # solo/threads pools run tasks in this process: prepare it here (prefork children do it
    # themselves after the fork, never the parent)
    pool = getattr(sender, "pool_cls", None)
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    if "solo" in str(name) or "thread" in str(name):
        _prepare_process(os.cpu_count() or 1)
