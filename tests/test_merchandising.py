"""Merchandising rules at serve time: pin, boost, bury and exclude in similar items, search and
recommendations (selectors, REST and the admin), on real PostgreSQL + pgvector.

Items get small hand-made vectors in the ``content`` space (no encoder runs): the query item
``q`` lies at angle 0 and ``a1..a8`` (Shirts) at 3..44 degrees, ``b1..b3`` (Boots) at 60..70, so
the plain similar list of ``q`` is a1, a2, a3, ... (uneven steps: no ties between neighbours).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shop_recs.catalog import services
from shop_recs.catalog.models import Customer, Interaction, Item, MerchRule
from shop_recs.ranking import merchandising
from shop_recs.ranking.recommend import recommendations
from shop_recs.ranking.similar import item_similar, items_search
from shop_recs.search.types import SimilarFilters
from tests.conftest import write_vector

pytestmark = pytest.mark.django_db

ANGLES = {"a1": 3, "a2": 9, "a3": 14, "a4": 20, "a5": 27, "a6": 33, "a7": 38, "a8": 44}
ANGLES |= {"b1": 60, "b2": 65, "b3": 70}


def _vec(angle: float) -> list[float]:
    rad = math.radians(angle)
    return [math.cos(rad), math.sin(rad), 0.0]


def _item(ext: str, angle: float | None, *, category: str, brand: str, **fields: Any) -> Item:
    item = Item.objects.create(
        external_id=ext, title=ext.upper(), category=category, brand=brand, **fields
    )
    if angle is not None:
        write_vector(item, "content", _vec(angle), encoder="test", content_hash=ext)
    return item


@pytest.fixture(autouse=True)
def _no_rule_cache(settings):
    """Rules are read on every call here; the cache is emptied after each test (its rules are
    rolled back with the test's transaction)."""
    settings.SHOP_RECS = {**settings.SHOP_RECS, "RULES_CACHE_SECONDS": 0}
    yield
    merchandising.clear_cache()


@pytest.fixture
def shop() -> dict[str, Item]:
    items = {"q": _item("q", 0, category="Shirts", brand="Acme")}
    for ext, angle in ANGLES.items():
        shirts = ext.startswith("a")
        odd = int(ext[1:]) % 2 == 1
        items[ext] = _item(
            ext,
            angle,
            category="Shirts" if shirts else "Boots",
            brand="Acme" if shirts and odd else "Bolt",
        )
    items["oos"] = _item("oos", 2, category="Shirts", brand="Acme", in_stock=False)
    items["new"] = _item("new", None, category="Shirts", brand="Acme")  # not encoded yet
    return items


def rule(name: str = "rule", **fields: Any) -> MerchRule:
    """A validated, saved rule (the same service the admin uses)."""
    if fields.get("target_item") is not None:
        fields.setdefault("target", MerchRule.Target.ITEM)
    return services.merch_rule_save(rule=MerchRule(name=name, **fields))


def pin(item: Item, position: int, name: str = "pin", **fields: Any) -> MerchRule:
    return rule(name, action="pin", target_item=item, position=position, **fields)


def similar(ext: str = "q", k: int = 5, **filters: Any) -> list:
    return item_similar(external_id=ext, space="content", k=k, filters=SimilarFilters(**filters))


def ids(results: list) -> list[str]:
    return [r.item.external_id for r in results]


def expected_order(scores: dict[str, float], factors: dict[str, float], k: int) -> list[str]:
    """The documented boost/bury ranking: min-max normalised to [0.1, 1] times the factors."""
    lo, hi = min(scores.values()), max(scores.values())
    norm = {e: 0.1 + 0.9 * (s - lo) / (hi - lo) for e, s in scores.items()}
    order = sorted(scores, key=lambda e: (-norm[e] * factors.get(e, 1.0), -scores[e]))
    return order[:k]


# --------------------------------------------------------------------------- no rules


def test_no_rules_lists_are_unchanged_and_use_the_same_query(shop) -> None:
    assert ids(similar()) == ["a1", "a2", "a3", "a4", "a5"]
    with CaptureQueriesContext(connection) as plain:
        before = similar()
    # rules that apply elsewhere: another item's list, a disabled one, an expired one
    pin(shop["b3"], 1, context="item", context_item=shop["a1"])
    rule(action="exclude", target="item", target_item=shop["a1"], is_enabled=False)
    rule(
        action="exclude",
        target="category",
        target_value="Shirts",
        ends_at=timezone.now() - timedelta(minutes=1),
    )
    with CaptureQueriesContext(connection) as ruled:
        after = similar()
    assert [(r.item.id, r.score, r.similarity) for r in after] == [
        (r.item.id, r.score, r.similarity) for r in before
    ]
    assert all(r.rules == [] for r in after)
    # the same statements, but for the rule read (its time parameter differs)
    for captured in (plain, ruled):
        assert sum("merchrule" in q["sql"] for q in captured.captured_queries) == 1

    # (savepoint names count up: on pgvector 0.8 the scan runs in a transaction of its own)
    def statements(captured: CaptureQueriesContext) -> list[str]:
        return [
            re.sub(r'"s\d+_x\d+"', '"savepoint"', q["sql"])
            for q in captured.captured_queries
            if "merchrule" not in q["sql"]
        ]

    assert statements(ruled) == statements(plain)


def test_rule_cache_is_one_query_and_cleared_on_save(shop, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "RULES_CACHE_SECONDS": 60}
    assert merchandising.live_rules() == []
    with CaptureQueriesContext(connection) as cached:
        merchandising.live_rules()
    assert len(cached.captured_queries) == 0
    r = pin(shop["b3"], 1)
    assert [x.id for x in merchandising.live_rules()] == [r.pk]  # the save cleared the cache
    assert ids(similar())[0] == "b3"
    r.delete()
    assert merchandising.live_rules() == []


# --------------------------------------------------------------------------- ordering


def test_pin_at_first_and_third_place(shop) -> None:
    r = pin(shop["b3"], 1, name="Boots first")
    results = similar()
    assert ids(results) == ["b3", "a1", "a2", "a3", "a4"]
    assert results[0].rules == [
        {"id": r.pk, "name": "Boots first", "action": "pin", "factor": None, "position": 1}
    ]
    assert results[0].score == pytest.approx(math.cos(math.radians(70)), abs=1e-5)
    assert "content" in results[0].similarity
    assert all(n.rules == [] for n in results[1:])
    r.position = 3
    services.merch_rule_save(rule=r)
    assert ids(similar()) == ["a1", "a2", "b3", "a3", "a4"]


def test_pin_of_an_item_already_in_the_list_moves_it(shop) -> None:
    pin(shop["a2"], 4)
    assert ids(similar()) == ["a1", "a3", "a4", "a2", "a5"]


def test_pin_beyond_the_list_goes_last(shop) -> None:
    pin(shop["b1"], 10)
    assert ids(similar(category="Boots")) == ["b2", "b3", "b1"]
    assert ids(similar(k=3)) == ["a1", "a2", "b1"]


def test_pin_of_an_item_without_vectors_is_inserted_with_score_zero(shop) -> None:
    pin(shop["new"], 2, name="Launch")
    results = similar()
    assert ids(results) == ["a1", "new", "a2", "a3", "a4"]
    assert results[1].score == 0.0 and results[1].rules[0]["name"] == "Launch"


def test_two_pins_on_one_position_higher_priority_then_newer_wins(shop) -> None:
    pin(shop["b1"], 2, name="high", priority=5)
    pin(shop["b2"], 2, name="low", priority=1)
    assert ids(similar()) == ["a1", "b1", "b2", "a2", "a3"]
    MerchRule.objects.all().delete()
    pin(shop["b1"], 2, name="older")
    pin(shop["b2"], 2, name="newer")
    assert ids(similar()) == ["a1", "b2", "b1", "a2", "a3"]


def test_two_rules_pinning_one_item_the_first_decides(shop) -> None:
    pin(shop["b1"], 4, name="low", priority=0)
    high = pin(shop["b1"], 2, name="high", priority=3)
    results = similar()
    assert ids(results) == ["a1", "b1", "a2", "a3", "a4"]
    assert [r["id"] for r in results[1].rules] == [high.pk]


def test_boost_brings_items_from_below_the_top_k(shop) -> None:
    scores = {n.item.external_id: n.score for n in similar(k=20)}
    r = rule("Bolt week", action="boost", target="brand", target_value="Bolt", factor=3.0)
    results = similar()
    bolt = [e for e in scores if e.startswith("b") or int(e[1:]) % 2 == 0]
    assert ids(results) == expected_order(scores, dict.fromkeys(bolt, 3.0), 5)
    assert "a8" in ids(results)  # 8th without the rule
    for n in results:
        hit = n.item.brand == "Bolt"
        assert n.rules == ([{"id": r.pk, "name": "Bolt week", "action": "boost",
                             "factor": 3.0, "position": None}] if hit else [])  # fmt: skip
        assert n.score == scores[n.item.external_id]  # the score stays the similarity


def test_bury_pushes_down_and_boost_and_bury_multiply(shop) -> None:
    scores = {n.item.external_id: n.score for n in similar(k=20)}
    rule("bury a1", action="bury", target="item", target_item=shop["a1"], factor=0.5)
    assert ids(similar()) == expected_order(scores, {"a1": 0.5}, 5)
    assert "a1" not in ids(similar())
    boost = rule("boost Acme", action="boost", target="brand", target_value="Acme", factor=2.0)
    factors = {e: 2.0 for e in ("a1", "a3", "a5", "a7")}
    factors["a1"] = 2.0 * 0.5
    results = similar()
    assert ids(results) == expected_order(scores, factors, 5)
    a1 = next(n for n in similar(k=10) if n.item.external_id == "a1")
    assert {r["action"] for r in a1.rules} == {"boost", "bury"}
    assert boost.pk in {r["id"] for r in a1.rules}


# --------------------------------------------------------------------------- dates


def test_dates_decide_whether_a_rule_applies(shop) -> None:
    now = timezone.now()
    future = pin(shop["b1"], 1, starts_at=now + timedelta(hours=1))
    pin(shop["b2"], 1, ends_at=now - timedelta(seconds=1), starts_at=now - timedelta(days=1))
    assert ids(similar())[0] == "a1"
    window = pin(
        shop["b3"], 1, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    assert ids(similar())[0] == "b3"
    window.delete()
    pin(shop["a5"], 1, starts_at=now - timedelta(hours=1))  # open-ended
    assert ids(similar())[0] == "a5"
    # the date check runs on every use, so a cached rule starts on time
    later = [r.id for r in merchandising.live_rules(now=now + timedelta(hours=2))]
    assert future.pk in later


def test_disabled_rules_are_ignored(shop) -> None:
    pin(shop["b1"], 1, is_enabled=False)
    assert ids(similar())[0] == "a1"


# --------------------------------------------------------------------------- exclusions


def test_exclude_item_brand_and_category_keep_k_results(shop) -> None:
    rule(action="exclude", target="item", target_item=shop["a1"])
    assert ids(similar()) == ["a2", "a3", "a4", "a5", "a6"]
    rule(action="exclude", target="brand", target_value="Bolt")
    assert ids(similar()) == ["a3", "a5", "a7"]  # every Acme item left with a vector
    MerchRule.objects.all().delete()
    rule(action="exclude", target="category", target_value="Shirts")
    assert ids(similar()) == ["b1", "b2", "b3"]


def test_exclude_wins_over_pin(shop) -> None:
    pin(shop["b1"], 1, priority=10)
    rule(action="exclude", target="item", target_item=shop["b1"])
    assert "b1" not in ids(similar(k=20))
    MerchRule.objects.all().delete()
    pin(shop["a4"], 1, priority=10)
    rule(action="exclude", target="brand", target_value="Bolt")
    assert "a4" not in ids(similar(k=20))


# --------------------------------------------------------------------------- filters


def test_pinned_item_must_pass_the_filters(shop) -> None:
    pin(shop["oos"], 3, name="out of stock")
    assert "oos" not in ids(similar())  # in_stock defaults to True
    assert ids(similar(in_stock=None)) == ["a1", "a2", "oos", "a3", "a4"]
    MerchRule.objects.all().delete()
    pin(shop["b1"], 1)
    assert ids(similar(category="Shirts")) == ["a1", "a2", "a3", "a4", "a5"]
    assert "b1" not in ids(similar(exclude=("b1",)))
    assert "b1" not in ids(similar(brand="Acme"))
    assert ids(similar(price_min=1)) == []  # no item has a price


def test_inactive_and_query_items_are_never_pinned(shop) -> None:
    pin(shop["b1"], 1)
    pin(shop["q"], 2)
    assert ids(similar()) == ["b1", "a1", "a2", "a3", "a4"]  # q is never in its own list
    assert ids(similar("a1"))[:2] == ["b1", "q"]
    Item.objects.filter(pk=shop["b1"].pk).update(is_active=False)
    assert "b1" not in ids(similar())


# --------------------------------------------------------------------------- contexts


def test_item_context_applies_to_that_items_similar_list_only(shop) -> None:
    pin(shop["b3"], 1, context="item", context_item=shop["q"])
    assert ids(similar("q"))[0] == "b3"
    assert ids(similar("a1"))[0] == "q"
    query = {"content": np.asarray(_vec(0), dtype=np.float32)}
    assert ids(items_search(query_vectors=query, k=5))[0] == "q"
    assert recommendations(recent_item_ids=["q"], k=5).results[0].item.external_id == "a1"


def test_category_context_applies_to_filters_and_to_items_of_it(shop) -> None:
    pin(shop["new"], 1, context="category", context_category="Shirts")
    assert ids(similar("q"))[0] == "new"  # q is a shirt
    assert "new" not in ids(similar("b1", k=20))  # b1 is a boot
    assert ids(similar("b1", category="Shirts"))[0] == "new"  # the filter names the category
    query = {"content": np.asarray(_vec(0), dtype=np.float32)}
    assert ids(items_search(query_vectors=query, k=5))[0] == "q"
    assert (
        ids(items_search(query_vectors=query, k=5, filters=SimilarFilters(category="Shirts")))[0]
        == "new"
    )
    recs = recommendations(recent_item_ids=["q"], k=5, filters=SimilarFilters(category="Shirts"))
    assert recs.results[0].item.external_id == "new"
    assert recommendations(recent_item_ids=["q"], k=5).results[0].item.external_id == "a1"


# --------------------------------------------------------------------------- search, recs


def test_search_applies_rules(shop) -> None:
    query = {"content": np.asarray(_vec(0), dtype=np.float32)}
    plain = items_search(query_vectors=query, k=5)
    assert ids(plain) == ["q", "a1", "a2", "a3", "a4"]
    r = pin(shop["b3"], 2, name="search pin")
    rule(action="exclude", target="item", target_item=shop["a1"])
    results = items_search(query_vectors=query, k=5)
    assert ids(results) == ["q", "b3", "a2", "a3", "a4"]
    assert results[1].rules[0]["id"] == r.pk
    assert results[1].score == pytest.approx(math.cos(math.radians(70)), abs=1e-5)


def test_recommendations_pin_reason_and_purchases(shop) -> None:
    pin(shop["new"], 1, name="Launch")
    pin(shop["a3"], 2, name="Hero")
    result = recommendations(recent_item_ids=["q"], k=5)
    first, second = result.results[:2]
    assert (first.item.external_id, first.source, first.reason) == (
        "new",
        "rule",
        "pinned by rule 'Launch'",
    )
    assert second.item.external_id == "a3" and second.source == "content"
    assert second.reason == "pinned by rule 'Hero'; because you viewed Q"
    assert all(r.rules == [] and not r.reason.startswith("pinned") for r in result.results[2:])
    # the shopper's purchases and the recent items are never pinned back
    customer = Customer.objects.create(external_id="c1")
    Interaction.objects.create(
        customer=customer, item=shop["new"], event="purchase", occurred_at=timezone.now()
    )
    result = recommendations(customer=customer, recent_item_ids=["a3"], k=5)
    assert {"new", "a3"}.isdisjoint(ids(result.results))


def test_recommendations_boost_over_mixed_sources_uses_rank(shop) -> None:
    plain = recommendations(recent_item_ids=["b3"], k=20, filters=SimilarFilters(in_stock=None))
    assert {r.source for r in plain.results} == {"content", "popular"}
    rule(action="boost", target="item", target_item=shop["new"], factor=50)
    boosted = recommendations(recent_item_ids=["b3"], k=5, filters=SimilarFilters(in_stock=None))
    assert boosted.results[0].item.external_id == "new"  # popular (last) lifted to the top
    assert boosted.results[0].source == "popular" and boosted.results[0].rules


# --------------------------------------------------------------------------- REST


def test_similar_endpoint_shows_rules(shop, anon) -> None:
    r = pin(shop["b3"], 1, name="Boots first")
    data = anon.get("/api/v1/items/q/similar/?space=content&k=5").json()
    results = data["results"]
    assert [x["item"]["external_id"] for x in results] == ["b3", "a1", "a2", "a3", "a4"]
    assert results[0]["rules"] == [
        {"id": r.pk, "name": "Boots first", "action": "pin", "factor": None, "position": 1}
    ]
    assert all(x["rules"] == [] for x in results[1:])


def test_recommendations_endpoints_show_rules(shop, anon, api) -> None:
    r = pin(shop["new"], 1, name="Launch")
    response = anon.post(
        "/api/v1/recommendations/", {"recent_item_ids": ["q"], "k": 5}, format="json"
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert results[0]["item"]["external_id"] == "new"
    assert results[0]["source"] == "rule" and results[0]["reason"] == "pinned by rule 'Launch'"
    assert results[0]["rules"] == [
        {"id": r.pk, "name": "Launch", "action": "pin", "factor": None, "position": 1}
    ]
    assert all(x["rules"] == [] for x in results[1:])
    Customer.objects.create(external_id="c1")
    data = api.get("/api/v1/customers/c1/recommendations/?k=3").json()
    assert data["results"][0]["item"]["external_id"] == "new"
    assert data["results"][0]["rules"][0]["id"] == r.pk


# --------------------------------------------------------------------------- validation


def test_model_validation_names_the_field(shop) -> None:
    cases = [
        ({"action": "pin", "target": "brand", "target_value": "Acme", "position": 1}, "target"),
        ({"action": "pin", "target_item": shop["a1"]}, "position"),
        ({"action": "pin", "target_item": shop["a1"], "position": 0}, "position"),
        ({"action": "boost", "target_item": shop["a1"], "factor": 1.0}, "factor"),
        ({"action": "bury", "target_item": shop["a1"], "factor": 1.5}, "factor"),
        ({"action": "bury", "target_item": shop["a1"], "factor": 0}, "factor"),
        ({"action": "exclude", "target_item": shop["a1"], "factor": 2}, "factor"),
        ({"action": "exclude", "target": "item"}, "target_item"),
        ({"action": "exclude", "target": "brand"}, "target_value"),
        ({"action": "exclude", "target_item": shop["a1"], "context": "item"}, "context_item"),
        ({"action": "exclude", "target_item": shop["a1"], "context": "category"},
         "context_category"),
        ({"action": "pin", "target_item": shop["a1"], "position": 1, "context": "item",
          "context_item": shop["a1"]}, "target_item"),
        ({"action": "exclude", "target_item": shop["a1"], "starts_at": timezone.now(),
          "ends_at": timezone.now() - timedelta(hours=1)}, "ends_at"),
    ]  # fmt: skip
    for fields, field in cases:
        with pytest.raises(ValidationError) as exc:
            rule(**fields)
        assert field in exc.value.message_dict, (fields, exc.value.message_dict)
    Item.objects.filter(pk=shop["a1"].pk).update(is_active=False)
    with pytest.raises(ValidationError) as exc:
        pin(Item.objects.get(pk=shop["a1"].pk), 1)
    assert "must be active" in exc.value.message_dict["target_item"][0]
    # out of stock is fine
    assert pin(shop["oos"], 1).pk


def _form(**fields: Any) -> dict[str, Any]:
    data = {
        "name": "rule",
        "action": "pin",
        "is_enabled": "on",
        "priority": "0",
        "target": "item",
        "target_item": "",
        "target_value": "",
        "context": "anywhere",
        "context_item": "",
        "context_category": "",
        "position": "",
        "factor": "",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "note": "",
    }
    return {**data, **{k: str(v) for k, v in fields.items()}}


def test_admin_add_form_validates_and_records_the_author(shop, client, admin_user) -> None:
    client.force_login(admin_user)
    url = "/admin/shop_recs_catalog/merchrule/add/"
    Item.objects.filter(pk=shop["b1"].pk).update(is_active=False)
    for data, field, message in [
        (_form(target_item=shop["b1"].pk, position=1), "target_item", "must be active"),
        (_form(action="boost", target_item=shop["a1"].pk, factor="0.5"), "factor", "above 1"),
        (_form(action="bury", target_item=shop["a1"].pk, factor="2"), "factor", "between 0"),
        (_form(target_item=shop["a1"].pk), "position", "needs a position"),
        (_form(action="exclude", target="brand"), "target_value", "Enter the brand"),
        (_form(action="exclude", target_item=shop["a1"].pk, context="item"), "context_item",
         "Choose the item"),
        (_form(action="exclude", target_item=shop["a1"].pk, starts_at_0="2030-01-02",
               starts_at_1="00:00:00", ends_at_0="2030-01-01", ends_at_1="00:00:00"),
         "ends_at", "after the start"),
    ]:  # fmt: skip
        response = client.post(url, data)
        assert response.status_code == 200, (field, response.status_code)
        errors = response.context["adminform"].form.errors
        assert field in errors and message in errors[field][0], (field, errors)
        assert message in response.content.decode()
    assert not MerchRule.objects.exists()
    response = client.post(url, _form(name="Launch", target_item=shop["a1"].pk, position=2))
    assert response.status_code == 302
    saved = MerchRule.objects.get()
    assert saved.created_by == admin_user and saved.is_live()


def test_admin_list_and_change_pages_render(shop, client, admin_user) -> None:
    client.force_login(admin_user)
    r = pin(shop["a1"], 1, name="Hero shirt")
    rule("Bolt down", action="bury", target="brand", target_value="Bolt", factor=0.5,
         context="category", context_category="Shirts")  # fmt: skip
    page = client.get("/admin/shop_recs_catalog/merchrule/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Hero shirt" in text and "item a1" in text and "category Shirts" in text
    assert "x 0.5" in text and "#1" in text
    assert client.get("/admin/shop_recs_catalog/merchrule/?live=yes").status_code == 200
    assert client.get("/admin/shop_recs_catalog/merchrule/?q=Hero").status_code == 200
    assert client.get(f"/admin/shop_recs_catalog/merchrule/{r.pk}/change/").status_code == 200
    response = client.post(
        "/admin/shop_recs_catalog/merchrule/",
        {"action": "disable", "_selected_action": [r.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert not MerchRule.objects.get(pk=r.pk).is_enabled
    assert ids(similar())[0] == "a1"  # the bulk update cleared the cache too
