"""The admin in headless Chromium against a live server on the demo catalogue: log in, an
item's similar items per space, a customer's recommendations with reasons, a pin rule applied
in the API, activating a model version. Each page is saved as a screenshot."""

from __future__ import annotations

import pytest

from tests.browser.conftest import login, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SPACES = ("text", "image", "content", "hybrid")


def _item_pk(server, external_id: str) -> int:
    out = server.manage(
        "shell", "-c",
        f"from catalog.models import Item; print(Item.objects.get(external_id={external_id!r}).pk)",
    )  # fmt: skip
    return int(out.strip().splitlines()[-1])


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
        width = thumbs.first.evaluate("img => img.complete ? img.naturalWidth : -1")
        assert width > 0, f"{space} thumbnail did not load"
        assert "score" in panel.inner_text()
    assert admin_page.locator("#recs-encoding tr[data-space]").count() >= 3
    screenshot(admin_page, "02-item-similar-per-space")

    admin_page.goto("/admin/shop_recs_catalog/item/?encoding__status__exact=done")
    assert admin_page.locator("img.recs-thumb").count() > 0
    screenshot(admin_page, "03-item-list")
