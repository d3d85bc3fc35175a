"""A real Celery worker process against a real Redis runs the shipped tasks."""

from __future__ import annotations

import pytest

from shop_recs.catalog.models import Customer, Item, ItemStats
from tests.celery_support import Workers, redis_broker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_broker(tmp_path_factory.mktemp("redis")) as url:
        yield url


def test_worker_refreshes_item_stats_from_api_events(api, redis_url) -> None:
    Item.objects.bulk_create([Item(external_id=f"i{n}", title=f"Item {n}") for n in range(3)])
    Customer.objects.create(external_id="c1")
    events = [
        {"item_id": "i0", "customer_id": "c1", "event": "view"},
        {"item_id": "i0", "customer_id": "c1", "event": "purchase"},
        {"item_id": "i1", "session_id": "s1", "event": "cart"},
    ]
    with Workers(redis_url) as workers:
        workers.start({"SHOP_RECS_WORKER_WARMUP": "0"})
        response = api.post("/api/v1/events/", {"events": events}, format="json")
        assert response.status_code == 200, response.content
        assert wait_for(lambda: ItemStats.objects.count() >= 2, timeout=90)
    stats = {s.item.external_id: s for s in ItemStats.objects.select_related("item")}
    assert set(stats) == {"i0", "i1"}
    assert (stats["i0"].views, stats["i0"].purchases) == (1, 1)
    assert stats["i1"].carts == 1 and stats["i1"].distinct_shoppers == 0
