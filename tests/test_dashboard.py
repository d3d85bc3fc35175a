"""The recommendations dashboard: counts and shares per space, failures, the queue backlog
(no broker, a real Redis, a broker that is down), jobs, the active model, coverage of served
lists, and the "try it" box with the real text encoder."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import redis
from django.contrib.auth import get_user_model

from shop_recs.catalog.models import (
    BackgroundJob,
    Item,
    ItemEncoding,
    ServedList,
)
from shop_recs.encoding.service import items_encode
from shop_recs.ranking import served
from shop_recs.ranking.training import model_train
from tests.admin_support import make_shop, staff_user, tiny_settings
from tests.celery_support import redis_broker
from tests.conftest import write_vector

pytestmark = pytest.mark.django_db

URL = "/admin/shop_recs/dashboard/"


@pytest.fixture(autouse=True)
def _empty_served_buffer():
    with served._lock:
        served._take()
    yield
    with served._lock:
        served._take()


@pytest.fixture
def tiny(settings, tmp_path):
    settings.SHOP_RECS = tiny_settings(MODEL_DIR=str(tmp_path / "models"))


@pytest.fixture
def root(client, admin_user):
    client.force_login(admin_user)
    return client


def _vector(item: Item, space: str, dim: int = 4) -> None:
    write_vector(item, space, np.ones(dim, dtype=np.float32), encoder="e")


@pytest.fixture
def catalogue() -> list[Item]:
    """4 items (one inactive): text 3, image 1, content 2, hybrid 0; one failed, one pending
    with a row, one never encoded, one done."""
    items = [Item.objects.create(external_id=f"i{n}", title=f"Item {n}") for n in range(4)]
    Item.objects.filter(pk=items[3].pk).update(is_active=False)
    for item in items[:3]:
        _vector(item, "text")
    _vector(items[0], "image")
    _vector(items[0], "content")
    _vector(items[1], "content")
    ItemEncoding.objects.create(item=items[0], status="done")
    ItemEncoding.objects.create(item=items[1], status="failed", error="encoder error: boom")
    ItemEncoding.objects.create(item=items[2], status="pending")
    return items


def test_counts_shares_failures_and_no_broker(root, catalogue) -> None:
    response = root.get(URL)
    assert response.status_code == 200
    encoding = response.context["encoding"]
    assert (encoding["total"], encoding["active"]) == (4, 3)
    shares = {row["space"]: (row["count"], row["share"]) for row in encoding["spaces"]}
    assert shares == {
        "text": (3, 0.75),
        "image": (1, 0.25),
        "content": (2, 0.5),
        "hybrid": (0, 0.0),
    }
    assert (encoding["failed"], encoding["pending"]) == (1, 2)
    page = response.content.decode()
    assert "75%" in page and "25%" in page and "50%" in page
    assert "/admin/shop_recs_catalog/item/?encoding__status__exact=failed" in page
    assert "No broker configured — tasks run in-process" in page
    assert "No active model" in page and "No served lists logged yet" in page
    assert (
        root.get("/admin/shop_recs_catalog/item/?encoding__status__exact=failed").status_code == 200
    )


def test_jobs_and_the_active_model_are_shown(root, tiny, admin_user) -> None:
    make_shop()
    version = model_train()
    BackgroundJob.objects.create(
        kind="encode", status="running", progress=0.4, message="40 of 100 items"
    )
    BackgroundJob.objects.create(kind="train", status="failed", error="TrainingError: <oops>")
    page = root.get(URL).content.decode()
    assert f"/admin/shop_recs_catalog/modelversion/{version.pk}/change/" in page
    assert f"{version.metrics['recall@10']:.4f}" in page
    assert "40 of 100 items" in page and "TrainingError: &lt;oops&gt;" in page
    # with a model active, the try-it box offers the hybrid space and it works
    response = root.get(URL, {"item": "boot-0", "space": "hybrid", "k": "3"})
    assert '<option value="hybrid" selected>' in response.content.decode()
    found = response.context["try"]["cards"]
    assert len(found) == 3 and "boot-0" not in [c.external_id for c in found]
    assert all("hybrid" in c.similarity for c in found)


def test_queue_backlog_of_a_real_redis_and_of_a_broker_that_is_down(
    root, settings, tmp_path
) -> None:
    queue = f"shop-recs-dashboard-{uuid.uuid4().hex[:8]}"
    with redis_broker(tmp_path) as url:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = url
        settings.CELERY_TASK_DEFAULT_QUEUE = queue
        client = redis.Redis.from_url(url.replace("redis+socket://", "unix://"))
        try:
            client.lpush(queue, "a", "b", "c")
            client.lpush(f"{queue}\x06\x166", "d")  # a priority-6 message
            backlog = root.get(URL).context["backlog"]
            assert backlog["size"] == 4 and not backlog.get("error")
            assert "4</strong> tasks waiting" in root.get(URL).content.decode()
        finally:
            client.delete(queue, f"{queue}\x06\x166")
            client.close()
    settings.CELERY_BROKER_URL = "redis://:secret@127.0.0.1:1/0"
    page = root.get(URL).content.decode()
    assert "Broker unreachable:" in page and "secret" not in page


def test_try_it_reports_problems_as_messages(root, catalogue) -> None:
    def message(**params: str) -> str:
        response = root.get(URL, params)
        assert response.status_code == 200
        return response.context["try"]["message"]

    assert message(item="nope", space="text") == "No item with external id 'nope'."
    assert "Unknown space" in message(item="i0", space="colour")
    assert message(item="", space="text") == "Enter an item's external id."
    assert "Not encoded in this space" in message(item="i3", space="text")
    assert "No active model" in message(item="i0", space="hybrid")
    assert message(q="   ") == "Enter a search text."
    assert "longer than" in message(q="x" * 501)
    page = root.get(URL, {"item": "<script>alert(1)</script>", "k": "many"}).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_try_similar_items_shows_scores_and_the_similarity_per_space(root, tiny) -> None:
    make_shop()
    response = root.get(URL, {"item": "shirt-0", "space": "text", "k": "3"})
    found = response.context["try"]["cards"]
    assert [c.external_id.split("-")[0] for c in found] == ["shirt"] * 3
    assert all(set(c.similarity) >= {"text", "content"} for c in found)
    page = response.content.decode()
    assert "Shirt number 0" in page and "score " in page and "text 0." in page


def test_semantic_search_with_the_real_text_encoder(root, settings) -> None:
    settings.SHOP_RECS = tiny_settings()  # the bundled text encoder; no image encoder
    for n, (title, description) in enumerate(
        [
            ("Leather ankle boots", "Warm waterproof boots for winter walks."),
            ("Linen summer shirt", "A breathable shirt with short sleeves."),
            ("Canvas tote bag", "A roomy bag for shopping."),
        ]
    ):
        Item.objects.create(external_id=f"p{n}", title=title, description=description)
    report = items_encode(item_ids=list(Item.objects.values_list("pk", flat=True)))
    assert report.encoded == 3
    response = root.get(URL, {"q": "winter boots", "k": "2"})
    result = response.context["try"]
    assert result["message"] == "" and result["search_spaces"] == ["text"]
    assert result["cards"][0].external_id == "p0"
    assert "Leather ankle boots" in response.content.decode()


def test_coverage_of_served_lists(root, catalogue, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "SERVED_LOG_BUFFER": 3}
    i0, i1, i2, i3 = (item.pk for item in catalogue)
    served.record("similar", [i0, i1])
    served.record("recommend", [i1, i3])  # i3 is not active
    assert ServedList.objects.count() == 0 and served.pending() == 2
    served.record("similar", [i0])
    assert ServedList.objects.count() == 3 and served.pending() == 0
    served.record("search", [i2])
    assert served.flush() == 1

    stats = served.coverage()
    assert stats["lists"] == 4 and stats["distinct_items"] == 4
    assert (stats["active_items_served"], stats["active_items"]) == (3, 3)
    assert stats["share"] == 1.0
    assert stats["by_endpoint"] == {"recommend": 1, "search": 1, "similar": 2}
    last_two = served.coverage(last_n=2)
    assert last_two["lists"] == 2 and last_two["active_items_served"] == 2
    response = root.get(URL, {"n": "2"})
    assert response.context["coverage"]["share"] == pytest.approx(2 / 3)
    assert "2 of 3 (67%)" in response.content.decode()

    settings.SHOP_RECS = {**settings.SHOP_RECS, "SERVED_LOG_BUFFER": 0}
    served.record("similar", [i0])
    assert served.pending() == 0 and served.flush() == 0


def test_served_lists_are_pruned_to_the_newest(settings, monkeypatch) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "SERVED_LOG_BUFFER": 4}
    monkeypatch.setattr(served, "KEEP", 5)
    for n in range(8):
        served.record("similar", [n + 1])
    assert ServedList.objects.count() == 5
    assert sorted(ServedList.objects.values_list("item_ids", flat=True))[-1] == [8]


def test_permissions(client, catalogue, django_capture_on_commit_callbacks) -> None:
    # anonymous and non-staff: the admin login
    assert "/admin/login/" in client.get(URL)["Location"]
    client.force_login(get_user_model().objects.create_user("shopper", password="pw-123456"))
    assert "/admin/login/" in client.get(URL)["Location"]
    # staff without view_item: refused, and no link on the index
    client.force_login(staff_user("clerk", "view_backgroundjob"))
    assert client.get(URL).status_code == 403
    assert URL not in client.get("/admin/").content.decode()
    # view only: the page and the index link, no encode button, and a POST is refused
    client.force_login(staff_user("viewer", "view_item"))
    page = client.get(URL).content.decode()
    assert "Catalogue and encoding" in page and "recs-encode-submit" not in page
    assert URL in client.get("/admin/").content.decode()
    assert client.post(f"{URL}encode/", {"scope": "needing"}).status_code == 403
    # view and change: starts an encode job after commit
    client.force_login(staff_user("editor", "view_item", "change_item"))
    assert "recs-encode-submit" in client.get(URL).content.decode()
    assert client.get(f"{URL}encode/").status_code == 405
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"{URL}encode/", {"scope": "failed"})
    job = BackgroundJob.objects.get()
    assert response["Location"] == f"/admin/shop_recs_catalog/backgroundjob/{job.pk}/change/"
    assert job.kind == "encode" and job.params == {"scope": "failed"} and len(callbacks) == 1
    response = client.post(f"{URL}encode/", {"scope": "everything"}, follow=True)
    assert BackgroundJob.objects.count() == 1
    assert any("Unknown selection" in str(m) for m in response.context["messages"])


def test_jobs_admin_is_read_only_with_progress(root, client, admin_user) -> None:
    running = BackgroundJob.objects.create(
        kind="encode", status="running", progress=0.5, message="<b>half</b>", created_by=admin_user
    )
    done = BackgroundJob.objects.create(
        kind="train", status="done", progress=1.0, result={"version": 7, "recall@10": 0.3}
    )
    page = root.get("/admin/shop_recs_catalog/backgroundjob/").content.decode()
    assert '<progress value="0.500" max="1"' in page and "&lt;b&gt;half&lt;/b&gt;" in page
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "/admin/shop_recs_catalog/backgroundjob/add/" not in page
    page = root.get(f"/admin/shop_recs_catalog/backgroundjob/{done.pk}/change/").content.decode()
    assert "/admin/shop_recs_catalog/modelversion/7/change/" in page
    assert 'http-equiv="refresh"' not in page and 'name="_save"' not in page
    page = root.get(f"/admin/shop_recs_catalog/backgroundjob/{running.pk}/change/").content.decode()
    assert 'http-equiv="refresh"' in page
    # staff who may view jobs cannot change or delete them
    client.force_login(staff_user("viewer", "view_backgroundjob", "delete_backgroundjob"))
    response = client.post(
        f"/admin/shop_recs_catalog/backgroundjob/{done.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403 and BackgroundJob.objects.filter(pk=done.pk).exists()
    response = client.post(
        f"/admin/shop_recs_catalog/backgroundjob/{done.pk}/change/", {"status": "failed"}
    )
    assert response.status_code == 403
    assert BackgroundJob.objects.get(pk=done.pk).status == "done"
