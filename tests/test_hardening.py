"""Issue 14: inputs that used to give a 500, leak, or lose history through the API.

Each test names the item of the issue it guards; every one failed before the fix.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from shop_recs.catalog.models import Customer, Interaction, Item
from shop_recs.storefront.tracking import SESSION_ID_KEY
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db

SURROGATE = "\ud800"


@pytest.fixture
def catalog(db):
    Item.objects.bulk_create([Item(external_id=f"i{n}", title=f"Item {n}") for n in range(3)])
    Customer.objects.create(external_id="c1")


def post_json(client, path: str, body: object, **extra: object):
    """A raw JSON body: ``json.dumps`` writes a lone surrogate as the escape ``\\ud800``, the
    way a client's JSON library does."""
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


# ---------------------------------------------------------------- 1. lone surrogates


def test_item1_a_lone_surrogate_in_one_event_rejects_that_event_only(api, catalog) -> None:
    events = [
        {"item_id": "i0", "customer_id": "c1", "event": "view", "idempotency_key": "a"},
        {"item_id": "i1", "customer_id": "c1", "event": "view", "context": {"k": SURROGATE}},
        {"item_id": "i1", "customer_id": "c1", "event": "view", "context": {SURROGATE: 1}},
        {"item_id": SURROGATE, "customer_id": "c1", "event": "view"},
        {"item_id": "i2", "customer_id": "c1", "event": "cart", "idempotency_key": "b"},
    ]
    response = post_json(api, "/api/v1/events/", {"events": events})
    assert response.status_code == 207, response.content
    body = response.json()
    assert [r["status"] for r in body["results"]] == [
        "created",
        "rejected",
        "rejected",
        "rejected",
        "created",
    ]
    assert "surrogate" in json.dumps(body["results"][1]["errors"]["context"]).lower()
    assert "item_id" in body["results"][3]["errors"]
    assert Interaction.objects.count() == 2
    # the retry stores nothing more and still answers cleanly
    again = post_json(api, "/api/v1/events/", {"events": events})
    assert again.status_code == 207 and again.json()["duplicates"] == 2


