"""Reads from the catalog. Keyword-only, return querysets or model objects."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

from catalog.filters import ItemFilter
from catalog.models import Customer, Interaction, Item, ItemImage


def item_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Item]:
    qs = Item.objects.prefetch_related(
        Prefetch("images", queryset=ItemImage.objects.order_by("position", "id"))
    ).order_by("id")
    item_filter = ItemFilter(filters or {}, queryset=qs)
    if not item_filter.is_valid():
        raise ValidationError(dict(item_filter.errors))
    return item_filter.qs


def item_get(*, external_id: str) -> Item | None:
    return (
        Item.objects.prefetch_related(
            Prefetch("images", queryset=ItemImage.objects.order_by("position", "id"))
        )
        .filter(external_id=external_id)
        .first()
    )


def item_image_get(*, item: Item, image_id: int) -> ItemImage | None:
    return item.images.filter(pk=image_id).first()


def customer_get(*, external_id: str) -> Customer | None:
    return Customer.objects.filter(external_id=external_id).first()


def interactions_of_customer(*, customer: Customer, limit: int = 50) -> QuerySet[Interaction]:
    return (
        Interaction.objects.filter(customer=customer)
        .select_related("item")
        .order_by("-occurred_at", "-id")[:limit]
    )


def interactions_of_item(*, item: Item, limit: int = 50) -> QuerySet[Interaction]:
    return Interaction.objects.filter(item=item).order_by("-occurred_at", "-id")[:limit]
