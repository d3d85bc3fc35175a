"""The admin in headless Chromium against a live server on the demo catalogue: log in, an
item's similar items per space, a customer's recommendations with reasons, a pin rule applied
in the API, activating a model version. Each page is saved as a screenshot."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SPACES = ("text", "image", "content", "hybrid")


def _item_pk(server, external_id: str) -> int:
    code = (
        "from shop_recs.catalog.models import Item; "
        f"print(Item.objects.get(external_id={external_id!r}).pk)"
    )
    return int(server.manage("shell", "-c", code).strip().splitlines()[-1])


def _demo_item_with_image(server) -> str:
    body = server.api("GET", "/api/v1/items/?page_size=50").json()
    for item in body["results"]:
        if item.get("images") and item.get("encoding", {}).get("status") == "done":
            return item["external_id"]
    raise AssertionError("no encoded demo item with an image")


def test_login_and_dashboard_link(page, demo_server) -> None:
    login(page, "admin", "wrong-password")
    assert page.locator(".errornote").is_visible()
    from tests.browser.conftest import PASSWORD

    login(page, "admin", PASSWORD)
    page.wait_for_selector("#site-name")
    assert "Site administration" in page.content()
    screenshot(page, "01-admin-index")

    page.click("#shop-recs-dashboard-link th a")
    page.wait_for_selector("#recs-encoding")
    assert page.locator("#recs-total").inner_text().strip() == "1000"
    assert "no broker" in page.locator("#recs-backlog").inner_text().lower()
    page.fill("#recs-try-search input[name=q]", "leather boots")
    with page.expect_navigation():
        page.press("#recs-try-search input[name=q]", "Enter")
    cards = page.locator("#recs-try-results .recs-card")
    assert cards.count() > 0
    assert "boot" in cards.first.inner_text().lower()
    screenshot(page, "01b-dashboard-search")


def test_item_page_shows_similar_thumbnails_per_space(admin_page, demo_server) -> None:
    external_id = _demo_item_with_image(demo_server)
    pk = _item_pk(demo_server, external_id)
    admin_page.goto(f"/admin/shop_recs_catalog/item/{pk}/change/")
    admin_page.wait_for_selector("#recs-similar")
    for space in SPACES:
        panel = admin_page.locator(f'.recs-panel[data-space="{space}"]')
        assert panel.locator(".recs-card").count() >= 3, space
        thumbs = panel.locator("img.recs-thumb")
        assert thumbs.count() >= 3, space
        # the thumbnails load: the browser decoded a real image for the first one
        thumbs.first.scroll_into_view_if_needed()
        loaded = admin_page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbs.first.element_handle()
        )
        assert loaded, f"{space} thumbnail did not load"
        assert "score" in panel.inner_text()
    assert admin_page.locator("#recs-encoding tr[data-space]").count() >= 3
    screenshot(admin_page, "02-item-similar-per-space")

    admin_page.goto("/admin/shop_recs_catalog/item/?encoding__status__exact=done")
    assert admin_page.locator("img.recs-thumb").count() > 0
    screenshot(admin_page, "03-item-list")


def _shell(server, code: str) -> str:
    return server.manage("shell", "-c", code).strip().splitlines()[-1]


def test_customer_page_shows_recommendations_with_reasons(admin_page, demo_server) -> None:
    pk = int(
        _shell(
            demo_server,
            "from django.db.models import Count; from shop_recs.catalog.models import Customer; "
            "print(Customer.objects.annotate(n=Count('interactions')).order_by('-n')[0].pk)",
        )
    )
    admin_page.goto(f"/admin/shop_recs_catalog/customer/{pk}/change/")
    recs = admin_page.locator("#recs-recommendations .recs-card")
    assert recs.count() == 10
    sources = admin_page.locator("#recs-recommendations .recs-source").all_inner_texts()
    assert "model" in sources
    text = admin_page.locator("#recs-recommendations").inner_text()
    assert "because you" in text
    assert admin_page.locator("#recs-interactions .recs-card img.recs-thumb").count() > 0
    screenshot(admin_page, "04-customer-recommendations")

    admin_page.click("text=Preview as anonymous session")
    admin_page.wait_for_selector("#recs-preview-form")
    with admin_page.expect_navigation():
        admin_page.click("input[name=run]")
    assert admin_page.locator("#recs-preview-results .recs-card").count() == 10
    assert "because you viewed" in admin_page.locator("#recs-preview-results").inner_text()
    screenshot(admin_page, "05-anonymous-session-preview")


def _pick_autocomplete(page, field: str, search: str) -> None:
    """Choose an option of a Django admin autocomplete (select2) field by typing."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", search)
    page.wait_for_selector(f".select2-results__option:has-text('{search}')")
    page.click(f".select2-results__option:has-text('{search}')")


