"""Item writes: create, update, deactivate, bulk upsert."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from shop_recs.catalog.models import Item
from shop_recs.catalog.services.common import _unique, items_content_changed
from shop_recs.catalog.validation import check_json_value


def item_create(
    *,
    external_id: str,
    title: str,
    description: str = "",
    category: str = "",
    brand: str = "",
    price: Decimal | None = None,
    attributes: dict[str, Any] | None = None,
    in_stock: bool = True,
    is_active: bool = True,
    announce: bool = True,
) -> Item:
    """Create an item; it is marked pending and, unless ``announce`` is False (bulk callers
    announce once at the end, see ``items_announce_changed``), queued for encoding after commit.
    """
    attributes = attributes or {}
    check_json_value(attributes, field="attributes")
    with _unique("An item", external_id), transaction.atomic():
        item = Item.objects.create(
            external_id=external_id,
            title=title,
            description=description,
            category=category,
            brand=brand,
            price=price,
            attributes=attributes,
            in_stock=in_stock,
            is_active=is_active,
        )
        items_content_changed([item.pk], announce=announce)
    return item


def item_update(*, item: Item, data: dict[str, Any], announce: bool = True) -> Item:
    """Change the given fields; a change of content (text fields, attributes) marks the item
    pending and, unless ``announce`` is False, queues it for encoding after commit."""
    unknown = set(data) - set(Item.DATA_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    if "attributes" in data:
        check_json_value(data["attributes"], field="attributes")
    changed = [name for name, value in data.items() if getattr(item, name) != value]
    if not changed:
        return item
    with transaction.atomic():
        for name in changed:
            setattr(item, name, data[name])
        item.save(update_fields=[*changed, "updated_at"])
        if any(name in Item.CONTENT_FIELDS for name in changed):
            items_content_changed([item.pk], announce=announce)
    return item


def item_deactivate(*, item: Item) -> Item:
    """Take an item out of every list, keeping everything it has: its interactions are
    training data and the history shoppers' recommendations are explained by, rules and
    vectors survive, and a product that comes back resumes where it was (``is_active``
    true). Deleting an item's history is never a side effect of removing it from the shop."""
    return item_update(item=item, data={"is_active": False})


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    content_changed_ids: list[int] = field(default_factory=list)


def items_upsert(
    *, rows: Sequence[dict[str, Any]], announce: bool = True
) -> tuple[UpsertCounts, dict[str, Item]]:
    """Create or update items by ``external_id`` in bulk (imports, syncs). Rows are validated.

    Items whose content changed are announced once, after commit.
    """
    counts = UpsertCounts()
    by_id = {row["external_id"]: row for row in rows}
    existing = {i.external_id: i for i in Item.objects.filter(external_id__in=by_id)}
    to_create: list[Item] = []
    to_update: list[Item] = []
    content_changed: list[Item] = []
    for external_id, row in by_id.items():
        fields = {name: row[name] for name in Item.DATA_FIELDS if name in row}
        item = existing.get(external_id)
        if item is None:
            to_create.append(Item(external_id=external_id, **fields))
            continue
        changed = [name for name, value in fields.items() if getattr(item, name) != value]
        if not changed:
            counts.unchanged += 1
            continue
        for name in changed:
            setattr(item, name, fields[name])
        item.updated_at = timezone.now()
        to_update.append(item)
        if any(name in Item.CONTENT_FIELDS for name in changed):
            content_changed.append(item)
    with transaction.atomic():
        Item.objects.bulk_create(to_create, batch_size=1000)
        if to_update:
            Item.objects.bulk_update(to_update, [*Item.DATA_FIELDS, "updated_at"], batch_size=1000)
        ids = [i.pk for i in (*to_create, *content_changed)]
        if ids:
            items_content_changed(ids, announce=announce)
    counts.created, counts.updated = len(to_create), len(to_update)
    counts.content_changed_ids = [i.pk for i in (*to_create, *content_changed)]
    items = {**existing, **{i.external_id: i for i in to_create}}
    return counts, items
