from __future__ import annotations

import pytest

from shop_recs.catalog.models import Customer

pytestmark = pytest.mark.django_db


def test_create_and_retrieve(api) -> None:
    response = api.post(
        "/api/v1/customers/", {"external_id": "c-1", "attributes": {"tier": "gold"}}, format="json"
    )
    assert response.status_code == 201, response.content
    got = api.get("/api/v1/customers/c-1/")
    assert got.status_code == 200 and got.json()["attributes"] == {"tier": "gold"}
    assert api.get("/api/v1/customers/c-2/").status_code == 404


def test_duplicate_and_bad_input(api) -> None:
    assert api.post("/api/v1/customers/", {"external_id": "c-1"}, format="json").status_code == 201
    dup = api.post("/api/v1/customers/", {"external_id": "c-1"}, format="json")
    assert dup.status_code == 409
    for payload, field in [
        ({}, "external_id"),
        ({"external_id": "a b"}, "external_id"),
        ({"external_id": "c-3", "attributes": "gold"}, "attributes"),
        ({"external_id": "c-3", "attributes": {"x": "\x00"}}, "attributes"),
    ]:
        response = api.post("/api/v1/customers/", payload, format="json")
        assert response.status_code == 400 and field in response.json(), payload
    assert Customer.objects.count() == 1


def test_customer_data_is_private(anon, api, client_for) -> None:
    api.post("/api/v1/customers/", {"external_id": "c-1"}, format="json")
    assert anon.get("/api/v1/customers/c-1/").status_code == 401
    assert anon.post("/api/v1/customers/", {"external_id": "c-2"}, format="json").status_code == 401
    nobody = client_for()
    assert nobody.get("/api/v1/customers/c-1/").status_code == 403
    viewer = client_for("view_customer", username="viewer")
    assert viewer.get("/api/v1/customers/c-1/").status_code == 200
