"""The item source adapter: a shop's own product model (tests.shopapp) mirrored into the items.

Field mapping (paths through relations, properties, methods, callables, related managers),
saves and deletes mirrored after commit (with the real text encoder), ``recs_sync`` backfill and
reconciliation, the settings' system checks, and shop users linked to customers.
"""

from __future__ import annotations

import hashlib
import io
import logging
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import transaction

from shop_recs.catalog import signals
from shop_recs.catalog.models import Customer, Item, ItemEmbedding, ItemEncoding
from shop_recs.storefront.source import (
    ImageRef,
    check_settings,
    customer_for_user,
    item_source,
    product_sync,
    resolve_path,
    sync_all,
)
from tests.conftest import image_bytes
from tests.shopapp.models import Category, Product, ProductImage

pytestmark = pytest.mark.django_db

FIELDS = {
    "external_id": "sku",
    "title": "name",
    "description": "description",
    "category": "category.name",
    "brand": "brand",
    "price": "price",
    "in_stock": "in_stock",
    "is_active": "active",
    "images": "images.file",
}


def describe(product: Product) -> str:
    return f"{product.description} Made by {product.brand}."


def shop_attributes(product: Product) -> dict[str, Any]:
    return {"stock": product.stock, "list_price": product.price}


def only_active() -> Any:
    return Product.objects.filter(active=True)


@pytest.fixture
def source_settings(settings):
    def configure(**item_source: Any) -> None:
        config = {"MODEL": "shopapp.Product", "FIELDS": FIELDS, **item_source}
        settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": config}

    configure()
    return configure


