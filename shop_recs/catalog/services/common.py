"""What every catalog service shares: announcing changes after commit, marking items
pending for encoding, and the "already exists" rule of external ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from shop_recs.catalog import signals
from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding


def announce_after_commit(signal: Signal, **kwargs: Any) -> None:
    transaction.on_commit(lambda: signal.send(sender=Item, **kwargs))


def items_content_changed(item_ids: list[int], *, announce: bool = True) -> None:
    """Mark items pending for encoding (in this transaction) and announce it after commit.

    Bulk loaders pass ``announce=False`` and encode (or announce) once at the end instead.
    """
    items_mark_pending(item_ids=item_ids)
    if announce:
        announce_after_commit(signals.item_content_changed, item_ids=item_ids)


def items_request_encoding(*, item_ids: Sequence[int]) -> None:
    """Ask for items to be (re-)encoded now, e.g. from the admin."""
    with transaction.atomic():
        ItemEmbedding.objects.filter(item_id__in=item_ids).exclude(
            space__startswith="hybrid"
        ).update(
            content_hash=""  # forces a re-encode even when nothing changed
        )
        items_content_changed(list(item_ids))


def items_announce_changed(*, item_ids: Sequence[int]) -> None:
    """Announce items whose content changed earlier without announcement (bulk loads)."""
    if item_ids:
        announce_after_commit(signals.item_content_changed, item_ids=list(item_ids))


def items_mark_pending(*, item_ids: Iterable[int]) -> None:
    """Record that these items wait for (re-)encoding; called in the transaction that changed
    them, so the API shows ``pending`` from the moment the change is visible."""
    ids = sorted(set(item_ids))
    if not ids:
        return
    now = timezone.now()
    ItemEncoding.objects.bulk_create(
        [
            ItemEncoding(item_id=i, status=ItemEncoding.Status.PENDING, requested_at=now)
            for i in ids
        ],
        update_conflicts=True,
        unique_fields=["item"],
        update_fields=["status", "requested_at"],
    )


class AlreadyExists(Exception):
    """An item or customer with this external id exists already (the API answers 409)."""


@contextmanager
def _unique(kind: str, external_id: str) -> Iterator[None]:
    # The unique constraint decides, so two concurrent creates cannot both succeed.
    try:
        yield
    except IntegrityError as exc:
        raise AlreadyExists(f"{kind} with external_id {external_id!r} exists.") from exc
