"""``recs_sync``: every product mirrored, items of vanished products deactivated; a report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from tqdm import tqdm

from shop_recs.catalog import services
from shop_recs.catalog.models import Item
from shop_recs.storefront.source.checks import _require_source
from shop_recs.storefront.source.mirror import _sync_data, announce_pending

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
    #: Products without a valid external id: skipped (never items), listed by primary key.
    skipped: list[Any] = field(default_factory=list)
    #: Variants mirrored through their parent's item (``PARENT``).
    variants: int = 0
    #: ``--dry-run``: a few mapped values per field, to see what the settings read.
    samples: dict[str, list[Any]] = field(default_factory=dict)

    def summary(self) -> str:
        text = (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deactivated {self.deactivated}, failed {self.failed}"
        )
        if self.variants:
            text += f"; {self.variants} variants mirrored through their parents"
        if self.skipped:
            shown = ", ".join(map(str, self.skipped[:10]))
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            text += f"; skipped {len(self.skipped)} without a valid external id (pk {shown}{more})"
        return text


SAMPLES_PER_FIELD = 3


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return "; ".join(exc.messages)


def sync_all(*, progress: bool = True, dry_run: bool = False, chunk_size: int = 200) -> SyncReport:
    """Mirror every product of the source: create missing items, update changed ones and
    deactivate marked items whose product is gone (or left the QUERYSET).

    Each product is written in its own transaction; one that fails is reported and the others
    go on. A product without a valid external id is skipped and listed; it never stops the
    others, nor the deactivation of vanished products (it has no item to keep). Variants
    (``PARENT``) are mirrored through their parent. Changed items are queued for encoding in
    batches. With ``dry_run`` nothing is written, the report says what would change and shows
    a few mapped values per field.
    """
    source = _require_source()
    products = source.queryset()
    report = SyncReport(dry_run=dry_run)
    seen: dict[str, Any] = {}
    changed: list[int] = []
    with tqdm(total=products.count(), desc="products", unit="product", disable=not progress) as bar:
        for product in products.iterator(chunk_size=chunk_size):
            bar.update(1)
            try:
                if source.is_variant(product):
                    report.variants += 1  # its parent is in the queryset, or gone
                    continue
                external_id = source.external_id_of(product)
            except ValidationError:
                report.skipped.append(product.pk)
                continue
            except Exception as exc:  # e.g. a PARENT callable that fails on this product
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {type(exc).__name__}: {exc}")
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
                data = source.read(product)
                if dry_run:
                    _sample(report, data)
                item, outcome = _sync_data(source, data, dry_run=dry_run, announce=False)
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
                    announce_pending(changed)
                    changed = []
    if changed:
        announce_pending(changed)

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


def _sample(report: SyncReport, data: dict[str, Any]) -> None:
    for name, value in data.items():
        values = report.samples.setdefault(name, [])
        if len(values) < SAMPLES_PER_FIELD:
            values.append([ref.key for ref in value] if name == "images" else value)
