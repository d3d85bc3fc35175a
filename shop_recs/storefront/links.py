"""Links of recommended items to the shop's product pages (widgets and the API's item cards).

Item links come from ``SHOP_RECS["ITEM_URL"]``:

- ``None`` (default): the shop product's ``get_absolute_url()``, found through the item source
  (``shop_recs.storefront.source``) when its external id is a plain field of the product model
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
from django.urls import NoReverseMatch, reverse

from shop_recs.conf import recs_settings
from shop_recs.storefront.source import item_source

logger = logging.getLogger(__name__)


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
    adapter = item_source()
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
    # a "callable:dotted.path" is imported by the settings object
    return recs_settings.ITEM_URL


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
