"""Celery tasks: thin, take ids, call one catalog service, retry transient failures."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from catalog import services

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def refresh_item_stats(item_ids: list[int]) -> int:
    """Recompute popularity statistics of these items (idempotent)."""
    return services.item_stats_refresh(item_ids=[int(i) for i in item_ids])


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def refresh_all_item_stats() -> int:
    """Periodic full refresh (celery beat), repairing anything a lost task left stale."""
    written = services.item_stats_refresh()
    logger.info("refreshed stats of %d items", written)
    return written
