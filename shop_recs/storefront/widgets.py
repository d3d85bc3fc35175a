"""What the storefront widgets show (selectors: reads only).

The ``{% similar_items %}`` and ``{% recommended_for %}`` template tags
(``templatetags/shop_recs.py``) render these lists; the REST API builds its item cards with the
same :func:`~shop_recs.storefront.cards.card_dicts`, so a server-rendered widget and the
JavaScript one link the same pages. Each entry is a dict: ``external_id``, ``title``, ``price``,
``image_url``, ``url`` (empty when no link can be made, :mod:`shop_recs.storefront.links`),
``reason``, ``source``, ``category``, ``brand``, ``in_stock``, ``score`` and ``id`` (the
plugin's item pk).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shop_recs.catalog.db import serving_reads
from shop_recs.catalog.models import Space
from shop_recs.conf import recs_settings
from shop_recs.ranking import experiments
from shop_recs.ranking.recommend import recommendations
from shop_recs.ranking.similar import similar_items
from shop_recs.search.types import NotEncoded, SimilarFilters
from shop_recs.storefront import tracking
from shop_recs.storefront.cards import card_dicts

logger = logging.getLogger(__name__)

DEFAULT_K = 8


# --------------------------------------------------------------------------- lists


def _entries(results: Sequence[Any], *, source: str = "") -> list[dict[str, Any]]:
    out = []
    for r, card in zip(results, card_dicts(results), strict=True):
        image = card.pop("image")
        out.append(
            {
                "id": r.item.id,
                **card,
                "image_url": image,
                "score": r.score,
                "reason": getattr(r, "reason", "") or "",
                "source": getattr(r, "source", "") or source,
            }
        )
    return out


def _k(k: Any) -> int:
    return max(1, min(int(k), int(recs_settings.SIMILAR_MAX_K)))


class WidgetList(list):
    """The entries of a widget (a list of dicts) with the identity of the served list:
    ``list_id``, ``experiment`` and ``arm`` (None outside experiments)."""

    list_id: str = ""
    experiment: str | None = None
    arm: str | None = None

    def tagged(self, tag: experiments.ListTag) -> WidgetList:
        self.list_id, self.experiment, self.arm = tag.list_id, tag.experiment, tag.arm
        tag.served([e["id"] for e in self])
        return self


def widget_similar_items(
    *,
    product: Any,
    k: int = DEFAULT_K,
    space: str | None = None,
    filters: SimilarFilters | None = None,
    request: Any = None,
) -> WidgetList:
    """Items similar to ``product`` (a shop product, an Item or an external id), as the API's
    ``/items/{id}/similar/`` serves them (default space and filters alike). Empty when the
    product is not in the catalog or not encoded (yet). With ``request``, its shopper's arm
    of a running experiment serves the list."""
    with experiments.serving_for(
        surface="similar", **tracking.experiment_shopper(request, surface="similar")
    ) as tag:
        return WidgetList(
            _similar_entries(product=product, k=k, space=space, filters=filters)
        ).tagged(tag)


def _similar_entries(
    *, product: Any, k: int, space: str | None, filters: SimilarFilters | None
) -> list[dict[str, Any]]:
    external_id = tracking.external_id_of(product)
    if not external_id:
        logger.debug("shop_recs: no similar items for %r: not a catalog product", product)
        return []
    if space is not None and space not in Space.values:
        raise ValueError(f"Unknown space {space!r}; use one of {', '.join(Space.values)}.")
    try:
        with serving_reads():
            space, results = similar_items(
                external_id=external_id, space=space, k=_k(k), filters=filters or SimilarFilters()
            )
    except NotEncoded as exc:
        logger.debug("shop_recs: no similar items yet: %s", exc)
        return []
    if results is None:
        logger.debug("shop_recs: no similar items: no item %r", external_id)
        return []
    return _entries(results, source=space)


def widget_recommended_items(
    *,
    request: Any,
    k: int = DEFAULT_K,
    filters: SimilarFilters | None = None,
) -> WidgetList:
    """Recommendations for the request's shopper, as ``POST /recommendations/`` serves them:
    their recorded events (customer and browser session), or the session's recent views where
    the session has none recorded; then content similarity; then popular items.

    Popular items fill in only when they are popular: items without events (no ItemStats, or a
    zero score) are never shown as "popular", so a new shop shows an empty widget rather
    than arbitrary products."""
    shopper = tracking.shopper_for(request, create=False)
    recent: list[str] = []
    if not shopper.session_id:
        recent = tracking.recent_item_ids(request)[-int(recs_settings.HISTORY_LENGTH) :]
    with (
        serving_reads(),
        experiments.serving_for(
            surface="recommendations",
            customer_external_id=shopper.customer.external_id if shopper.customer else None,
            session_id=shopper.session_id,
        ) as tag,
    ):
        result = recommendations(
            customer=shopper.customer,
            session_id=shopper.session_id,
            recent_item_ids=recent,
            k=_k(k),
            filters=filters or SimilarFilters(),
        )
        results = [r for r in result.results if not (r.source == "popular" and r.score <= 0)]
        return WidgetList(_entries(results)).tagged(tag)
