"""Storefront template tags. ``{% load shop_recs %}``, then::

    {% similar_items product k=8 %}          {# product: a shop product, an Item or an id #}
    {% recommended_for request k=8 %}
    {% shop_recs_scripts %}                  {# track.js and widget.js, and the CSRF cookie #}

The list tags render ``SHOP_RECS["WIDGET_TEMPLATE"]`` (default
``shop_recs/widgets/items.html``; override it in a template directory of the shop, or pass
``template="..."``) with ``items`` (see ``shop_recs.storefront.widgets``), ``kind``
(``"similar"`` or ``"recommended"``), ``title``, and ``list_id``, ``experiment`` and ``arm``
(the served list's id, and its experiment and arm or None; the default template puts them in
``data-shop-recs-list`` / ``data-shop-recs-experiment`` / ``data-shop-recs-arm``, where
track.js finds the list of a click). When there is nothing to show, or anything
fails (unknown or unencoded product, database error, broken template), they render nothing:
a widget never breaks the page. Failures are logged as warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django import template
from django.middleware.csrf import get_token
from django.template.loader import get_template
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from shop_recs.conf import recs_settings
from shop_recs.ranking import served
from shop_recs.storefront import widgets

logger = logging.getLogger(__name__)
register = template.Library()

DEFAULT_API = "/api/v1/"


def _render(
    context: template.Context,
    *,
    kind: str,
    endpoint: str,
    load: Callable[[], list[dict[str, Any]]],
    template_name: str | None,
    title: str,
) -> str:
    try:
        items = load()
        if not items:
            return ""
        served.record(endpoint, [i["id"] for i in items])
        chosen = get_template(template_name or recs_settings.WIDGET_TEMPLATE)
        return chosen.render(
            {
                "items": items,
                "kind": kind,
                "title": title,
                "list_id": getattr(items, "list_id", ""),
                "experiment": getattr(items, "experiment", None),
                "arm": getattr(items, "arm", None),
            },
            context.get("request"),
        )
    except Exception:
        logger.warning("shop_recs: the %s widget failed; it renders nothing", kind, exc_info=True)
        return ""


@register.simple_tag(takes_context=True)
def similar_items(
    context: template.Context,
    product: Any,
    k: int = widgets.DEFAULT_K,
    space: str | None = None,
    template: str | None = None,
    title: str | None = None,
) -> str:
    """Items similar to ``product`` (empty until it is encoded)."""
    return _render(
        context,
        kind="similar",
        endpoint="similar",
        load=lambda: widgets.widget_similar_items(
            product=product, k=k, space=space or None, request=context.get("request")
        ),
        template_name=template,
        title=gettext("Similar items") if title is None else title,
    )


@register.simple_tag(takes_context=True)
def recommended_for(
    context: template.Context,
    request: Any = None,
    k: int = widgets.DEFAULT_K,
    template: str | None = None,
    title: str | None = None,
) -> str:
    """Recommendations for the shopper of ``request`` (default: the template's request)."""
    request = request if request is not None else context.get("request")
    return _render(
        context,
        kind="recommended",
        endpoint="recommendations",
        load=lambda: widgets.widget_recommended_items(request=request, k=k),
        template_name=template,
        title=gettext("Recommended for you") if title is None else title,
    )


def _api_base() -> str:
    """Where the shop mounted the API (``include("shop_recs.api.urls")``), from the plugin's
    own namespaced URL names (a shop URL named "track" is never mistaken for it)."""
    try:
        return reverse("shop_recs:track").removesuffix("track/")
    except NoReverseMatch:
        return DEFAULT_API


@register.simple_tag(takes_context=True)
def shop_recs_scripts(
    context: template.Context,
    track: bool = True,
    widget: bool = True,
    api: str | None = None,
    track_views: bool = False,
) -> SafeString:
    """Script tags of ``track.js`` (clicks and cart adds) and ``widget.js`` (widgets filled in
    the browser), pointed at the API. Also sets the CSRF cookie that both send back: the
    tracking endpoint needs it even from anonymous shoppers. ``track_views``: track.js also
    records the view of the page's ``<meta name="shop-recs-item">`` (for pages whose views
    the server does not track, e.g. cached ones)."""
    request = context.get("request")
    if request is not None:
        get_token(request)
    api = api or _api_base()
    tags = []
    if track:
        tags.append(
            format_html(
                '<script src="{}" data-endpoint="{}"{} defer></script>',
                static("shop_recs/track.js"),
                f"{api}track/",
                " data-track-views" if track_views else "",
            )
        )
    if widget:
        tags.append(
            format_html(
                '<script src="{}" data-api="{}" defer></script>', static("shop_recs/widget.js"), api
            )
        )
    return mark_safe("\n".join(tags))  # noqa: S308 - each part is built by format_html
