"""What the storefront widgets show (selectors: reads only).

The ``{% similar_items %}`` and ``{% recommended_for %}`` template tags
(``templatetags/shop_recs.py``) render these lists; the REST item cards use :func:`item_urls`
and :func:`image_url` too, so a server-rendered widget and the JavaScript one link the same
pages. Each entry is a dict: ``external_id``, ``title``, ``price``, ``image_url``, ``url``
(empty when no link can be made), ``reason``, ``source``, ``category``, ``brand``,
``in_stock``, ``score`` and ``id`` (the plugin's item pk).

Item links come from ``SHOP_RECS["ITEM_URL"]``:

- ``None`` (default): the shop product's ``get_absolute_url()``, found through the item source
  (``shop_recs.catalog.source``) when its external id is a plain field of the product model
  (``FIELDS["external_id"]``, e.g. ``"sku"`` or ``"pk"``): one query for the whole list;
- a URL name, reversed with the ``external_id`` keyword (``"shop:product"``);
- a callable, or ``"callable:dotted.path"`` to one, taking the external id and returning a URL
  (or None).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.files.storage import default_storage
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from shop_recs.catalog import recommend, selectors, tracking
from shop_recs.catalog.conf import recs_settings
from shop_recs.catalog.models import Space

logger = logging.getLogger(__name__)

DEFAULT_K = 8


def image_url(image: str) -> str:
    """The URL of an item card's image: a stored file's name, or an http(s) source URL."""
    if not image:
        return ""
    if image.startswith(("http://", "https://")):
        return image
    return default_storage.url(image)


# --------------------------------------------------------------------------- item links


def _external_id_field(adapter: Any) -> str | None:
    """The product model field holding the external id, when ``ITEM_SOURCE["FIELDS"]``
    names a plain field (not a path through relations, not a callable)."""
    fields = getattr(adapter, "specs", None)
    if not isinstance(fields, Mapping):
        config = recs_settings.ITEM_SOURCE
        fields = config.get("FIELDS") if isinstance(config, Mapping) else None
    path = fields.get("external_id") if isinstance(fields, Mapping) else None
    if isinstance(path, str) and path.isidentifier() and "__" not in path:
        return path
    return None


def _source_urls(external_ids: Sequence[str]) -> dict[str, str]:
    adapter = tracking.item_source()
    if adapter is None:
        return {}
    name = _external_id_field(adapter)
    model = getattr(adapter, "model", None)
    if name is None or model is None or not hasattr(model, "get_absolute_url"):
        return {}
    try:
        model_field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    except FieldDoesNotExist:
        return {}
    if not model_field.concrete or model_field.is_relation:
        return {}
    values = []
    for external_id in external_ids:
        try:
            values.append(model_field.to_python(external_id))
        except ValidationError:  # e.g. "abc" for an integer key: no such product
            continue
    if not values:
        return {}
    wanted = set(external_ids)
    out: dict[str, str] = {}
    for product in model._default_manager.filter(**{f"{model_field.attname}__in": values}):
        external_id = str(getattr(product, model_field.attname))
        if external_id in wanted:
            url = product.get_absolute_url()
            if url:
                out[external_id] = str(url)
    return out


def _resolver() -> Any:
    setting = recs_settings.ITEM_URL
    if isinstance(setting, str) and setting.startswith("callable:"):
        return import_string(setting.removeprefix("callable:"))
    return setting


def item_urls(external_ids: Sequence[str]) -> dict[str, str]:
    """Links of these items by external id (module docstring); items without one are left out.
    Never raises: a failing resolver is logged and yields no links."""
    ids = [e for e in dict.fromkeys(external_ids) if e]
    if not ids:
        return {}
    try:
        resolver = _resolver()
        if resolver is None:
            return _source_urls(ids)
        out: dict[str, str] = {}
        if callable(resolver):
            for external_id in ids:
                url = resolver(external_id)
                if url:
                    out[external_id] = str(url)
            return out
        if isinstance(resolver, str):
            for external_id in ids:
                try:
                    out[external_id] = reverse(resolver, kwargs={"external_id": external_id})
                except NoReverseMatch:
                    logger.debug("shop_recs: no URL %r for item %r", resolver, external_id)
            return out
        logger.warning("shop_recs: SHOP_RECS['ITEM_URL'] must be None, a URL name or a callable")
    except Exception:
        logger.warning("shop_recs: resolving item URLs failed", exc_info=True)
    return {}


# --------------------------------------------------------------------------- lists


def _entries(results: Sequence[Any], *, source: str = "") -> list[dict[str, Any]]:
    urls = item_urls([r.item.external_id for r in results])
    out = []
    for r in results:
        card = r.item
        out.append(
            {
                "id": card.id,
                "external_id": card.external_id,
                "title": card.title,
                "category": card.category,
                "brand": card.brand,
                "price": card.price,
                "in_stock": card.in_stock,
                "image_url": image_url(card.image),
                "url": urls.get(card.external_id, ""),
                "score": r.score,
                "reason": getattr(r, "reason", "") or "",
                "source": getattr(r, "source", "") or source,
            }
        )
    return out


def _k(k: Any) -> int:
    return max(1, min(int(k), int(recs_settings.SIMILAR_MAX_K)))


def widget_similar_items(
    *,
    product: Any,
    k: int = DEFAULT_K,
    space: str | None = None,
    filters: selectors.SimilarFilters | None = None,
) -> list[dict[str, Any]]:
    """Items similar to ``product`` (a shop product, an Item or an external id), as the API's
    ``/items/{id}/similar/`` serves them (default space and filters alike). Empty when the
    product is not in the catalog or not encoded (yet)."""
    external_id = tracking.external_id_of(product)
    if not external_id:
        logger.debug("shop_recs: no similar items for %r: not a catalog product", product)
        return []
    space = space or recommend.default_similar_space()
    if space not in Space.values:
        raise ValueError(f"Unknown space {space!r}; use one of {', '.join(Space.values)}.")
    filters = filters or selectors.SimilarFilters()
    try:
        if space == Space.HYBRID:
            results = recommend.item_similar_hybrid(
                external_id=external_id, k=_k(k), filters=filters
            )
        else:
            results = selectors.item_similar(
                external_id=external_id, space=space, k=_k(k), filters=filters
            )
    except selectors.NotEncoded as exc:
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
    filters: selectors.SimilarFilters | None = None,
) -> list[dict[str, Any]]:
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
    result = recommend.recommendations(
        customer=shopper.customer,
        session_id=shopper.session_id,
        recent_item_ids=recent,
        k=_k(k),
        filters=filters or selectors.SimilarFilters(),
    )
    results = [r for r in result.results if not (r.source == "popular" and r.score <= 0)]
    return _entries(results)
