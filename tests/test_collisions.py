"""The plugin next to a shop that has its own URL names and DRF throttles: neither is disturbed
(namespaced URL names, the plugin's own throttle scopes and cache, a schema of its own URLs)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from shop_recs.catalog.models import Item

pytestmark = pytest.mark.django_db

SHOP_DRF = {
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": "1000/day"},
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}


@pytest.fixture
def shop(settings):
    settings.ROOT_URLCONF = "tests.collision_urls"
    settings.REST_FRAMEWORK = SHOP_DRF
    settings.SHOP_RECS = {**settings.SHOP_RECS, "THROTTLE_RATES": {"anon": "600/minute"}}
    cache.clear()
    Item.objects.create(external_id="sku-1", title="Shirt")
    yield
    cache.clear()


def test_the_shops_url_names_stay_the_shops(shop) -> None:
    assert reverse("search") == "/search/" and reverse("track") == "/track/"
    assert reverse("shop_recs:search") == "/api/v1/search/"
    assert reverse("shop_recs:track") == "/api/v1/track/"
    client = APIClient()
    assert client.get("/search/").content == b"the shop's own search"
    # the widgets find the plugin's API, not the shop's page named "track"
    from shop_recs.storefront.templatetags.shop_recs import _api_base

    assert _api_base() == "/api/v1/"


def test_the_plugins_requests_leave_the_shops_throttle_history_alone(shop) -> None:
    client = APIClient(REMOTE_ADDR="10.1.2.3")
    assert client.get("/shop-api/ping/").status_code == 200
    key = f"throttle_anon_{'10.1.2.3'}"
    history = cache.get(key)
    assert len(history) == 1  # DRF's AnonRateThrottle: one timestamp per request
    for _ in range(5):
        assert client.get("/api/v1/items/sku-1/").status_code == 200
    assert cache.get(key) == history  # the plugin counted elsewhere, under its own scope
    assert client.get("/shop-api/ping/").status_code == 200
    assert len(cache.get(key)) == 2
    assert api_settings.DEFAULT_THROTTLE_RATES == {"anon": "1000/day"}  # the shop's, untouched


def test_the_schema_documents_the_plugin_only(shop) -> None:
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    assert "/api/v1/items/{external_id}/similar/" in schema["paths"]
    assert not [p for p in schema["paths"] if not p.startswith("/api/v1/")]
    assert schema["info"]["title"] == "shop_recs API"
