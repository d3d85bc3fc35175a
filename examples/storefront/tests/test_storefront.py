"""The example storefront with shop_recs wired in through its settings only: products saved in
the shop become encoded plugin items, product pages record views and render similar items, a
purchase changes the shopper's recommendations, and a deleted product disappears."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from shop.models import Category, Product
from shop_recs.catalog.models import Customer, Interaction, Item, ItemEmbedding
from shop_recs.storefront.source import mirror_queue
from shop_recs.storefront.tracking import SESSION_ID_KEY

pytestmark = pytest.mark.django_db(transaction=True)

PER_CATEGORY = 4  # load_sample picks round robin over the demo catalogue's categories


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def products() -> list[Product]:
    call_command("load_sample", products=36, password="pw-shopper-1")
    mirrored()
    return list(Product.objects.select_related("category"))


def mirrored() -> None:
    """The shop's saves are mirrored outside its requests, by the plugin's background thread
    (no broker here), a moment later: wait for it."""
    mirror_queue.drain()


def _similar_skus(html: str) -> list[str]:
    section = html.split('id="similar"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'href="/products/([^/"]+)/"', section)


def _recommended_skus(html: str) -> list[str]:
    section = html.split('id="recommended"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'href="/products/([^/"]+)/"', section)


def test_a_product_created_in_the_shop_becomes_an_encoded_item(products) -> None:
    assert Item.objects.count() == len(products) == 36
    boots = Category.objects.get(name="Ankle boots")
    product = Product.objects.create(
        sku="new-1",
        name="Waxed leather hiking boots",
        description="Sturdy waterproof boots with a grippy sole.",
        category=boots,
        brand="Fjellsti",
        price="149.00",
    )
    mirrored()
    item = Item.objects.get(external_id="new-1")
    assert (item.title, item.category, item.brand, str(item.price)) == (
        product.name, "Ankle boots", "Fjellsti", "149.00",
    )  # fmt: skip
    assert item.encoding.status == "done"
    assert set(ItemEmbedding.objects.filter(item=item).values_list("space", flat=True)) >= {
        "text",
        "content",
    }
    # the loaded products came with images: they have image vectors too
    sample = Item.objects.exclude(external_id="new-1").first()
    assert ItemEmbedding.objects.filter(item=sample, space="image").exists()
    # an edit in the shop is mirrored
    product.price = "139.00"
    product.save()
    mirrored()
    item.refresh_from_db()
    assert str(item.price) == "139.00"


def test_product_pages_record_views_and_show_similar_items(client, products) -> None:
    product = products[0]
    response = client.get(product.get_absolute_url())
    assert response.status_code == 200
    shopper = client.session[SESSION_ID_KEY]  # a random id kept in the Django session
    assert Interaction.objects.filter(
        session_id=shopper, item__external_id=product.sku, event="view"
    ).exists()
    similar = _similar_skus(response.content.decode())
    assert len(similar) == 8 and product.sku not in similar
    categories = dict(Product.objects.values_list("sku", "category__name"))
    same = sum(categories[sku] == product.category.name for sku in similar)
    assert same >= PER_CATEGORY - 1, (product.category.name, [categories[s] for s in similar])

    user = get_user_model().objects.get(username="shopper")
    client.force_login(user)
    client.get(products[1].get_absolute_url())
    customer = Customer.objects.get(user=user)
    assert Interaction.objects.filter(customer=customer, item__external_id=products[1].sku)


def test_a_purchase_changes_the_shoppers_recommendations(client, products) -> None:
    user = get_user_model().objects.get(username="shopper")
    client.force_login(user)
    boots = [p for p in products if p.category.name == "Ankle boots"]
    bags = [p for p in products if p.category.name == "Bags"]
    client.get(boots[0].get_absolute_url())
    before = _recommended_skus(client.get("/").content.decode())
    assert before, "a shopper with a viewed product gets recommendations"
    response = client.post(f"/products/{bags[0].sku}/buy/")
    assert response.status_code == 302
    purchase = Interaction.objects.get(event="purchase", item__external_id=bags[0].sku)
    assert purchase.customer.user == user
    after = _recommended_skus(client.get("/").content.decode())
    assert after != before
    assert bags[0].sku not in after  # purchased items are not recommended again
    categories = dict(Product.objects.values_list("sku", "category__name"))
    assert sum(categories[s] == "Bags" for s in after) > sum(
        categories[s] == "Bags" for s in before
    )
    # the same order reported again (a retried signal) counts once
    from shop.models import Order
    from shop_recs.storefront.tracking import record_purchase

    order = Order.objects.get(user=user)
    record_purchase(product=bags[0], order_id=str(order.pk), user=user)
    assert Interaction.objects.filter(event="purchase").count() == 1


def test_a_deleted_product_disappears_from_every_list(client, products) -> None:
    product = products[0]
    neighbour = next(
        p for p in products if p.pk != product.pk and p.category_id == product.category_id
    )
    assert product.sku in _similar_skus(client.get(neighbour.get_absolute_url()).content.decode())
    client.get(product.get_absolute_url())
    sku = product.sku
    product.delete()
    mirrored()
    assert not Item.objects.get(external_id=sku).is_active
    html = client.get(neighbour.get_absolute_url()).content.decode()
    assert sku not in _similar_skus(html) and sku not in _recommended_skus(html)
    api = client.get(f"/api/v1/items/{neighbour.sku}/similar/?k=30").json()
    assert sku not in [r["item"]["external_id"] for r in api["results"]]
    assert client.get(f"/products/{sku}/").status_code == 404


def test_the_plugin_api_keeps_its_own_rules_in_a_shop_without_drf_settings(client) -> None:
    """The storefront leaves every DRF default (AllowAny, no throttles, DRF's error handler and
    schema class): the plugin's endpoints still refuse anonymous writes, keep their error format,
    and describe themselves (only themselves)."""
    from django.conf import settings

    assert getattr(settings, "REST_FRAMEWORK", {}) == {}
    response = client.post(
        "/api/v1/items/", {"external_id": "x", "title": "X"}, content_type="application/json"
    )
    assert response.status_code in (401, 403)
    assert "detail" in response.json()
    assert client.get("/api/v1/items/nope/").json()["detail"].startswith("No item")
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/items/{external_id}/similar/" in schema.content
    assert b"/products/" not in schema.content  # the shop's own pages are not the plugin's
