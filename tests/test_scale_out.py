"""Scale-out on existing engines: Celery queues per kind of work (a real Redis broker), and
serving reads on a read replica (a second database alias, a TEST MIRROR of the default)."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext

from shop_recs.catalog import services
from shop_recs.catalog.db import ServingReadRouter, check_read_database, serving_reads
from shop_recs.catalog.models import Customer, Interaction, Item, ItemEmbedding
from shop_recs.catalog.services import EventIn
from shop_recs.celery import app as celery_app
from shop_recs.ranking import served
from shop_recs.workers import tasks
from shop_recs.workers.queues import queue_backlog
from shop_recs.workers.routing import KINDS, TASK_KINDS, parse_queues, task_routes
from shop_recs.workers.schedule import beat_schedule
from tests.celery_support import Workers, redis_broker
from tests.conftest import write_vector

# --------------------------------------------------------------------------- queues


def test_every_task_has_a_kind_and_the_routes_follow_the_kinds() -> None:
    shipped = {name for name in celery_app.tasks if name.startswith("shop_recs.workers.tasks.")}
    assert shipped == set(TASK_KINDS), "a task without a kind goes to no queue of its own"
    assert set(TASK_KINDS.values()) == set(KINDS)
    queues = {"encode": "enc", "train": "gpu", "maintenance": None}
    routes = task_routes(queues)
    assert routes["shop_recs.workers.tasks.encode_items"] == {"queue": "enc"}
    assert routes["shop_recs.workers.tasks.encode_query"] == {"queue": "enc"}
    assert routes["shop_recs.workers.tasks.fetch_item_image"] == {"queue": "enc"}
    assert routes["shop_recs.workers.tasks.train_model"] == {"queue": "gpu"}
    assert "shop_recs.workers.tasks.refresh_item_stats" not in routes  # the default queue
    assert task_routes({}) == {}
    with pytest.raises(ValueError, match="unknown task kinds"):
        task_routes({"encoding": "x"})


def test_the_standalone_queue_variable_is_parsed_strictly() -> None:
    assert parse_queues("") == {"encode": None, "train": None, "maintenance": None}
    assert parse_queues(" encode=encode , train=gpu-train ") == {
        "encode": "encode",
        "train": "gpu-train",
        "maintenance": None,
    }
    for bad in ("encode", "encoder=x", "train=", "=x"):
        with pytest.raises(ValueError, match="SHOP_RECS_TASK_QUEUES"):
            parse_queues(bad)


def test_beat_entries_go_to_the_queue_of_their_kind() -> None:
    queues = {"encode": "encode", "train": "train", "maintenance": "maintenance"}
    jobs = beat_schedule(retrain_seconds=86400, sync_seconds=900, queues=queues)
    assert jobs["shop-recs-refresh-item-stats"]["options"] == {"queue": "maintenance"}
    assert jobs["shop-recs-sync-products"]["options"] == {"queue": "maintenance"}
    assert jobs["shop-recs-train-model"]["options"] == {"queue": "train"}
    # without queues, the entries a shop already has are unchanged
    assert "options" not in beat_schedule()["shop-recs-refresh-item-stats"]


def _waiting(client: redis.Redis, queue: str) -> list[str]:
    """Task names of the messages waiting in ``queue`` (kombu's Redis layout)."""
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]


def test_tasks_are_sent_to_the_queue_of_their_kind_through_a_real_broker(
    settings, tmp_path
) -> None:
    base = f"shop-recs-route-{uuid.uuid4().hex[:8]}"
    encode, train = f"{base}-encode", f"{base}-train"
    with redis_broker(tmp_path) as url, Workers(url) as workers:
        default = workers.queue  # the app's default queue for this test (no worker started)
        client = redis.Redis.from_url(url.replace("redis+socket://", "unix://"))
        try:
            settings.SHOP_RECS = {
                **settings.SHOP_RECS,
                "TASK_QUEUES": {"encode": encode, "train": train, "maintenance": None},
            }
            tasks.encode_items.delay([1, 2])
            tasks.fetch_item_image.delay(7)
            tasks.train_model.delay(note="routing test")
            tasks.refresh_item_stats.delay([1])
            tasks.encode_items.apply_async(args=[[3]], queue=default)  # explicit queue wins
            assert sorted(_waiting(client, encode)) == [
                "shop_recs.workers.tasks.encode_items",
                "shop_recs.workers.tasks.fetch_item_image",
            ]
            assert _waiting(client, train) == ["shop_recs.workers.tasks.train_model"]
            assert sorted(_waiting(client, default)) == [
                "shop_recs.workers.tasks.encode_items",
                "shop_recs.workers.tasks.refresh_item_stats",
            ]
            # the dashboard counts each queue with the kinds it takes
            settings.CELERY_TASK_ALWAYS_EAGER = False
            settings.CELERY_BROKER_URL = url
            settings.CELERY_TASK_DEFAULT_QUEUE = default
            backlog = queue_backlog()
            assert backlog["size"] == 5 and not backlog.get("error"), backlog
            assert {q["queue"]: (q["kinds"], q["size"]) for q in backlog["queues"]} == {
                encode: (["encode"], 2),
                train: (["train"], 1),
                default: (["maintenance"], 2),
            }
        finally:
            client.delete(encode, train, default)
            client.close()


