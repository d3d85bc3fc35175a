"""Event ingestion: single and batch, idempotency, per-event errors, limits."""

from __future__ import annotations

import pytest

from shop_recs.catalog.models import Customer, Interaction, Item, ItemStats

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(db):
    Item.objects.bulk_create([Item(external_id=f"i{n}", title=f"Item {n}") for n in range(5)])
    Customer.objects.create(external_id="c1")


def ev(n: int, **kw):
    return {"item_id": f"i{n % 5}", "customer_id": "c1", "event": "view", **kw}


def test_single_event_created_then_duplicate(api, catalog) -> None:
    payload = ev(
        1,
        event="rating",
        value=4,
        idempotency_key="k-1",
        occurred_at="2026-01-02T03:04:05Z",
        context={"page": "home"},
    )
    first = api.post("/api/v1/events/", payload, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["status"] == "created"
    assert body["event"]["item_id"] == "i1" and body["event"]["customer_id"] == "c1"
    again = api.post("/api/v1/events/", {**payload, "value": 5}, format="json")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["event"] == body["event"]  # the first result, not the retry's values
    assert Interaction.objects.count() == 1


def test_anonymous_session_event(api, catalog) -> None:
    response = api.post(
        "/api/v1/events/", {"item_id": "i2", "session_id": "s-9", "event": "click"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["event"]["customer_id"] is None
    assert Interaction.objects.get().session_id == "s-9"


def test_same_batch_twice_is_stored_once(api, catalog) -> None:
    batch = {"events": [ev(n, idempotency_key=f"b-{n}") for n in range(200)]}
    first = api.post("/api/v1/events/", batch, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["created"] == 200 and first.json()["duplicates"] == 0
    second = api.post("/api/v1/events/", batch, format="json")
    assert second.status_code == 200
    assert second.json()["created"] == 0 and second.json()["duplicates"] == 200
    ids_first = [r["id"] for r in first.json()["results"]]
    assert [r["id"] for r in second.json()["results"]] == ids_first
    assert Interaction.objects.count() == 200


def test_repeated_key_inside_one_batch(api, catalog) -> None:
    batch = {"events": [ev(1, idempotency_key="same"), ev(2, idempotency_key="same")]}
    body = api.post("/api/v1/events/", batch, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "duplicate"]
    assert body["results"][0]["id"] == body["results"][1]["id"]
    assert Interaction.objects.count() == 1


def test_batch_reports_bad_events_and_keeps_good_ones(api, catalog) -> None:
    batch = {
        "events": [
            ev(0),
            ev(1, item_id="missing"),
            ev(2, customer_id="ghost"),
            ev(3, event="teleport"),
            {"item_id": "i1", "event": "view"},
            ev(4, value="lots"),
            "not an object",
            ev(1, event="rating", value=9),
            ev(2, occurred_at="2999-01-01T00:00:00Z"),
            ev(3, context={"x": "nul\x00"}),
            ev(4, idempotency_key="ok-1"),
        ]
    }
    response = api.post("/api/v1/events/", batch, format="json")
    assert response.status_code == 207, response.content
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created"] + ["rejected"] * 9 + ["created"]
    errors = [r["errors"] for r in body["results"]]
    assert "missing" in errors[1]["item_id"][0]
    assert "ghost" in errors[2]["customer_id"][0]
    assert "event" in errors[3] and "customer_id" in errors[4] and "value" in errors[5]
    assert "event" in errors[6] and "value" in errors[7] and "occurred_at" in errors[8]
    assert "context" in errors[9]
    assert body["created"] == 2 and body["rejected"] == 9
    assert Interaction.objects.count() == 2


def test_all_rejected_is_400(api, catalog) -> None:
    response = api.post("/api/v1/events/", {"events": [ev(1, item_id="nope")]}, format="json")
    assert response.status_code == 400
    assert response.json()["rejected"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": "many"},
        [ev(1)],
        {"event": "view"},
    ],
)
def test_malformed_bodies_are_400(api, catalog, body) -> None:
    assert api.post("/api/v1/events/", body, format="json").status_code == 400
    assert not Interaction.objects.exists()


def test_batch_limit(api, catalog) -> None:
    response = api.post("/api/v1/events/", {"events": [ev(n) for n in range(1001)]}, format="json")
    assert response.status_code == 400 and "1000" in str(response.json()["events"])
    ok = api.post("/api/v1/events/", {"events": [ev(n) for n in range(1000)]}, format="json")
    assert ok.status_code == 200 and ok.json()["created"] == 1000


def test_events_need_auth(anon, client_for, catalog) -> None:
    assert anon.post("/api/v1/events/", ev(1), format="json").status_code == 401
    assert client_for().post("/api/v1/events/", ev(1), format="json").status_code == 403
    tracker = client_for("add_interaction", username="tracker")
    assert tracker.post("/api/v1/events/", ev(1), format="json").status_code == 201


def test_unknown_customers_can_be_created_on_the_fly(api, catalog, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "EVENTS_CREATE_UNKNOWN_CUSTOMERS": True}
    response = api.post("/api/v1/events/", ev(1, customer_id="newbie"), format="json")
    assert response.status_code == 201
    assert Customer.objects.filter(external_id="newbie").exists()


def test_events_refresh_item_stats_after_commit(
    api, catalog, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        api.post(
            "/api/v1/events/",
            {
                "events": [
                    ev(1),
                    ev(1, event="purchase"),
                    ev(1, event="rating", value=5),
                    ev(2, event="cart"),
                ]
            },
            format="json",
        )
    assert callbacks, "the stats refresh is queued on commit"
    stats = ItemStats.objects.get(item__external_id="i1")
    assert (stats.views, stats.purchases, stats.ratings) == (1, 1, 1)
    assert stats.score == pytest.approx(1 + 8 + 3)
    assert ItemStats.objects.get(item__external_id="i2").carts == 1
