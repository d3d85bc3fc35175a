"""Item cards as plain dicts: the one shape the REST API's lists and the widgets share.

A card says what a list shows of an item: ``external_id``, ``title``, ``category``, ``brand``,
``price``, ``in_stock``, ``image`` (its URL, or "" for none) and ``url`` (the product page, or
"" when no link can be made, :mod:`shop_recs.storefront.links`). Links of a whole list are
resolved in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shop_recs.catalog.media import image_url
from shop_recs.storefront.links import item_urls


def card_dicts(results: Sequence[Any], request: Any = None) -> list[dict[str, Any]]:
    """The card of each result's ``.item`` (an :class:`~shop_recs.search.types.ItemCard`), in
    order. With a ``request``, image URLs are absolute."""
    urls = item_urls([r.item.external_id for r in results])
    return [
        {
            "external_id": r.item.external_id,
            "title": r.item.title,
            "category": r.item.category,
            "brand": r.item.brand,
            "price": r.item.price,
            "in_stock": r.item.in_stock,
            "image": image_url(r.item.image, request),
            "url": urls.get(r.item.external_id, ""),
        }
        for r in results
    ]
