"""What the admin shows of recommendations: similar-item previews per space, a shopper's
recommendations, and thumbnails. Reads only, through the same selectors as the REST API, so a
preview is what shoppers get (merchandising rules included)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shop_recs.catalog.media import image_url
from shop_recs.catalog.models import Item, Space
from shop_recs.dashboard.admin.site import admin_url
from shop_recs.ranking.similar import item_similar
from shop_recs.search.types import NotEncoded, SimilarFilters

PREVIEW_K = 6


@dataclass
class Card:
    """One recommended item as the admin templates show it."""

    external_id: str
    title: str
    image_url: str
    admin_url: str
    score: float
    category: str = ""
    brand: str = ""
    price: Any = None
    in_stock: bool = True
    similarity: dict[str, float] = field(default_factory=dict)
    source: str = ""
    reason: str = ""
    rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SpacePreview:
    space: str
    cards: list[Card]
    message: str = ""  # why there is nothing to show


def _card(result: Any, admin_urls: dict[int, str]) -> Card:
    item = result.item
    return Card(
        external_id=item.external_id,
        title=item.title,
        image_url=image_url(item.image),
        admin_url=admin_urls.get(item.id, ""),
        score=result.score,
        category=item.category,
        brand=item.brand,
        price=item.price,
        in_stock=item.in_stock,
        similarity=dict(getattr(result, "similarity", {}) or {}),
        source=getattr(result, "source", ""),
        reason=getattr(result, "reason", ""),
        rules=list(getattr(result, "rules", []) or []),
    )


def cards(results: list[Any]) -> list[Card]:
    urls = {r.item.id: admin_url("shop_recs_catalog_item_change", r.item.id) for r in results}
    return [_card(r, urls) for r in results]


def similar_in_space(
    *, external_id: str, space: str, k: int = PREVIEW_K, filters: SimilarFilters | None
) -> SpacePreview:
    """The similar list the API would serve for this item in ``space``, or why there is none."""
    try:
        found = item_similar(external_id=external_id, space=space, k=k, filters=filters)
    except NotEncoded as exc:
        message = (
            "No active model: train one (Model versions → Train now)."
            if exc.status == "no active model"
            else f"Not encoded in this space (status: {exc.status}). {exc.error}".strip()
        )
        return SpacePreview(space=space, cards=[], message=message)
    if found is None:
        return SpacePreview(space=space, cards=[], message="No such item.")
    if not found:
        return SpacePreview(space=space, cards=[], message="No item matches.")
    return SpacePreview(space=space, cards=cards(found))


def similar_previews(item: Item, *, k: int = PREVIEW_K) -> list[SpacePreview]:
    """Side-by-side similar lists of an item in every space (text, image, content, hybrid)."""
    return [
        similar_in_space(external_id=item.external_id, space=space, k=k, filters=SimilarFilters())
        for space in (Space.TEXT, Space.IMAGE, Space.CONTENT, Space.HYBRID)
    ]
