"""The OpenAPI schema of the plugin's own endpoints, whatever the host project routes.

drf-spectacular's view documents the whole project by default (every app's API, under the
project's ``DEFAULT_SCHEMA_CLASS``). The plugin's schema walks its own URL patterns only,
mounted under the prefix the shop included them at (found by reversing a plugin URL), and every
plugin view brings its own schema class, so a shop changes none of its REST_FRAMEWORK settings.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path, reverse
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

SETTINGS = {
    "TITLE": "shop_recs API",
    "DESCRIPTION": "Catalog ingestion, events, similar items, search and recommendations.",
    "VERSION": "1.0.0",
    # input and output components apart: what a client may send vs what it gets back
    "COMPONENT_SPLIT_REQUEST": True,
}


def plugin_patterns() -> list[Any]:
    """The plugin's endpoint patterns under their mount prefix (e.g. ``api/v1/``)."""
    from shop_recs.api import urls

    prefix = reverse("shop_recs:item-list").removesuffix("items/").lstrip("/")
    return [path(prefix, include((urls.endpoints, urls.app_name)))]


class PluginSchemaView(SpectacularAPIView):
    """GET the plugin's OpenAPI 3 schema (YAML, or JSON with ``?format=json``)."""

    permission_classes = [AllowAny]
    custom_settings = SETTINGS

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.patterns = plugin_patterns()
        self.urlconf = None
        return super().get(request, *args, **kwargs)
