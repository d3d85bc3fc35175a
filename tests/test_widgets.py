"""Storefront widgets: the {% similar_items %} and {% recommended_for %} tags, the item URL
resolver (also in the API's item cards), template overrides and graceful degradation."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.template import Context, Template

from shop_recs.catalog.models import (
    Customer,
    Interaction,
    Item,
    ItemEncoding,
    ItemImage,
    ItemStats,
)
from shop_recs.storefront import links, tracking, widgets
from tests.conftest import write_vector

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storefront(settings):
    settings.ROOT_URLCONF = "tests.storefront_urls"


@pytest.fixture
def catalogue():
    """Four encoded items (a1 is nearest to a0, then b0, then b1) and one not encoded yet."""
    items = {}
    for n, (ext, vec) in enumerate(
        {
            "a0": [1.0, 0.0, 0.0],
            "a1": [0.95, 0.1, 0.0],
            "b0": [0.5, 0.8, 0.0],
            "b1": [0.0, 1.0, 0.1],
        }.items()
    ):
        item = Item.objects.create(
            external_id=ext, title=f"Title {ext}", category="C", price=f"1{n}.50"
        )
        ItemEncoding.objects.create(item=item, status="done")
        ItemImage.objects.create(item=item, file=f"items/{ext}.jpg", status="ready")
        write_vector(item, "text", vec)
        write_vector(item, "content", vec)
        items[ext] = item
    items["new"] = Item.objects.create(external_id="new", title="Brand new")
    return items


def render(source: str, **context) -> str:
    return Template("{% load shop_recs %}" + source).render(Context(context)).strip()


def shopper_request(rf, user=None, session=None):
    request = rf.get("/")
    request.user = user or AnonymousUser()
    request.session = session or SessionStore()
    return request


# --------------------------------------------------------------------------- similar_items


def test_similar_items_renders_cards(catalogue, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "item-page"}
    html = render("{% similar_items product k=2 %}", product=catalogue["a0"])
    assert html.count('class="shop-recs-item"') == 2
    assert html.index("Title a1") < html.index("Title b0") and "Title b1" not in html
    assert 'src="/media/items/a1.jpg"' in html and 'alt="Title a1"' in html
    assert '<span class="shop-recs-price">11.50</span>' in html
    assert 'href="/p/a1/"' in html and 'data-shop-recs-click="a1"' in html
    assert "Similar items" in html and "shop-recs-similar" in html
    # by external id too, with a title of the page's own
    html = render('{% similar_items "a0" k=1 title="You may also like" %}')
    assert "You may also like" in html and "Title a1" in html


def test_similar_items_never_show_an_image_only_registered_by_url(catalogue) -> None:
    """Issue 14, item 9: a URL not yet downloaded (nor checked) is no card image."""
    ItemImage.objects.filter(item=catalogue["a1"]).update(
        file="", source_url="https://img.example/a1.jpg", status="pending"
    )
    html = render("{% similar_items 'a0' k=1 %}")
    assert "Title a1" in html and "img.example" not in html


@pytest.mark.parametrize("product", ["nope", "new", None, 42, ""])
def test_similar_items_render_nothing_when_not_ready(catalogue, product) -> None:
    assert render("{% similar_items product %}", product=product) == ""


def test_similar_items_unknown_space_is_empty(catalogue, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert render("{% similar_items 'a0' space='colour' %}") == ""
    assert "widget failed" in caplog.text


def test_failures_render_nothing_even_in_debug(catalogue, settings, monkeypatch, caplog) -> None:
    settings.DEBUG = True
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "OPTIONS": {**engine["OPTIONS"], "debug": True}}]

    def boom(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(widgets, "widget_similar_items", boom)
    monkeypatch.setattr(widgets, "widget_recommended_items", boom)
    with caplog.at_level(logging.WARNING, logger="shop_recs.storefront.templatetags.shop_recs"):
        html = render("[{% similar_items 'a0' %}][{% recommended_for request %}]", request=None)
    assert html == "[][]"
    assert caplog.text.count("widget failed; it renders nothing") == 2
    assert "database gone" in caplog.text


def test_missing_template_renders_nothing(catalogue, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert render("{% similar_items 'a0' template='nowhere/x.html' %}") == ""
    assert "TemplateDoesNotExist" in caplog.text


def test_template_can_be_overridden(catalogue, settings, tmp_path) -> None:
    folder = tmp_path / "shop_recs" / "widgets"
    folder.mkdir(parents=True)
    (folder / "items.html").write_text(
        "<ol data-kind='{{ kind }}'>{% for i in items %}<li>{{ i.external_id }}|{{ i.price }}"
        "</li>{% endfor %}</ol>"
    )
    (tmp_path / "mine.html").write_text("{{ title }}:{{ items|length }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    assert render("{% similar_items 'a0' k=2 %}") == (
        "<ol data-kind='similar'><li>a1|11.50</li><li>b0|12.50</li></ol>"
    )
    assert render("{% similar_items 'a0' k=2 template='mine.html' title='T' %}") == "T:2"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "WIDGET_TEMPLATE": "mine.html"}
    assert render("{% similar_items 'a0' k=3 title='' %}") == ":3"


# --------------------------------------------------------------------------- recommended_for


def test_recommended_for_new_anonymous_shopper_is_empty(catalogue, rf) -> None:
    request = shopper_request(rf)
    assert render("{% recommended_for request %}", request=request) == ""
    assert request.session.session_key is None, "a widget never starts a session"


def test_recommended_for_shows_popular_items_once_there_are_any(catalogue, rf) -> None:
    ItemStats.objects.create(item=catalogue["b1"], views=5, score=5.0)
    html = render("{% recommended_for request k=4 %}", request=shopper_request(rf))
    assert html.count('class="shop-recs-item"') == 1  # items without events are not "popular"
    assert "Title b1" in html and "popular right now" in html


def test_recommended_for_anonymous_session_history(catalogue, client) -> None:
    client.get("/shop/a0/")  # a tracked product view
    page = client.get("/page/b1/").content.decode()
    recommended = page.split('id="server-recommended"')[1].split('id="similar"')[0]
    assert "Title a1" in recommended and "because you viewed Title a0" in recommended
    assert 'data-item-id="a0"' not in recommended, "seen items are left out"


def test_recommended_for_session_recent_views_without_recorded_events(catalogue, rf) -> None:
    session = SessionStore()
    session[tracking.RECENT_KEY] = ["b1"]
    html = render("{% recommended_for request k=1 %}", request=shopper_request(rf, session=session))
    assert "Title b0" in html and "because you viewed Title b1" in html


def test_recommended_for_logged_in_customer(catalogue, rf) -> None:
    user = get_user_model().objects.create_user("bob", password="pw-123456")
    customer = Customer.objects.create(external_id="cust-bob", user=user)
    Interaction.objects.create(
        customer=customer,
        item=catalogue["b1"],
        event="cart",
        occurred_at=catalogue["b1"].created_at,
    )
    html = render("{% recommended_for request k=2 %}", request=shopper_request(rf, user=user))
    assert "Title b0" in html and "because you added to your cart Title b1" in html
    assert 'data-item-id="b1"' not in html


def test_recommended_for_uses_the_template_request_by_default(catalogue, rf) -> None:
    ItemStats.objects.create(item=catalogue["a0"], views=1, score=1.0)
    html = render("{% recommended_for %}", request=shopper_request(rf))
    assert "Title a0" in html


# --------------------------------------------------------------------------- item links


def link_of_a1(**context) -> str:
    html = render("{% similar_items 'a0' k=1 %}", **context)
    assert "Title a1" in html
    return html.split('href="')[1].split('"')[0] if 'href="' in html else ""


def item_link(external_id: str) -> str:
    return f"https://shop.example/item/{external_id}"


def test_item_url_resolver_variants(catalogue, settings) -> None:
    assert link_of_a1() == "", "no ITEM_URL and no item source: no links"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "item-page"}
    assert link_of_a1() == "/p/a1/"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": lambda ext: f"/x/{ext}"}
    assert link_of_a1() == "/x/a1"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "callable:tests.test_widgets.item_link"}
    assert link_of_a1() == "https://shop.example/item/a1"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "no-such-url-name"}
    assert link_of_a1() == ""
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "callable:tests.nowhere.fn"}
    assert link_of_a1() == "", "a broken resolver costs the links, not the widget"


def test_item_url_from_the_item_source(catalogue, settings) -> None:
    from tests.shopapp.models import Product

    source = {"MODEL": "shopapp.Product", "FIELDS": {"external_id": "sku", "title": "name"}}
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": source}
    Product.objects.create(sku="a1", name="Shirt")
    Product.objects.create(sku="b0", name="Boot")
    assert links.item_urls(["a1", "b0", "b1"]) == {
        "a1": "/shop/products/a1/",
        "b0": "/shop/products/b0/",
    }
    assert link_of_a1() == "/shop/products/a1/"
    # a shop product as the tag's argument
    html = render("{% similar_items product k=1 %}", product=Product.objects.get(sku="a1"))
    assert "Title a0" in html
    # an external id behind a relation or a callable: no lookup, no links
    fields = {"external_id": "callable:tests.test_widgets.item_link", "title": "name"}
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": {**source, "FIELDS": fields}}
    assert links.item_urls(["a1"]) == {}


def test_item_url_in_api_cards(catalogue, client, settings) -> None:
    response = client.get("/api/v1/items/a0/similar/?k=2")
    assert [r["item"]["url"] for r in response.json()["results"]] == [None, None]
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_URL": "item-page"}
    response = client.get("/api/v1/items/a0/similar/?k=2")
    assert [r["item"]["url"] for r in response.json()["results"]] == ["/p/a1/", "/p/b0/"]
    response = client.post(
        "/api/v1/recommendations/", {"recent_item_ids": ["a0"], "k": 1}, "application/json"
    )
    assert response.json()["results"][0]["item"]["url"] == "/p/a1/"


# --------------------------------------------------------------------------- scripts


def test_scripts_tag_sets_the_csrf_cookie(client, catalogue) -> None:
    response = client.get("/page/a0/")
    html = response.content.decode()
    assert '<script src="/static/shop_recs/track.js" data-endpoint="/api/v1/track/" defer>' in html
    assert '<script src="/static/shop_recs/widget.js" data-api="/api/v1/" defer>' in html
    assert "csrftoken" in response.cookies