@pytest.fixture
def content_changes():
    """Item ids announced as changed (each announcement queues an encoding)."""
    seen: list[list[int]] = []

    def receiver(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
        seen.append(list(item_ids))

    signals.item_content_changed.connect(receiver, dispatch_uid="test_source.changes")
    yield seen
    signals.item_content_changed.disconnect(dispatch_uid="test_source.changes")


def make_product(sku: str, name: str, *, category: str | None = "Shirts", **fields: Any) -> Product:
    cat = Category.objects.get_or_create(name=category)[0] if category else None
    defaults = {"brand": "Nordhavn", "price": Decimal("19.90"), "stock": 3, "description": ""}
    return Product.objects.create(sku=sku, name=name, category=cat, **{**defaults, **fields})


def add_image(product: Product, color: int, position: int = 0) -> ProductImage:
    return ProductImage.objects.create(
        product=product,
        file=ContentFile(image_bytes(color=color), name=f"{product.sku}-{color}.png"),
        position=position,
    )


# --------------------------------------------------------------------------- reading


def test_resolve_path_follows_relations_methods_and_managers(source_settings) -> None:
    product = make_product("p1", "Linen shirt")
    add_image(product, 10)
    add_image(product, 20, position=1)
    assert resolve_path(product, ["category", "name"]) == "Shirts"
    assert resolve_path(product, ["is_sellable"]) is True  # a method is called
    assert resolve_path(product, ["name", "upper"]) == "LINEN SHIRT"
    assert resolve_path(product, ["images", "position"]) == [0, 1]  # manager -> list
    assert len(resolve_path(product, ["images"])) == 2
    product.category = None
    assert resolve_path(product, ["category", "name"]) is None


def test_read_maps_every_kind_of_field_spec(source_settings) -> None:
    source_settings(
        FIELDS={
            **FIELDS,
            "description": "callable:tests.test_source.describe",
            "brand": lambda p: p.brand.upper(),
            "is_active": "is_sellable",
            "attributes": shop_attributes,
        }
    )
    product = make_product("p1", "  Linen shirt ", description="Cool.", price=Decimal("19.9"))
    product.image.save("main.png", ContentFile(image_bytes(color=5)))
    first = add_image(product, 10)
    source = item_source()
    assert source is not None and source.model is Product
    data = source.read(product)
    assert data["external_id"] == "p1" and data["title"] == "Linen shirt"
    assert data["description"] == "Cool. Made by Nordhavn."
    assert data["category"] == "Shirts" and data["brand"] == "NORDHAVN"
    assert data["price"] == Decimal("19.90") and data["in_stock"] is True
    assert data["is_active"] is True  # is_sellable(): active and in stock
    assert data["attributes"] == {"stock": 3, "list_price": "19.9"}  # JSON as stored
    assert data["images"] == [ImageRef(name=first.file.name)]  # "images.file": the gallery

    product.category, product.stock = None, 0
    data = source.read(product)
    assert data["category"] == "" and data["in_stock"] is False and data["is_active"] is False

    # a single image field, an absolute URL and lists of both; empty values are skipped
    source_settings(FIELDS={**FIELDS, "images": "image"})
    assert item_source().read(product)["images"] == [ImageRef(name=product.image.name)]
    source_settings(
        FIELDS={
            **FIELDS,
            "images": lambda p: [None, "", "https://cdn.example.com/a.jpg", p.image, first.file],
        }
    )
    refs = item_source().read(product)["images"]
    assert refs == [
        ImageRef(url="https://cdn.example.com/a.jpg"),
        ImageRef(name=product.image.name),
        ImageRef(name=first.file.name),
    ]
    # wrong values are named with the field
    source_settings(FIELDS={**FIELDS, "images": "images"})
    with pytest.raises(ValidationError) as err:
        item_source().read(product)
    assert "images.file" in str(err.value.message_dict["images"])
    product.name = ""
    source_settings()
    with pytest.raises(ValidationError) as err:
        item_source().read(product)
    assert err.value.message_dict["title"] == ["is empty"]


# --------------------------------------------------------------------------- mirroring


def test_saved_product_becomes_an_encoded_item(
    source_settings, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        product = make_product("p1", "Linen shirt", description="Light shirt for summer.")
        add_image(product, 10)
        product.save()  # an admin saves the product, then its inline images, then again
    item = Item.objects.get(external_id="p1")
    assert (item.title, item.category, item.brand) == ("Linen shirt", "Shirts", "Nordhavn")
    assert item.price == Decimal("19.90") and item.in_stock and item.is_active
    assert item.source["model"] == "shopapp.Product"
    assert "_source" not in item.attributes  # the API's item does not carry the marker
    assert item.images.get().status == "ready"
    assert ItemEncoding.objects.get(item=item).status == "done"
    spaces = set(ItemEmbedding.objects.filter(item=item).values_list("space", flat=True))
    assert spaces == {"text", "image", "content"}

    # a rolled-back save mirrors nothing
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        make_product("p2", "Wool coat")
        transaction.set_rollback(True)
    assert not Item.objects.filter(external_id="p2").exists()


def test_update_mirrors_changes_and_unchanged_saves_do_nothing(
    source_settings, django_capture_on_commit_callbacks, content_changes
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        product = make_product("p1", "Linen shirt")
    text = ItemEmbedding.objects.get(item__external_id="p1", space="text")
    item_updated = Item.objects.get(external_id="p1").updated_at
    content_changes.clear()

    with django_capture_on_commit_callbacks(execute=True):
        product.save()  # nothing changed
    assert content_changes == []
    assert Item.objects.get(external_id="p1").updated_at == item_updated
    assert ItemEmbedding.objects.get(pk=text.pk).updated_at == text.updated_at

    with django_capture_on_commit_callbacks(execute=True):
        product.price, product.stock = Decimal("9.50"), 0
        product.save()  # price and stock: no new encoding
    item = Item.objects.get(external_id="p1")
    assert item.price == Decimal("9.50") and not item.in_stock
    assert content_changes == []

    with django_capture_on_commit_callbacks(execute=True):
        product.name = "Linen summer shirt"
        product.save()
    assert Item.objects.get(external_id="p1").title == "Linen summer shirt"
    assert content_changes == [[item.pk]]
    after = ItemEmbedding.objects.get(pk=text.pk)
    assert after.content_hash != text.content_hash  # encoded again, after commit

    # a new gallery image is added, a removed one deleted
    with django_capture_on_commit_callbacks(execute=True):
        old = add_image(product, 30)
        product.save()
    assert item.images.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        old.delete()
        add_image(product, 40)
        product.save()
    image = item.images.get()
    assert image.checksum == hashlib.sha256(image_bytes(color=40)).hexdigest()
    assert set(ItemEmbedding.objects.filter(item=item).values_list("space", flat=True)) == {
        "text",
        "image",
        "content",
    }


def test_deleted_product_leaves_the_recommendations(
    source_settings, django_capture_on_commit_callbacks, anon
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        shirt = make_product("shirt", "Linen summer shirt", description="A breathable shirt.")
        make_product("tee", "Cotton summer t-shirt", description="A light cotton shirt.")
        gone = make_product("blouse", "Silk summer blouse", description="A light silk top.")

    def similar() -> list[str]:
        response = anon.get(f"/api/v1/items/{shirt.sku}/similar/?space=text&k=5")
        assert response.status_code == 200, response.content
        return [r["item"]["external_id"] for r in response.json()["results"]]

    assert set(similar()) == {"tee", "blouse"}
    with django_capture_on_commit_callbacks(execute=True):
        gone.delete()
    item = Item.objects.get(external_id="blouse")  # kept for its history
    assert not item.is_active
    assert similar() == ["tee"]
    with django_capture_on_commit_callbacks(execute=True):
        Product.objects.create(sku="blouse", name="Silk summer blouse", stock=2)
    assert Item.objects.get(external_id="blouse").is_active  # back again


def test_mirroring_failure_never_breaks_the_shop(
    source_settings, django_capture_on_commit_callbacks, caplog
) -> None:
    def broken(product: Product) -> str:
        raise RuntimeError("no title today")

    source_settings(FIELDS={**FIELDS, "title": broken})
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        product = make_product("p1", "Linen shirt")
    assert Product.objects.filter(pk=product.pk).exists()
    assert not Item.objects.exists()
    assert f"shopapp.Product {product.pk}" in caplog.text and "recs_sync" in caplog.text


def test_settings_changes_rewire_the_signals(
    settings, source_settings, django_capture_on_commit_callbacks
) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": None}
    assert item_source() is None
    with django_capture_on_commit_callbacks(execute=True):
        make_product("p1", "Linen shirt")
    assert not Item.objects.exists()
    unmapped = {k: v for k, v in FIELDS.items() if k != "is_active"}  # offered when listed
    source_settings(QUERYSET="tests.test_source.only_active", FIELDS=unmapped)
    with django_capture_on_commit_callbacks(execute=True):
        make_product("p2", "Wool coat")
        hidden = make_product("p3", "Old coat")
    assert Item.objects.get(external_id="p3").is_active
    with django_capture_on_commit_callbacks(execute=True):
        hidden.active = False  # leaves the QUERYSET: no longer offered
        hidden.save()
    assert not Item.objects.get(external_id="p3").is_active
    assert Item.objects.get(external_id="p2").is_active
    with pytest.raises(ValidationError, match=r"shopapp\.Product"):
        product_sync(product=Product(sku="bad id", name="x"))


# --------------------------------------------------------------------------- recs_sync


def run_sync(*args: str, failing: bool = False) -> str:
    """recs_sync's output; with ``failing``, it must also exit with an error (cron sees it)."""
    out, err = io.StringIO(), io.StringIO()
    if failing:
        with pytest.raises(CommandError, match=r"1 product\(s\) could not be mirrored"):
            call_command("recs_sync", *args, stdout=out, stderr=err)
    else:
        call_command("recs_sync", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_recs_sync_creates_updates_and_deactivates(
    source_settings, django_capture_on_commit_callbacks, api
) -> None:
    # products saved without their on-commit mirroring (a shop that predates the plugin)
    for n in range(4):
        product = make_product(f"p{n}", f"Shirt number {n}", description=f"Shirt {n}.")
    add_image(product, 60)
    make_product("broken", "", category=None)
    # an item the shop created through the API: never deactivated by the sync
    item = {"external_id": "api-1", "title": "x"}
    assert api.post("/api/v1/items/", item, format="json").status_code == 201

    assert "would have created 4, updated 0, unchanged 0, deactivated 0, failed 1" in run_sync(
        "--dry-run", failing=True
    )
    assert Item.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        output = run_sync(failing=True)
    assert "created 4, updated 0, unchanged 0, deactivated 0, failed 1" in output
    assert "shopapp.Product" in output and "title: is empty" in output
    assert ItemEncoding.objects.filter(status="done").count() == 4  # encoded after commit
    assert Item.objects.get(external_id="p3").images.count() == 1

    Product.objects.filter(sku="p0").update(name="Shirt zero")  # no signals
    Product.objects.filter(sku="broken").update(name="Fixed")
    with django_capture_on_commit_callbacks(execute=False):  # signals fire, mirroring lost
        Product.objects.filter(sku="p1").delete()
    before = Item.objects.order_by("pk").values_list("external_id", "updated_at")
    before = dict(before)
    assert "would have created 1, updated 1, unchanged 2, deactivated 1, failed 0" in run_sync(
        "--dry-run"
    )
    assert dict(Item.objects.values_list("external_id", "updated_at")) == before

    report = sync_all(progress=False)
    assert report.summary() == "created 1, updated 1, unchanged 2, deactivated 1, failed 0"
    assert Item.objects.get(external_id="p0").title == "Shirt zero"
    assert not Item.objects.get(external_id="p1").is_active
    assert Item.objects.get(external_id="api-1").is_active
    assert sync_all(progress=False).summary() == (
        "created 0, updated 0, unchanged 4, deactivated 0, failed 0"
    )
    # a client that rewrites a mirrored item's attributes through the API keeps its marker:
    # the item of a product deleted later is still deactivated
    assert api.patch("/api/v1/items/p2/", {"attributes": {}}, format="json").status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        Product.objects.filter(sku="p2").delete()
    assert "deactivated 1" in sync_all(progress=False).summary()
    assert not Item.objects.get(external_id="p2").is_active


def test_recs_sync_without_a_source(settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": None}
    with pytest.raises(CommandError, match=r"set SHOP_RECS\['ITEM_SOURCE'\]"):
        run_sync()


# --------------------------------------------------------------------------- settings


def test_bad_settings_are_reported_by_the_system_check(settings) -> None:
    def errors(item_source_setting: Any, customer_id: Any = "user-{pk}") -> dict[str, str]:
        settings.SHOP_RECS = {
            **settings.SHOP_RECS,
            "ITEM_SOURCE": item_source_setting,
            "CUSTOMER_ID": customer_id,
        }
        return {e.id: e.msg for e in check_settings()}

    assert errors(None) == {}
    assert errors({"MODEL": "shopapp.Product", "FIELDS": FIELDS}) == {}
    assert (
        "'shop.Nope' is not an installed model"
        in errors({"MODEL": "shop.Nope", "FIELDS": FIELDS})["shop_recs.E001"]
    )
    found = errors({"MODEL": "shopapp.Product", "FIELDS": {"title": "name"}})
    assert "lacks the required field(s) external_id" in found["shop_recs.E002"]
    found = errors({"MODEL": "shopapp.Product", "FIELDS": {**FIELDS, "title": "nmae"}})
    assert "has no field or attribute 'nmae'" in found["shop_recs.E003"]
    found = errors({"MODEL": "shopapp.Product", "FIELDS": {**FIELDS, "colour": "brand"}})
    assert "'colour' is not a plugin item field" in found["shop_recs.E004"]
    found = errors({"MODEL": "shopapp.Product", "FIELDS": {**FIELDS, "brand": "callable:x.y"}})
    assert "cannot be imported" in found["shop_recs.E005"]
    found = errors({"MODEL": "shopapp.Product", "FIELDS": FIELDS, "QUERYSET": "no.such.qs"})
    assert "cannot be imported" in found["shop_recs.E006"]
    found = errors({"MODEL": "shopapp.Product", "FIELDS": FIELDS, "MODELL": "x"})
    assert "unknown keys: MODELL" in found["shop_recs.E007"]
    assert "same customer" in errors(None, customer_id="shopper")["shop_recs.E008"]
    assert "lacks" in errors(None, customer_id="u-{nickname}")["shop_recs.E008"]
    assert errors(None, customer_id="{username}") == {}

    settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": {"MODEL": "shop.Nope"}}
    with pytest.raises(ImproperlyConfigured, match=r"shop\.Nope"):
        item_source()
    with pytest.raises(SystemCheckError, match=r"shop_recs\.E001"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="not an installed model"):
        run_sync()


# --------------------------------------------------------------------------- customers


def test_customer_for_user_links_or_creates(settings) -> None:
    users = get_user_model().objects
    alice, bob = users.create_user("alice"), users.create_user("bob")
    assert customer_for_user(AnonymousUser()) is None and customer_for_user(None) is None

    customer = customer_for_user(alice)
    assert customer.external_id == f"user-{alice.pk}" and customer.user == alice
    assert customer_for_user(alice) == customer and Customer.objects.count() == 1

    # known from imported events before the account was linked
    known = Customer.objects.create(external_id=f"user-{bob.pk}")
    assert customer_for_user(bob) == known
    known.refresh_from_db()
    assert known.user == bob

    settings.SHOP_RECS = {**settings.SHOP_RECS, "CUSTOMER_ID": "shopper-{username}"}
    carol = users.create_user("carol")
    assert customer_for_user(carol).external_id == "shopper-carol"
    settings.SHOP_RECS = {**settings.SHOP_RECS, "CUSTOMER_ID": lambda u: f"c{u.pk * 10}"}
    dave = users.create_user("dave")
    assert customer_for_user(dave).external_id == f"c{dave.pk * 10}"
    assert customer_for_user(alice) == customer  # the existing link wins

    # two users mapped to one id is refused, never merged
    settings.SHOP_RECS = {**settings.SHOP_RECS, "CUSTOMER_ID": lambda u: "shopper-carol"}
    with pytest.raises(ValidationError, match="linked to another user"):
        customer_for_user(users.create_user("erin"))


def test_migration_moves_old_markers_into_the_column() -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("shop_recs.catalog.migrations.0007_item_source")
    old = Item.objects.create(
        external_id="old-1",
        title="Mirrored before 0007",
        attributes={"colour": "red", "_source": {"model": "shop.Product", "images": []}},
    )
    other = Item.objects.create(external_id="api-2", title="From the API", attributes={"a": 1})
    migration.marker_to_column(apps, None)
    old.refresh_from_db()
    other.refresh_from_db()
    assert old.attributes == {"colour": "red"}
    assert old.source == {"model": "shop.Product", "images": []}
    assert (other.attributes, other.source) == ({"a": 1}, None)
