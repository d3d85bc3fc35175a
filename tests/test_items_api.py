"""Items over REST: happy paths, filters, auth, and bad input that must be 4xx, never 500."""

from __future__ import annotations

import pytest

from shop_recs.catalog.models import Item

pytestmark = pytest.mark.django_db

ITEM = {
    "external_id": "sku-1",
    "title": "Linen shirt",
    "description": "Relaxed fit",
    "category": "Shirts",
    "brand": "Nordhavn",
    "price": "39.90",
    "attributes": {"material": "linen"},
}


def create(api, **overrides):
    response = api.post("/api/v1/items/", {**ITEM, **overrides}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_retrieve_update_delete(api, anon) -> None:
    body = create(api)
    assert body["external_id"] == "sku-1"
    assert body["price"] == 39.9
    assert body["in_stock"] is True and body["is_active"] is True

    got = anon.get("/api/v1/items/sku-1/")
    assert got.status_code == 200
    assert got.json()["attributes"] == {"material": "linen"}

    patched = api.patch(
        "/api/v1/items/sku-1/", {"price": "35.00", "in_stock": False}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["price"] == 35.0 and patched.json()["in_stock"] is False
    assert Item.objects.get(external_id="sku-1").title == "Linen shirt"

    put = api.put("/api/v1/items/sku-1/", {"title": "Linen shirt II"}, format="json")
    assert put.status_code == 200
    assert put.json()["title"] == "Linen shirt II"

    # DELETE deactivates (history is kept: see test_hardening's item 4)
    assert api.delete("/api/v1/items/sku-1/").status_code == 204
    assert anon.get("/api/v1/items/sku-1/").json()["is_active"] is False
    assert Item.objects.get(external_id="sku-1").is_active is False


def test_list_filters_and_pagination(api, anon) -> None:
    for i in range(7):
        create(
            api,
            external_id=f"sku-{i}",
            category="Shirts" if i % 2 else "Bags",
            brand="A" if i < 3 else "B",
            price=str(10 + i),
            in_stock=i != 4,
        )
    page = anon.get("/api/v1/items/?page_size=3").json()
    assert page["count"] == 7 and len(page["results"]) == 3 and page["next"]
    ids = lambda r: [x["external_id"] for x in r.json()["results"]]  # noqa: E731
    assert ids(anon.get("/api/v1/items/?category=Bags")) == ["sku-0", "sku-2", "sku-4", "sku-6"]
    assert ids(anon.get("/api/v1/items/?brand=A&category=Shirts")) == ["sku-1"]
    assert ids(anon.get("/api/v1/items/?price_min=12&price_max=14")) == ["sku-2", "sku-3", "sku-4"]
    assert "sku-4" not in ids(anon.get("/api/v1/items/?in_stock=true"))
    assert ids(anon.get("/api/v1/items/?updated_since=2100-01-01T00:00:00Z")) == []
    assert len(ids(anon.get("/api/v1/items/?updated_since=2000-01-01T00:00:00Z"))) == 7


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("price_min=abc", "price_min"),
        ("updated_since=yesterday", "updated_since"),
        ("category=%00", "category"),
    ],
)
def test_list_bad_filters_are_400(anon, query, field) -> None:
    response = anon.get(f"/api/v1/items/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_invalid_page_is_404(anon) -> None:
    assert anon.get("/api/v1/items/?page=99").status_code == 404


def test_anonymous_and_unprivileged_writes_refused(anon, client_for) -> None:
    assert anon.post("/api/v1/items/", ITEM, format="json").status_code == 401
    reader = client_for("view_item", username="reader")
    assert reader.post("/api/v1/items/", ITEM, format="json").status_code == 403
    writer = client_for("add_item")
    assert writer.post("/api/v1/items/", ITEM, format="json").status_code == 201
    assert writer.delete("/api/v1/items/sku-1/").status_code == 403
    assert anon.delete("/api/v1/items/sku-1/").status_code == 401
    assert Item.objects.count() == 1


def test_reads_can_require_a_token(anon, api, settings) -> None:
    create(api)
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_REQUIRES_AUTH": True}
    assert anon.get("/api/v1/items/").status_code == 401
    assert api.get("/api/v1/items/").status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "x"}, "external_id"),
        ({"external_id": "a"}, "title"),
        ({**ITEM, "price": "cheap"}, "price"),
        ({**ITEM, "price": -1}, "price"),
        ({**ITEM, "price": "1e20"}, "price"),
        ({**ITEM, "in_stock": "perhaps"}, "in_stock"),
        ({**ITEM, "title": "a\x00b"}, "title"),
        ({**ITEM, "title": "x" * 501}, "title"),
        ({**ITEM, "external_id": "has space"}, "external_id"),
        ({**ITEM, "external_id": "a/b"}, "external_id"),
        ({**ITEM, "external_id": "x" * 256}, "external_id"),
        ({**ITEM, "attributes": ["not", "an", "object"]}, "attributes"),
        ({**ITEM, "attributes": {"k": "nul\x00"}}, "attributes"),
        ({**ITEM, "attributes": {"k\x00": 1}}, "attributes"),
        ({**ITEM, "attributes": {"blob": "x" * 70000}}, "attributes"),
    ],
)
def test_create_bad_input_is_400_naming_the_field(api, payload, field) -> None:
    response = api.post("/api/v1/items/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Item.objects.exists()


def test_duplicate_external_id_is_409(api) -> None:
    create(api)
    response = api.post("/api/v1/items/", ITEM, format="json")
    assert response.status_code == 409
    assert "sku-1" in response.json()["detail"]


def test_malformed_json_and_oversized_bodies(api, settings) -> None:
    bad = api.post("/api/v1/items/", "{not json", content_type="application/json")
    assert bad.status_code == 400 and "JSON" in bad.json()["detail"]
    nan = api.post(
        "/api/v1/items/",
        '{"external_id": "a", "title": "t", "price": NaN}',
        content_type="application/json",
    )
    assert nan.status_code == 400
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MAX_JSON_BODY_BYTES": 1000}
    big = api.post("/api/v1/items/", {**ITEM, "description": "x" * 5000}, format="json")
    assert big.status_code == 413
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MAX_REQUEST_BYTES": 100}
    huge = api.post("/api/v1/items/", {**ITEM, "description": "x" * 500}, format="json")
    assert huge.status_code == 413 and "too large" in huge.json()["detail"]
    assert not Item.objects.exists()


def test_update_bad_input_keeps_item(api) -> None:
    create(api)
    response = api.patch("/api/v1/items/sku-1/", {"price": "abc", "title": ""}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"price", "title"}
    assert str(Item.objects.get().price) == "39.90"
    assert api.patch("/api/v1/items/nope/", {"title": "x"}, format="json").status_code == 404


def test_weird_path_ids_are_404(anon) -> None:
    assert anon.get("/api/v1/items/%00/").status_code == 404
    assert anon.get(f"/api/v1/items/{'x' * 300}/").status_code == 404