ITEM = {"external_id": "x", "title": "T"}
EVENT = {"item_id": "i0", "customer_id": "c1", "event": "view"}
CUSTOMER = {"external_id": "c9", "attributes": {"a": [SURROGATE]}}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/items/", {**ITEM, "attributes": {"a": SURROGATE}}, "attributes"),
        ("/api/v1/items/", {**ITEM, "attributes": {SURROGATE: "a"}}, "attributes"),
        ("/api/v1/items/", {**ITEM, "title": f"T{SURROGATE}"}, "title"),
        ("/api/v1/customers/", CUSTOMER, "attributes"),
        ("/api/v1/events/", {**EVENT, "context": {"a": SURROGATE}}, "context"),
    ],
)
def test_item1_a_lone_surrogate_anywhere_is_400_naming_the_field(
    api, catalog, path, body, field
) -> None:
    response = post_json(api, path, body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Item.objects.filter(external_id="x").exists()


# ---------------------------------------------------------------- 2. deep nesting


@pytest.mark.parametrize("path", ["/api/v1/recommendations/", "/api/v1/track/", "/api/v1/events/"])
@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_item2_deeply_nested_json_is_400(anon, api, path, depth) -> None:
    client = api if path == "/api/v1/events/" else anon
    raw = '{"k": ' * depth + "1" + "}" * depth
    response = client.post(path, raw, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested" in response.json()["detail"].lower()
    listed = "[" * depth + "]" * depth
    response = client.post(path, listed, content_type="application/json")
    assert response.status_code == 400


# ---------------------------------------------------------------- 6. big form bodies


def test_item6_large_form_and_multipart_bodies_get_json_errors(api, catalog, settings) -> None:
    # 5-25 MB: above Django's DATA_UPLOAD_MAX_MEMORY_SIZE, below the plugin's request cap
    big = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)
    form = api.post(
        "/api/v1/items/i0/images/",
        f"position=1&junk={big}",
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code in (413, 415), form.content[:300]
    assert form["Content-Type"] == "application/json"
    multipart = api.post(
        "/api/v1/items/i0/images/",
        {"file": SimpleUploadedFile("a.png", image_bytes()), "junk": big},
        format="multipart",
    )
    assert multipart.status_code == 413, multipart.content[:300]
    assert multipart["Content-Type"] == "application/json"
    assert "bytes" in multipart.json()["detail"]
    many = api.post(
        "/api/v1/items/i0/images/",
        {"file": SimpleUploadedFile("a.png", image_bytes()), **{f"f{i}": "1" for i in range(1100)}},
        format="multipart",
    )
    assert many.status_code == 400 and many["Content-Type"] == "application/json"


# ---------------------------------------------------------------- 7. database errors


@pytest.mark.parametrize(
    "query",
    [
        "updated_since=3846-08-07T14:02:34-23:36",
        "updated_since=0001-01-01T00:00:00%2B01:00",
        "updated_since=9999-12-31T23:59:59-10:00",
    ],
)
def test_item7_no_database_error_text_reaches_the_client(anon, catalog, query) -> None:
    response = anon.get(f"/api/v1/items/?{query}")
    assert response.status_code in (200, 400), response.content
    text = response.content.decode()
    assert "LINE 1" not in text and "SELECT" not in text and "out of range" not in text.lower()


def test_item7_far_offsets_are_converted_not_sent_to_the_database(anon, catalog) -> None:
    response = anon.get("/api/v1/items/?updated_since=3846-08-07T14:02:34-23:36")
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


# ---------------------------------------------------------------- 8. session history


@pytest.fixture
def session_history(catalog):
    Interaction.objects.create(
        session_id="s-secret",
        item=Item.objects.get(external_id="i0"),
        event="purchase",
        occurred_at="2026-01-01T00:00:00Z",
    )


def test_item8_a_bare_session_id_reads_no_history(anon, session_history) -> None:
    response = anon.post(
        "/api/v1/recommendations/", {"session_id": "s-secret", "k": 3}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "session_id" in response.json()
    assert "i0" not in response.content.decode()


def test_item8_the_browser_holding_the_session_gets_its_history(client, session_history) -> None:
    session = client.session
    session[SESSION_ID_KEY] = "s-secret"
    session.save()
    response = client.post("/api/v1/recommendations/", {"k": 3}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["history"] == ["i0"]
    # naming its own session id is fine too
    response = client.post(
        "/api/v1/recommendations/", {"session_id": "s-secret"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["history"] == ["i0"]


def test_item8_a_signed_session_id_is_honoured(anon, session_history) -> None:
    from shop_recs.storefront.tracking import signed_session_id

    token = signed_session_id("s-secret")
    assert token != "s-secret"
    response = anon.post("/api/v1/recommendations/", {"session_id": token}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["history"] == ["i0"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (
        anon.post("/api/v1/recommendations/", {"session_id": forged}, format="json").status_code
        == 400
    )


def test_item8_a_token_allowed_to_read_interactions_may_name_any_session(
    client_for, session_history
) -> None:
    client = client_for("view_interaction")
    response = client.post("/api/v1/recommendations/", {"session_id": "s-secret"}, format="json")
    assert response.status_code == 200 and response.json()["history"] == ["i0"]
    other = client_for(username="nobody")
    assert (
        other.post("/api/v1/recommendations/", {"session_id": "s-secret"}, format="json")
    ).status_code == 400


# ---------------------------------------------------------------- 10. schema vs behaviour


def test_item10_bad_list_filters_are_400(anon, catalog) -> None:
    for query, field in (
        ("in_stock=maybe", "in_stock"),
        ("is_active=2", "is_active"),
        ("updated_since=", "updated_since"),
        ("updated_since=2026-01-01T00:00:00", "updated_since"),  # no time zone
        ("price_min=cheap", "price_min"),
    ):
        response = anon.get(f"/api/v1/items/?{query}")
        assert response.status_code == 400, (query, response.content)
        assert field in response.json(), (query, response.json())
    assert anon.get("/api/v1/items/?in_stock=true&is_active=false").status_code == 200


def test_item10_timestamps_need_a_time_zone_and_a_plausible_year(api, catalog) -> None:
    for occurred_at in ("2026-01-01T00:00:00", "0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z"):
        response = api.post(
            "/api/v1/events/",
            {"item_id": "i0", "customer_id": "c1", "event": "view", "occurred_at": occurred_at},
            format="json",
        )
        assert response.status_code == 400, (occurred_at, response.content)
        assert "occurred_at" in response.json()
    assert not Interaction.objects.exists()


def test_item10_null_values_inside_attributes_are_accepted(api) -> None:
    response = api.post(
        "/api/v1/items/",
        {"external_id": "n1", "title": "Null attr", "attributes": {"colour": None, "x": [None]}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["attributes"] == {"colour": None, "x": [None]}


def test_item10_error_messages_never_show_python_reprs(api, catalog) -> None:
    response = api.post(
        "/api/v1/items/i0/images/",
        {"file": SimpleUploadedFile("a.png", image_bytes()), "position": "x"},
        format="multipart",
    )
    assert response.status_code == 400
    response = api.post(
        "/api/v1/items/i0/images/",
        {"file": SimpleUploadedFile("a.txt", b"hello")},
        format="multipart",
    )
    assert response.status_code == 400 and "Not a valid image" in response.json()["file"][0]
    assert "UploadedFile" not in response.content.decode()
    for path in ("/api/v1/events/", "/api/v1/items/"):
        response = api.post(
            path, {"event": SimpleUploadedFile("a.txt", b"hello")}, format="multipart"
        )
        assert response.status_code in (400, 415), response.content
        assert "UploadedFile" not in response.content.decode()


def test_item10_json_only_endpoints_refuse_forms(api, catalog) -> None:
    response = api.post("/api/v1/events/", {"item_id": "i0"}, format="multipart")
    assert response.status_code == 415
    response = api.post(
        "/api/v1/items/", "external_id=x&title=y", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


def test_item10_schema_declares_limits_auth_and_media_types(anon) -> None:
    schema = anon.get("/api/v1/schema/?format=json").json()
    paths = schema["paths"]
    for path, method in (
        ("/api/v1/items/{external_id}/similar/", "get"),
        ("/api/v1/search/", "get"),
        ("/api/v1/customers/{external_id}/recommendations/", "get"),
    ):
        (k,) = [p for p in paths[path][method]["parameters"] if p["name"] == "k"]
        assert k["schema"]["maximum"] == 100, (path, k)
    body = paths["/api/v1/recommendations/"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/json"}
    request_schema = schema["components"]["schemas"]["RecommendationRequestRequest"]
    assert request_schema["properties"]["k"]["maximum"] == 100
    for path in ("/api/v1/items/", "/api/v1/events/", "/api/v1/customers/"):
        assert set(paths[path]["post"]["requestBody"]["content"]) == {"application/json"}, path
    images = paths["/api/v1/items/{external_id}/images/"]["post"]["requestBody"]["content"]
    assert set(images) == {"application/json", "multipart/form-data"}
    # public reads may be called without credentials; writes may not
    for path, method in (
        ("/api/v1/items/", "get"),
        ("/api/v1/items/{external_id}/similar/", "get"),
        ("/api/v1/search/", "get"),
        ("/api/v1/recommendations/", "post"),
    ):
        assert {} in paths[path][method]["security"], (path, method)
    assert {} not in paths["/api/v1/items/"]["post"]["security"]
    assert {} not in paths["/api/v1/customers/{external_id}/"]["get"]["security"]


# ---------------------------------------------------------------- 4. deleting items keeps history


def test_item4_delete_deactivates_the_item_and_keeps_its_history(api, anon, catalog) -> None:
    item = Item.objects.get(external_id="i0")
    for n in range(5):
        Interaction.objects.create(
            customer=Customer.objects.get(external_id="c1"),
            item=item,
            event="view",
            occurred_at=f"2026-01-0{n + 1}T00:00:00Z",
        )
    assert api.delete("/api/v1/items/i0/").status_code == 204
    item.refresh_from_db()
    assert item.is_active is False
    assert Interaction.objects.filter(item=item).count() == 5
    assert anon.get("/api/v1/items/i0/").json()["is_active"] is False
    assert api.delete("/api/v1/items/i0/").status_code == 204  # idempotent
    assert Interaction.objects.filter(item=item).count() == 5
    # restoring is a write of is_active, not a re-create
    assert api.patch("/api/v1/items/i0/", {"is_active": True}, format="json").status_code == 200


# ---------------------------------------------------------------- 11. k above pgvector's ef limit


@pytest.fixture
def vectors_shop(db):
    """40 items with content vectors (no encoders), two customers with events."""
    import numpy as np

    from tests.conftest import write_vector

    rng = np.random.default_rng(0)
    items = Item.objects.bulk_create(
        [Item(external_id=f"v{n}", title=f"Vector item {n}") for n in range(40)]
    )
    for item in items:
        write_vector(item, "content", rng.normal(size=8).astype(float).tolist())
    for c in ("c1", "c2"):
        customer = Customer.objects.create(external_id=c)
        for item in items[:3]:
            Interaction.objects.create(
                customer=customer, item=item, event="view", occurred_at="2026-01-01T00:00:00Z"
            )
    return items


@pytest.mark.parametrize("k", [499, 600, 1000, 1500])
def test_item11_k_above_ef_search_limit_ranks_every_match(vectors_shop, k, settings) -> None:
    from shop_recs.catalog.vectors import ensure_index
    from shop_recs.search.knn import vector_search
    from shop_recs.search.types import SimilarFilters, StoredVector

    ensure_index("content", 8)
    query = StoredVector(item_id=vectors_shop[0].pk, dim=8)
    results = vector_search(
        space="content",
        query=query,
        k=k,
        filters=SimilarFilters(),
        exclude_item_ids=[vectors_shop[0].pk],
    )
    assert len(results) == 39
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)


# ---------------------------------------------------------------- 4. erasing a customer


@pytest.fixture
def two_shoppers(catalog, django_user_model):
    from django.utils import timezone

    items = list(Item.objects.order_by("pk"))
    alice = Customer.objects.create(
        external_id="alice",
        attributes={"email": "a@example.com"},
        user=django_user_model.objects.create_user("alice-user"),
    )
    bob = Customer.objects.get(external_id="c1")
    now = timezone.now()
    for item in items:
        Interaction.objects.create(
            customer=alice, session_id="s-a", item=item, event="view", occurred_at=now
        )
        Interaction.objects.create(
            customer=bob, session_id="s-b", item=item, event="view", occurred_at=now
        )
    # alice's browser before she logged in, and a stranger's session
    Interaction.objects.create(session_id="s-a", item=items[0], event="cart", occurred_at=now)
    Interaction.objects.create(session_id="s-x", item=items[0], event="cart", occurred_at=now)
    return alice, bob


def test_item4_purge_erases_one_customer_and_logs_it(two_shoppers, caplog) -> None:
    from shop_recs.catalog.models import ItemStats
    from shop_recs.catalog.services import customer_purge, item_stats_refresh

    alice, bob = two_shoppers
    item_stats_refresh()
    dry = customer_purge(customer=alice, dry_run=True)
    assert (dry.interactions, dry.sessions, dry.items) == (4, 1, 3)
    assert Interaction.objects.count() == 8  # the dry run deleted nothing
    with caplog.at_level("WARNING", logger="shop_recs.erasure"):
        report = customer_purge(customer=alice, by="test")
    assert report == dry
    assert not Customer.objects.filter(external_id="alice").exists()
    assert Interaction.objects.filter(customer=bob).count() == 3  # others untouched
    assert Interaction.objects.filter(session_id="s-x").count() == 1
    assert not Interaction.objects.filter(session_id="s-a").exists()
    assert "alice" in caplog.text and "by test" in caplog.text
    item_stats_refresh()
    assert ItemStats.objects.get(item__external_id="i0").views == 1  # bob's only


def test_item4_purge_command(two_shoppers) -> None:
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = io.StringIO()
    call_command("recs_purge_customer", "alice", "--dry-run", stdout=out)
    assert "Would erase customer 'alice': 4 interactions" in out.getvalue()
    assert Customer.objects.filter(external_id="alice").exists()
    call_command("recs_purge_customer", "alice", stdout=out)
    assert "Erased customer 'alice'" in out.getvalue()
    assert not Interaction.objects.filter(session_id="s-a").exists()
    with pytest.raises(CommandError, match="No customer"):
        call_command("recs_purge_customer", "alice", stdout=out)


def test_item4_purge_admin_action_confirms_first_and_needs_delete(
    client, admin_user, two_shoppers, django_user_model
) -> None:
    from django.contrib.auth.models import Permission

    alice, _ = two_shoppers
    url = "/admin/shop_recs_catalog/customer/"
    data = {"action": "purge_personal_data", "_selected_action": [alice.pk]}
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(viewer)
    page = client.get(url)
    assert b"purge_personal_data" not in page.content  # no delete permission, no action
    client.force_login(admin_user)
    page = client.post(url, data)
    assert page.status_code == 200 and b"Yes, erase" in page.content
    assert b"4 interactions" in page.content
    assert Customer.objects.filter(pk=alice.pk).exists()  # only asked so far
    done = client.post(url, {**data, "confirm": "yes"}, follow=True)
    assert b"Erased 1 customer(s) and 4 events" in done.content
    assert not Customer.objects.filter(pk=alice.pk).exists()
