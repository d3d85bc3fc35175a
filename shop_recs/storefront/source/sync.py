"""``recs_sync``: every product mirrored, items of vanished products deactivated; a report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from tqdm import tqdm

from shop_recs.catalog import services
from shop_recs.catalog.models import Item, ItemEncoding
from shop_recs.storefront.source.checks import _require_source
from shop_recs.storefront.source.mirror import _sync_data

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    failed: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deactivated {self.deactivated}, failed {self.failed}"
        )


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return "; ".join(exc.messages)


def _announce_pending(item_ids: list[int]) -> None:
    # Only items whose content changed wait for encoding (a price or stock change does not).
    pending = ItemEncoding.objects.filter(pk__in=item_ids, status=ItemEncoding.Status.PENDING)
    services.items_announce_changed(item_ids=sorted(pending.values_list("pk", flat=True)))


def sync_all(*, progress: bool = True, dry_run: bool = False, chunk_size: int = 200) -> SyncReport:
    """Mirror every product of the source: create missing items, update changed ones and
    deactivate marked items whose product is gone (or left the QUERYSET).

    Each product is written in its own transaction; one that fails is reported and the others
    go on. Changed items are queued for encoding in batches. With ``dry_run`` nothing is
    written and the report says what would change.
    """
    source = _require_source()
    products = source.queryset()
    report = SyncReport(dry_run=dry_run)
    seen: dict[str, Any] = {}
    unidentified = 0
    changed: list[int] = []
    with tqdm(total=products.count(), desc="products", unit="product", disable=not progress) as bar:
        for product in products.iterator(chunk_size=chunk_size):
            bar.update(1)
            try:
                external_id = source.external_id_of(product)
            except ValidationError as exc:
                unidentified += 1
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {_messages(exc)}")
                continue
            if external_id in seen:
                report.failed += 1
                report.errors.append(
                    f"{source.label} {product.pk}: external id {external_id!r} repeats that of "
                    f"{source.label} {seen[external_id]}"
                )
                continue
            seen[external_id] = product.pk
            try:
                item, outcome = _sync_data(
                    source, source.read(product), dry_run=dry_run, announce=False
                )
            except ValidationError as exc:
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {_messages(exc)}")
                continue
            except Exception as exc:  # one product's failure never stops the others
                logger.exception("%s %s could not be mirrored", source.label, product.pk)
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {type(exc).__name__}: {exc}")
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
            if item is not None and outcome != "unchanged" and not dry_run:
                changed.append(item.pk)
                if len(changed) >= chunk_size:
                    _announce_pending(changed)
                    changed = []
    if changed:
        _announce_pending(changed)

    if unidentified:
        # Their items cannot be told from those of deleted products: deactivate nothing.
        report.errors.append(
            f"nothing deactivated: {unidentified} product(s) have no valid external id"
        )
        return report
    marked = Item.objects.filter(is_active=True, source__model=source.label).only(
        "id", "external_id", "is_active"
    )
    for item in marked.iterator(chunk_size=2000):
        if item.external_id in seen:
            continue
        if not dry_run:
            services.item_update(item=item, data={"is_active": False})
        report.deactivated += 1
    return report
