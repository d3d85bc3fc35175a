from __future__ import annotations

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.django_db


def test_anonymous_reads_are_throttled_by_plugin_settings(anon, settings) -> None:
    cache.clear()
    settings.SHOP_RECS = {**settings.SHOP_RECS, "THROTTLE_RATES": {"anon": "3/minute"}}
    codes = [anon.get("/api/v1/items/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    response = anon.get("/api/v1/items/")
    assert "throttled" in response.json()["detail"].lower()
    assert int(response["Retry-After"]) > 0
    cache.clear()


def test_authenticated_users_have_their_own_rate(api, settings) -> None:
    cache.clear()
    settings.SHOP_RECS = {
        **settings.SHOP_RECS,
        "THROTTLE_RATES": {"anon": "1/minute", "user": "4/minute"},
    }
    codes = [api.get("/api/v1/items/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    cache.clear()