# --------------------------------------------------------------------------- read replica


@pytest.fixture
def replica(settings):
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_DATABASE": "replica"}
    return connections["replica"]


def _catalogue() -> None:
    for n in range(6):
        item = Item.objects.create(external_id=f"r{n}", title=f"Item {n}", category="Shoes")
        write_vector(item, "text", [1.0, 0.1 * n, 0.0, 0.3])
        write_vector(item, "content", [1.0, 0.1 * n, 0.2, 0.0])
    services.customer_create(external_id="c1")
    services.interactions_record(events=[EventIn(item_id="r1", event="view", customer_id="c1")])


def _sql(captured: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"] for q in captured.captured_queries)


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_serving_reads_go_to_the_replica_and_a_shoppers_own_events_to_the_primary(
    replica, api
) -> None:
    _catalogue()
    served.flush()  # served lists other tests left in this process's buffer: written here
    primary = connections["default"]
    with CaptureQueriesContext(primary) as on_primary, CaptureQueriesContext(replica) as on_rep:
        response = api.get("/api/v1/items/r0/similar/?space=text&k=3")
    assert response.status_code == 200, response.content
    assert [r["item"]["external_id"] for r in response.json()["results"]] == ["r1", "r2", "r3"]
    assert "itemembedding" in _sql(on_rep) and "<=>" in _sql(on_rep)
    assert "shop_recs_catalog" not in _sql(on_primary)  # the token check only

    with CaptureQueriesContext(primary) as on_primary, CaptureQueriesContext(replica) as on_rep:
        response = api.post(
            "/api/v1/recommendations/", {"customer_id": "c1", "k": 3}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["history"] == ["r1"] and len(body["results"]) == 3
    # the history (interactions, customer) is read where it was written a moment ago
    assert "shop_recs_catalog_interaction" in _sql(on_primary)
    assert "shop_recs_catalog_customer" in _sql(on_primary)
    assert "shop_recs_catalog_interaction" not in _sql(on_rep)
    assert "shop_recs_catalog_itemembedding" in _sql(on_rep)

    # writes and reads outside serving stay on the primary
    with CaptureQueriesContext(primary) as on_primary, CaptureQueriesContext(replica) as on_rep:
        posted = api.post(
            "/api/v1/events/",
            {"events": [{"item_id": "r2", "customer_id": "c1", "event": "cart"}]},
            format="json",
        )
        detail = api.get("/api/v1/items/r2/")
    assert posted.status_code == 200 and detail.status_code == 200
    assert on_rep.captured_queries == []
    assert "INSERT INTO" in _sql(on_primary)
    assert Interaction.objects.count() == 2


@pytest.mark.django_db(databases=["default", "replica"])
def test_the_router_decides_only_inside_serving_reads(settings) -> None:
    router = ServingReadRouter()
    assert router.db_for_read(Item) is None  # READ_DATABASE unset
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_DATABASE": "replica"}
    assert router.db_for_read(Item) is None  # outside a serving request
    with serving_reads():
        assert router.db_for_read(Item) == "replica"
        assert router.db_for_read(ItemEmbedding) == "replica"
        assert router.db_for_read(Interaction) is None  # read-your-own-writes
        assert router.db_for_read(Customer) is None
        assert router.db_for_write(Item) is None
    assert router.db_for_read(Item) is None
    assert router.allow_migrate("replica", "shop_recs_catalog") is False
    assert router.allow_migrate("default", "shop_recs_catalog") is None


def test_system_checks_name_an_unknown_alias_and_a_missing_router(settings) -> None:
    assert check_read_database() == []
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_DATABASE": "replica"}
    assert check_read_database() == []
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_DATABASE": "nope"}
    errors = check_read_database()
    assert [e.id for e in errors] == ["shop_recs.E040"] and "'nope'" in errors[0].msg
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_DATABASE": "replica"}
    settings.DATABASE_ROUTERS = []
    errors = check_read_database()
    assert [e.id for e in errors] == ["shop_recs.E041"]
    assert "ServingReadRouter" in errors[0].msg
    with pytest.raises(Exception, match="E041"):
        call_command("check")
