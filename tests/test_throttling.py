"""Throttles: the plugin's rates, the client address behind trusted proxies only, and counts
shared by every web process (issue 14, item 3)."""

from __future__ import annotations

import pytest
import requests
from django.db import connection
from django.test import RequestFactory

from shop_recs.api.throttles import client_address, throttle_cache
from shop_recs.embedded_db import database_url
from tests.celery_support import redis_broker
from tests.server_support import gunicorn, server_env

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counts():
    throttle_cache().clear()
    yield
    throttle_cache().clear()


def rates(settings, **values: str | None) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "THROTTLE_RATES": values}


def test_anonymous_reads_are_throttled_by_plugin_settings(anon, settings) -> None:
    rates(settings, anon="3/minute")
    codes = [anon.get("/api/v1/items/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    response = anon.get("/api/v1/items/")
    assert "throttled" in response.json()["detail"].lower()
    assert 0 < int(response["Retry-After"]) <= 60


def test_authenticated_users_have_their_own_rate(api, settings) -> None:
    rates(settings, anon="1/minute", user="4/minute")
    codes = [api.get("/api/v1/items/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]


def test_counts_live_in_the_shared_database_cache(anon, settings) -> None:
    from shop_recs.catalog.models import CacheEntry

    rates(settings, anon="3/minute")
    anon.get("/api/v1/items/")
    (entry,) = CacheEntry.objects.all()
    assert "throttle:shop_recs_anon:127.0.0.1:" in entry.cache_key


def test_item3_a_new_forwarded_for_per_request_gets_no_new_allowance(anon, settings) -> None:
    rates(settings, anon="3/minute")
    codes = [
        anon.get("/api/v1/items/", HTTP_X_FORWARDED_FOR=f"10.9.{n}.{n}").status_code
        for n in range(6)
    ]
    assert codes == [200, 200, 200, 429, 429, 429]


def test_item3_behind_a_trusted_proxy_each_client_has_its_own_allowance(anon, settings) -> None:
    rates(settings, anon="2/minute")
    settings.SHOP_RECS = {**settings.SHOP_RECS, "TRUSTED_PROXIES": ["127.0.0.1"]}

    def get(xff: str) -> int:
        return anon.get("/api/v1/items/", HTTP_X_FORWARDED_FOR=xff).status_code

    # the proxy appends the address it saw; what the client wrote before it proves nothing
    assert [get(f"6.6.6.{n}, 203.0.113.9") for n in range(3)] == [200, 200, 429]
    assert [get("203.0.113.10") for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(
    ("remote", "xff", "trusted", "expected"),
    [
        ("198.51.100.1", "1.1.1.1", [], "198.51.100.1"),  # no proxies: the peer
        ("198.51.100.1", "1.1.1.1", ["10.0.0.0/8"], "198.51.100.1"),  # peer not trusted
        ("10.0.0.2", "1.1.1.1, 2.2.2.2", ["10.0.0.0/8"], "2.2.2.2"),
        ("10.0.0.2", "1.1.1.1, 2.2.2.2, 10.0.0.7", ["10.0.0.0/8"], "2.2.2.2"),  # two proxies
        ("10.0.0.2", "", ["10.0.0.0/8"], "10.0.0.2"),  # no header: the proxy itself
        ("10.0.0.2", "1.1.1.1, garbage", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::1]:443", ["10.0.0.0/8"], "2001:db8::1"),
        ("10.0.0.2", "203.0.113.4:5555", ["10.0.0.0/8"], "203.0.113.4"),
        ("::ffff:10.0.0.2", "203.0.113.4", ["10.0.0.0/8"], "203.0.113.4"),
    ],
)
def test_client_address(settings, remote, xff, trusted, expected) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "TRUSTED_PROXIES": trusted}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=xff)
    assert client_address(request) == expected


def test_system_checks_refuse_a_per_process_or_missing_cache(settings) -> None:
    from shop_recs.api.throttles import check_throttle_settings

    settings.SHOP_RECS = {**settings.SHOP_RECS, "THROTTLE_CACHE": "nope"}
    assert [m.id for m in check_throttle_settings()] == ["shop_recs.E040"]
    settings.SHOP_RECS = {**settings.SHOP_RECS, "THROTTLE_CACHE": "default"}
    assert [m.id for m in check_throttle_settings()] == ["shop_recs.W040"]  # locmem
    settings.SHOP_RECS = {**settings.SHOP_RECS, "THROTTLE_CACHE": None, "TRUSTED_PROXIES": ["x"]}
    assert [m.id for m in check_throttle_settings()] == ["shop_recs.E041"]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_broker(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["database", "redis"])
def test_item3_two_web_processes_share_one_allowance(store, redis_url, tmp_path) -> None:
    """gunicorn with 2 worker processes: 10/minute means 10 in all, whichever worker answers
    (a per-process memory cache allowed 10 per worker)."""
    extra = {"SHOP_RECS_THROTTLE_ANON": "10/minute"}
    if store == "redis":
        # a database of its own on the shared server, so no other test's keys are counted
        extra["REDIS_URL"] = _private_redis_db(redis_url)
    env = server_env(database_url(connection.settings_dict), extra)
    # ready when the admin answers: the readiness probe must not count against the API
    with gunicorn(
        env, workers=2, log=tmp_path / "gunicorn.log", ready_path="/admin/login/"
    ) as server:
        codes = [
            requests.get(f"{server.url}/api/v1/items/?page_size=1", timeout=10).status_code
            for _ in range(40)
        ]
    assert codes.count(200) == 10 and codes.count(429) == 30, codes


def _private_redis_db(url: str) -> str:
    """``url``'s server, database 3 (the broker uses 0), without throttle counts left over
    from an earlier run in the same minute."""
    import redis

    url = url.replace("redis+socket://", "unix://")
    url = f"{url}?db=3" if url.startswith("unix://") else url.rsplit("/", 1)[0] + "/3"
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("*throttle:shop_recs_*"):
        client.delete(key)
    return url