def test_pin_rule_created_in_the_admin_applies_in_the_api(admin_page, demo_server) -> None:
    context_id = _demo_item_with_image(demo_server)
    before = demo_server.api("GET", f"/api/v1/items/{context_id}/similar/?k=10").json()
    shown = {r["item"]["external_id"] for r in before["results"]} | {context_id}
    candidates = demo_server.api("GET", "/api/v1/items/?page_size=100&page=3").json()["results"]
    pinned = next(
        c["external_id"]
        for c in candidates
        if c["external_id"] not in shown and c["in_stock"] and c["is_active"]
    )

    admin_page.goto("/admin/shop_recs_catalog/merchrule/add/")
    admin_page.fill("#id_name", "Browser pin")
    admin_page.select_option("#id_action", "pin")
    admin_page.select_option("#id_target", "item")
    _pick_autocomplete(admin_page, "target_item", pinned)
    admin_page.select_option("#id_context", "item")
    _pick_autocomplete(admin_page, "context_item", context_id)
    admin_page.fill("#id_position", "2")
    screenshot(admin_page, "06-pin-rule-form")
    with admin_page.expect_navigation():
        admin_page.click("input[name=_save]")
    assert admin_page.locator(".messagelist .success").count() == 1, admin_page.content()
    screenshot(admin_page, "07-pin-rule-list")

    after = demo_server.api("GET", f"/api/v1/items/{context_id}/similar/?k=10").json()
    assert len(after["results"]) == 10
    second = after["results"][1]
    assert second["item"]["external_id"] == pinned
    assert [r["name"] for r in second["rules"]] == ["Browser pin"]
    assert second["rules"][0]["action"] == "pin"
    # the other results keep their order, shifted by the pin
    rest = [r["item"]["external_id"] for r in after["results"]]
    assert rest[:1] + rest[2:] == [r["item"]["external_id"] for r in before["results"]][:9]

    # the item's admin page shows the rule in its (default, hybrid) preview
    pk = _item_pk(demo_server, context_id)
    admin_page.goto(f"/admin/shop_recs_catalog/item/{pk}/change/")
    panel = admin_page.locator('.recs-panel[data-space="hybrid"]')
    assert "Browser pin" in panel.locator(".recs-rule").first.inner_text()
    screenshot(admin_page, "08-item-with-pin")
    _shell(
        demo_server,
        "from shop_recs.catalog.models import MerchRule; print(MerchRule.objects.all().delete())",
    )


def test_train_and_activate_a_model_version(admin_page, demo_server) -> None:
    admin_page.goto("/admin/shop_recs_catalog/modelversion/")
    assert admin_page.locator("#result_list tbody tr").count() == 1
    assert admin_page.locator("svg").count() >= 1  # metrics across versions
    with admin_page.expect_navigation():
        admin_page.click("#recs-train-form button")
    assert "/backgroundjob/" in admin_page.url
    screenshot(admin_page, "09-training-job")
    # the job page refreshes itself every few seconds until the job has ended
    status = admin_page.locator(".field-status .readonly")
    expect(status).to_have_text(re.compile(r"^\s*(done|failed)\s*$"), timeout=600_000)
    admin_page.wait_for_load_state()
    status = status.inner_text().strip()
    assert status == "done", admin_page.locator("#content-main").inner_text()
    screenshot(admin_page, "10-training-job-done")

    versions = json.loads(
        _shell(
            demo_server,
            "import json; from shop_recs.catalog.models import ModelVersion; print(json.dumps("
            "list(ModelVersion.objects.order_by('id').values_list('id', 'is_active'))))",
        )
    )
    assert len(versions) == 2
    inactive = next(pk for pk, active in versions if not active)
    admin_page.goto(f"/admin/shop_recs_catalog/modelversion/{inactive}/change/")
    assert admin_page.locator("#recs-metrics").count() == 1
    assert admin_page.locator("svg").count() >= 2  # training curves and versions
    screenshot(admin_page, "11-model-version")
    with admin_page.expect_navigation():
        admin_page.click("#recs-activate-form button")
    # activation runs as a background job too (vectors and index built beside the live ones)
    assert "/backgroundjob/" in admin_page.url
    assert (
        f"Activation of model {inactive} started" in admin_page.locator(".messagelist").inner_text()
    )
    status = admin_page.locator(".field-status .readonly")
    expect(status).to_have_text(re.compile(r"^\s*(done|failed)\s*$"), timeout=300_000)
    admin_page.wait_for_load_state()
    assert status.inner_text().strip() == "done", admin_page.locator("#content-main").inner_text()
    assert f"activated model {inactive}" in admin_page.locator("#content-main").inner_text()
    screenshot(admin_page, "12-model-activated")

    body = demo_server.api(
        "POST", "/api/v1/recommendations/", json={"recent_item_ids": ["fm-0001"], "k": 5}
    ).json()
    assert body["model_version"] == inactive
