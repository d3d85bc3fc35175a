"""Experiments in headless Chromium (issue 17): create an experiment with two arms in the
admin, drive shoppers through the storefront's widgets and track.js (each browser context is
one shopper), open the results page, promote an arm. Screenshots go with the other browser
tests' (test-artifacts/browser/)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shop_recs.catalog.models import (
    Attribution,
    Experiment,
    Exposure,
    Interaction,
    Item,
    ItemEncoding,
    ItemStats,
)
from tests.browser.conftest import launch_chromium, screenshot
from tests.conftest import write_vector

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOPPERS = 8


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def shop(settings, live_server, transactional_db, tmp_path, admin_user):
    settings.ROOT_URLCONF = "tests.experiments_urls"
    settings.SHOP_RECS = {
        **settings.SHOP_RECS,
        "ITEM_URL": "item-page",
        "EXPERIMENT_SPOOL": str(tmp_path / "spool"),
    }
    vectors = {"a0": [1.0, 0.0, 0.0], "a1": [0.95, 0.1, 0.0], "b0": [0.5, 0.8, 0.0],
               "c0": [0.1, 0.2, 0.9]}  # fmt: skip
    for n, (ext, vec) in enumerate(vectors.items()):
        item = Item.objects.create(external_id=ext, title=f"Title {ext}", price=f"1{n}.50")
        ItemEncoding.objects.create(item=item, status="done")
        ItemStats.objects.create(item=item, score=float(n + 1), views=5)  # c0 most popular
        write_vector(item, "content", vec, encoder="t")
    return live_server


def test_create_an_experiment_drive_traffic_see_results_and_promote(chromium, shop) -> None:
    admin = chromium.new_context(base_url=shop.url, viewport={"width": 1400, "height": 1000})
    admin.set_default_timeout(20_000)
    page = admin.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-123456")
    with page.expect_navigation():
        page.click("input[type=submit]")

    # 1. the experiment, in the admin
    page.goto("/admin/shop_recs_catalog/experiment/add/")
    page.fill("#id_name", "Content vs popular")
    page.select_option("#id_surface", "similar")
    page.fill("#id_arms-0-name", "A")
    page.check("#id_arms-0-is_control")
    page.fill("#id_arms-0-share", "50")
    page.select_option("#id_arms-0-strategy", "content")
    page.fill("#id_arms-1-name", "B")
    page.fill("#id_arms-1-share", "50")
    page.select_option("#id_arms-1-strategy", "popular")
    screenshot(page, "13-experiment-form")
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert "was added successfully" in page.text_content(".messagelist")
    experiment = Experiment.objects.get()
    assert experiment.surface == "similar" and experiment.arms.count() == 2
    assert experiment.arms.get(name="A").is_control

    # 2. shoppers: a product page (its view starts the anonymous shopper), the widget page,
    # a click on the widget's first item
    arms = []
    for n in range(SHOPPERS):
        shopper = chromium.new_context(base_url=shop.url)
        shopper.set_default_timeout(20_000)
        sp = shopper.new_page()
        sp.goto("/shop/a0/")
        sp.goto("/page/a0/?k=2")
        sp.wait_for_selector("#similar[data-shop-recs-state=ready]")
        widget = sp.locator("#similar")
        list_id = widget.get_attribute("data-shop-recs-list")
        assert list_id and len(list_id) == 32
        assert widget.get_attribute("data-shop-recs-experiment") == "Content vs popular"
        arm = widget.get_attribute("data-shop-recs-arm")
        arms.append(arm)
        titles = [t.strip() for t in widget.locator(".shop-recs-title").all_text_contents()]
        # arm A: content similarity to a0; arm B: the most popular items (never a0 itself;
        # the shoppers' own clicks change which are most popular)
        if arm == "A":
            assert titles == ["Title a1", "Title b0"]
        else:
            assert len(titles) == 2 and "Title a0" not in titles
        if n % 2 == 0:
            with sp.expect_navigation():
                sp.click("#similar li.shop-recs-item >> nth=0 >> a")
        shopper.close()
    assert set(arms) <= {"A", "B"}
    clicks = Interaction.objects.filter(event="click")
    assert clicks.count() == (SHOPPERS + 1) // 2
    assert all(c.context.get("list_id") and c.context.get("position") == 1 for c in clicks)

    # 3. the results page (it writes what is spooled first)
    page.goto(f"/admin/shop_recs_catalog/experiment/{experiment.pk}/results/")
    assert Exposure.objects.filter(surface="similar").count() >= SHOPPERS
    assert Attribution.objects.filter(kind="click").count() == clicks.count()
    table = page.text_content("#recs-results")
    assert "A (control)" in table and "B" in table
    assert page.locator("#recs-srm").count() == 1
    assert page.locator("svg.recs-chart").count() == 2
    screenshot(page, "14-experiment-results")

    # 4. promote B: the experiment stops, the page says so
    with page.expect_navigation():
        page.click("#recs-promote-b")
    assert "Arm B promoted" in page.text_content(".messagelist")
    experiment.refresh_from_db()
    assert experiment.promoted_arm.name == "B" and experiment.stopped_at is not None
    screenshot(page, "15-experiment-promoted")
    admin.close()
