"""track.js and widget.js in headless Chromium against a live server (tests.storefront_urls):
the widgets fill from the REST API, clicks and cart adds are recorded through
POST /api/v1/track/ (with the CSRF cookie the page set), and a failing API leaves the
containers empty with state "error"."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from shop_recs.catalog.models import Interaction, Item, ItemEncoding, ItemImage
from tests.browser.conftest import launch_chromium
from tests.conftest import write_vector

# Playwright's sync API runs an event loop in this thread; Django's async guard would refuse
# the test's own queries without this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def shop(settings, live_server, transactional_db):
    settings.ROOT_URLCONF = "tests.storefront_urls"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "item-page"}
    for n, (ext, vec) in enumerate(
        {"a0": [1.0, 0.0, 0.0], "a1": [0.95, 0.1, 0.0], "b0": [0.5, 0.8, 0.0]}.items()
    ):
        item = Item.objects.create(external_id=ext, title=f"Title {ext}", price=f"1{n}.50")
        ItemEncoding.objects.create(item=item, status="done")
        # a stored image (cards never show an image that is only a registered URL)
        ItemImage.objects.create(item=item, file=f"items/none-{ext}.png", status="ready")
        write_vector(item, "content", vec, encoder="t")
    Item.objects.create(external_id="new", title="Not encoded yet")
    return live_server


@pytest.fixture
def page(chromium, shop) -> Iterator[object]:
    context = chromium.new_context(base_url=shop.url)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def state(page, selector: str) -> str:
    page.wait_for_selector(
        f"{selector}[data-shop-recs-state]:not([data-shop-recs-state=loading])", state="attached"
    )
    return page.get_attribute(selector, "data-shop-recs-state")


def test_widgets_fill_and_clicks_are_tracked(page) -> None:
    page.goto("/page/a0/?k=2")
    assert state(page, "#similar") == "ready"
    cards = page.locator("#similar li.shop-recs-item")
    assert cards.count() == 2
    assert cards.nth(0).locator(".shop-recs-title").text_content() == "Title a1"
    assert cards.nth(0).locator(".shop-recs-price").text_content() == "€11.50"
    assert cards.nth(0).locator("img").get_attribute("src").endswith("/media/items/none-a1.png")
    assert cards.nth(0).locator("a").get_attribute("href") == "/p/a1/"
    # the page's item went to localStorage first (track.js runs first), so the recommended
    # widget had a history
    assert page.evaluate("localStorage.getItem('shop_recs_recent')") == '["a0"]'
    assert state(page, "#recommended") == "ready"
    assert "because you viewed Title a0" in page.text_content("#recommended")

    page.click("#cart")
    wait_for(lambda: Interaction.objects.filter(event="cart").exists())
    cart = Interaction.objects.get(event="cart")
    assert cart.item.external_id == "a0" and cart.session_id and cart.customer_id is None
    page.click("#plain")  # not marked: nothing sent

    with page.expect_navigation():
        page.click("#similar li.shop-recs-item >> nth=1 >> a")
    assert page.url.endswith("/p/b0/")
    wait_for(lambda: Interaction.objects.filter(event="click").exists())
    click = Interaction.objects.get(event="click")
    assert click.item.external_id == "b0" and click.session_id == cart.session_id
    assert Interaction.objects.count() == 3  # cart, click, and the view of the b0 page
    assert Interaction.objects.get(event="view").session_id == cart.session_id


def test_not_encoded_item_leaves_the_widget_empty(page) -> None:
    page.goto("/page/new/")
    assert state(page, "#similar") == "empty"
    assert page.inner_html("#similar") == ""


def test_failing_api_leaves_the_containers_empty(page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/page/a0/?api=/broken-api/")
    assert state(page, "#similar") == "error"
    assert state(page, "#recommended") == "error"
    assert page.inner_html("#similar") == "" and page.inner_html("#recommended") == ""
    page.click("#cart")  # the tracker fails quietly too
    page.wait_for_timeout(300)
    assert errors == []
    assert not Interaction.objects.exists()


def test_track_js_can_record_the_page_view(page, monkeypatch) -> None:
    from shop_recs.storefront import tracking

    monkeypatch.setattr(tracking, "_now", lambda: 1_000_000.0)  # one view window
    page.goto("/page/a1/?views=1")
    wait_for(lambda: Interaction.objects.filter(event="view").exists())
    page.reload()  # within the view window: counted once
    page.wait_for_timeout(500)
    view = Interaction.objects.get()
    assert (view.event, view.item.external_id) == ("view", "a1")
    assert page.evaluate("localStorage.getItem('shop_recs_recent')") == '["a1"]'
