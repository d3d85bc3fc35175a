"""Reads from the catalog. Keyword-only, return querysets or model objects.

Similarity and search (pgvector queries) live in ``shop_recs.search``; these are the plain
reads the API and the admin need.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

from shop_recs.catalog.filters import ItemFilter
from shop_recs.catalog.models import Customer, Item, ItemEmbedding, ItemImage
from shop_recs.catalog.vectors import served_spaces_q


def _with_details(qs: QuerySet[Item]) -> QuerySet[Item]:
    """Images, encode status and the list of encoded spaces, for item representations."""
    return qs.select_related("encoding").prefetch_related(
        Prefetch("images", queryset=ItemImage.objects.order_by("position", "id")),
        Prefetch(
            "embeddings",
            queryset=ItemEmbedding.objects.filter(served_spaces_q())
            .only("item_id", "space", "dim", "encoder", "encoder_version", "updated_at")
            .order_by("space"),
        ),
    )


def item_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Item]:
    qs = _with_details(Item.objects.all()).order_by("id")
    item_filter = ItemFilter(filters or {}, queryset=qs)
    if not item_filter.is_valid():
        raise ValidationError(dict(item_filter.errors))
    return item_filter.qs


def item_get(*, external_id: str) -> Item | None:
    return _with_details(Item.objects.filter(external_id=external_id)).first()


def item_image_get(*, item: Item, image_id: int) -> ItemImage | None:
    return item.images.filter(pk=image_id).first()


def customer_get(*, external_id: str) -> Customer | None:
    return Customer.objects.filter(external_id=external_id).first()
