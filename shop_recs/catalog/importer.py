"""Load a catalog bundle (items.csv, interactions.csv, images/) idempotently.

Bad rows are reported with their line number and reason; good rows are always kept. Re-running
on the same bundle changes nothing: items are upserted by external id, images deduplicated by
checksum, interactions keyed by a hash of the row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from django.core.exceptions import ValidationError

from shop_recs.catalog import services
from shop_recs.catalog.models import Event
from shop_recs.catalog.validation import EXTERNAL_ID
from shop_recs.recsys.bundle import BundleError, read_csv_rows

T = TypeVar("T")
Progress = Callable[..., Iterable[Any]]

ITEM_COLUMNS = {"item_id", "title"}
INTERACTION_COLUMNS = {"user_id", "item_id", "event", "timestamp"}


@dataclass
class ImportReport:
    items_created: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    images_added: int = 0
    images_existing: int = 0
    customers: int = 0
    interactions_created: int = 0
    interactions_duplicate: int = 0
    changed_item_ids: set[int] = field(default_factory=set)
    bad_rows: list[tuple[str, int, str]] = field(default_factory=list)

    def bad(self, file: str, line: int, reason: str) -> None:
        self.bad_rows.append((file, line, reason))

    def summary(self) -> str:
        return (
            f"items: {self.items_created} created, {self.items_updated} updated, "
            f"{self.items_unchanged} unchanged; images: {self.images_added} added, "
            f"{self.images_existing} already there; customers: {self.customers}; "
            f"interactions: {self.interactions_created} new, {self.interactions_duplicate} "
            f"already imported; bad rows: {len(self.bad_rows)}"
        )


def _no_progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    return iterable


def _clean_text(value: str, *, limit: int) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    return value.strip()


def _item_row(row: dict[str, str]) -> dict[str, Any]:
    external_id = row["item_id"].strip()
    try:
        EXTERNAL_ID(external_id)
    except ValidationError as exc:
        raise ValueError(f"item_id {external_id!r} is not a valid id") from exc
    title = _clean_text(row.get("title", ""), limit=500)
    if not title:
        raise ValueError("title is empty")
    price: Decimal | None = None
    if row.get("price", "").strip():
        try:
            price = Decimal(row["price"].strip())
        except InvalidOperation as exc:
            raise ValueError(f"price {row['price']!r} is not a number") from exc
        if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
            raise ValueError(f"price {row['price']!r} is out of range")
        price = price.quantize(Decimal("0.01"))
    return {
        "external_id": external_id,
        "title": title,
        "description": _clean_text(row.get("description", ""), limit=20000),
        "category": _clean_text(row.get("category", ""), limit=200),
        "brand": _clean_text(row.get("brand", ""), limit=200),
        "price": price,
    }


def _event_row(row: dict[str, str]) -> services.EventIn:
    event = row["event"].strip()
    if event not in Event.values:
        raise ValueError(f"unknown event {event!r}")
    raw_value = row.get("value", "").strip() or "1"
    try:
        value = float(raw_value)
    except ValueError as exc:
        raise ValueError(f"value {raw_value!r} is not a number") from exc
    try:
        occurred_at = datetime.fromisoformat(row["timestamp"].strip())
    except ValueError as exc:
        raise ValueError(f"timestamp {row['timestamp']!r} is not ISO 8601") from exc
    user_id = row["user_id"].strip()
    if not user_id or len(user_id) > 255 or "\x00" in user_id:
        raise ValueError("user_id is empty or invalid")
    key_source = "|".join([user_id, row["item_id"].strip(), event, raw_value, row["timestamp"]])
    return services.EventIn(
        item_id=row["item_id"].strip(),
        event=event,
        customer_id=user_id,
        value=value,
        occurred_at=occurred_at,
        idempotency_key="import:" + hashlib.sha256(key_source.encode()).hexdigest()[:40],
    )


def import_bundle(
    directory: Path,
    *,
    progress: Progress = _no_progress,
    chunk_size: int = 5000,
    with_images: bool = True,
    with_interactions: bool = True,
) -> ImportReport:
    directory = Path(directory)
    items_csv = directory / "items.csv"
    if not items_csv.is_file():
        raise BundleError(
            f"{items_csv} not found: give the directory of a catalog bundle "
            "(items.csv, interactions.csv, images/)."
        )
    report = ImportReport()

    rows: list[dict[str, Any]] = []
    images: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    for line, raw in read_csv_rows(items_csv, ITEM_COLUMNS):
        try:
            row = _item_row(raw)
        except ValueError as exc:
            report.bad("items.csv", line, str(exc))
            continue
        if row["external_id"] in seen:
            report.bad("items.csv", line, f"item_id {row['external_id']!r} repeats an earlier row")
            continue
        seen.add(row["external_id"])
        rows.append(row)
        if raw.get("image", "").strip():
            images[row["external_id"]] = (line, raw["image"].strip())

    items: dict[str, Any] = {}
    for start in progress(range(0, len(rows), 1000), desc="items", unit="chunk"):
        counts, chunk_items = services.items_upsert(rows=rows[start : start + 1000], announce=False)
        report.items_created += counts.created
        report.items_updated += counts.updated
        report.items_unchanged += counts.unchanged
        report.changed_item_ids.update(counts.content_changed_ids)
        items.update(chunk_items)

    if with_images:
        root = directory.resolve()
        for external_id, (line, rel) in progress(list(images.items()), desc="images", unit="img"):
            path = (root / rel).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                report.bad("items.csv", line, f"image {rel!r} not found in the bundle")
                continue
            item = items[external_id]
            before = item.images.count()
            try:
                with path.open("rb") as fh:
                    services.item_image_add_file(
                        item=item, upload=fh, filename=path.name, announce=False
                    )
            except ValidationError as exc:
                report.bad("items.csv", line, f"image {rel!r}: {'; '.join(exc.messages)}")
                continue
            if item.images.count() > before:
                report.images_added += 1
                report.changed_item_ids.add(item.pk)
            else:
                report.images_existing += 1

    interactions_csv = directory / "interactions.csv"
    if with_interactions and interactions_csv.is_file():
        events: list[tuple[int, services.EventIn]] = []
        for line, raw in read_csv_rows(interactions_csv, INTERACTION_COLUMNS):
            try:
                events.append((line, _event_row(raw)))
            except ValueError as exc:
                report.bad("interactions.csv", line, str(exc))
        customers = services.customers_ensure(external_ids={e.customer_id for _, e in events})
        report.customers = len(customers)
        for start in progress(
            range(0, len(events), chunk_size),
            desc="interactions",
            unit="chunk",
        ):
            chunk = events[start : start + chunk_size]
            outcomes = services.interactions_record(events=[e for _, e in chunk])
            for (line, _), outcome in zip(chunk, outcomes, strict=True):
                if outcome.status == "created":
                    report.interactions_created += 1
                elif outcome.status == "duplicate":
                    report.interactions_duplicate += 1
                else:
                    reasons = "; ".join(f"{k}: {' '.join(v)}" for k, v in outcome.errors.items())
                    report.bad("interactions.csv", line, reasons)
    return report
