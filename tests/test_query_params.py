"""The serving endpoints parse their query parameters without a DRF serializer when they are
plainly valid: every case must give exactly what the serializer gives, and every bad value the
serializer's 400 naming the parameter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.http import QueryDict
from rest_framework.exceptions import ValidationError

from shop_recs.api import query as q
from shop_recs.api import serializers as s
from shop_recs.api.views.lists import SEARCH_FIELDS, SIMILAR_FIELDS

CASES = [
    "",
    "k=5",
    "k=1&k=7",  # the last value counts, as for the serializer
    "k=007",
    "k= 12 ",
    "k=100",
    "k=101",
    "k=0",
    "k=-3",
    "k=5.0",
    "k=+5",
    "k=1e1",
    "k=abc",
    "k=",
    "space=text",
    "space=hybrid&k=3",
    "space=Text",
    "space=colour",
    "space=",
    "category=Shoes",
    "category=%20Shoes%20",
    "category=",
    "category=%20%20",
    "category=" + "x" * 200,
    "category=" + "x" * 201,
    "brand=Acme&category=Bags",
    "in_stock=false",
    "in_stock=0",
    "in_stock=no",
    "in_stock=TRUE",
    "in_stock=on",
    "in_stock=yes&in_stock=off",
    "in_stock=maybe",
    "in_stock=",
    "in_stock=null",
    "price_min=5",
    "price_min=5.5&price_max=10.25",
    "price_min=0.125",
    "price_min=-3",
    "price_min=12345678901",
    "price_min=1234567890",
    "price_min=1e3",
    "price_min=NaN",
    "price_min=Infinity",
    "price_min=%205.10%20",
    "price_min=+5",
    "price_min=",
    "price_max=abc",
    "exclude=a,b,,%20c%20",
    "exclude=,,",
    "exclude=" + ",".join(["id"] * 600),
    "exclude=",
    "unknown=1",
    "k=3&utm_source=mail",
    "category=%00x",
    "category=\ud800",
]


def _serializer(cls: type, data: QueryDict) -> tuple[str, object]:
    ser = cls(data=data)
    if ser.is_valid():
        return "ok", dict(ser.validated_data)
    return "error", ser.errors


@pytest.mark.parametrize("query", CASES)
@pytest.mark.parametrize(
    ("serializer", "fields", "defaults", "required"),
    [
        (s.SimilarQuerySerializer, SIMILAR_FIELDS, q.FILTER_DEFAULTS, ()),
        (
            s.RecommendationQuerySerializer,
            {**q.FILTERS, "include_purchased": q.boolean},
            {**q.FILTER_DEFAULTS, "include_purchased": False},
            (),
        ),
    ],
)
def test_direct_parsing_agrees_with_the_serializer(
    query, serializer, fields, defaults, required
) -> None:
    data = QueryDict(query)
    expected = _serializer(serializer, data)
    fast = q.fast_values(data, fields, defaults, required)
    if fast is not None:
        # whatever the fast path accepts, the serializer accepts with the same values
        assert expected == ("ok", fast), query
    request = type("R", (), {"query_params": data})()
    if expected[0] == "ok":
        assert q.query_values(request, serializer, fields, defaults, required) == expected[1]
    else:
        with pytest.raises(ValidationError) as raised:
            q.query_values(request, serializer, fields, defaults, required)
        assert raised.value.detail == expected[1]


def test_the_common_requests_take_the_direct_path() -> None:
    for query in ("", "k=5", "space=text&k=10", "category=Shoes&in_stock=false&exclude=a,b",
                  "price_min=5&price_max=10.5"):  # fmt: skip
        assert q.fast_values(QueryDict(query), SIMILAR_FIELDS, q.FILTER_DEFAULTS) is not None
    values = q.fast_values(
        QueryDict("k=4&price_min=5&exclude=a,%20b"), SIMILAR_FIELDS, q.FILTER_DEFAULTS
    )
    assert values == {"k": 4, "in_stock": True, "price_min": Decimal("5.00"), "exclude": ["a", "b"]}
    # search needs its text: without it the serializer answers
    assert q.fast_values(QueryDict("k=3"), SEARCH_FIELDS, q.FILTER_DEFAULTS, ("q",)) is None
    assert (
        q.fast_values(QueryDict("q=%20red%20boots"), SEARCH_FIELDS, q.FILTER_DEFAULTS, ("q",))["q"]
        == "red boots"
    )


@pytest.mark.django_db
def test_bad_parameters_are_a_400_naming_them(client) -> None:
    from shop_recs.catalog.models import Item

    Item.objects.create(external_id="p1", title="P")
    for query, field in [
        ("k=0", "k"),
        ("k=abc", "k"),
        ("space=colour", "space"),
        ("in_stock=maybe", "in_stock"),
        ("price_min=1e400", "price_min"),
        ("category=%20", "category"),
    ]:
        response = client.get(f"/api/v1/items/p1/similar/?{query}")
        assert response.status_code == 400, (query, response.content)
        assert field in response.json(), (query, response.json())
    response = client.get("/api/v1/search/?k=2")
    assert response.status_code == 400 and "q" in response.json()
