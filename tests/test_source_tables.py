"""A shop whose product data spans tables (``tests/tableshop``): price and stock in stock
records, a gallery table, categories through an explicit many-to-many model, a brand table,
reviews read by a callable, and variants as child products. Driven the way a back office saves
it: the product row first, its related rows after, in separate saves and in one transaction;
every step checks the item's values, not just that it exists."""

from __future__ import annotations

import hashlib
import io
import time
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction

from shop_recs.catalog import signals
from shop_recs.catalog.models import Interaction, Item, ItemEmbedding, ItemEncoding
from shop_recs.storefront import tracking
from shop_recs.storefront.source import check_settings, item_source, mirror_queue, sync_all
from tests.conftest import image_bytes
from tests.tableshop.models import (
    Brand,
    Category,
    Product,
    ProductCategory,
    ProductImage,
    Review,
    StockRecord,
)

pytestmark = pytest.mark.django_db

#: What docs/storefront.md's "Shops whose product data spans tables" tells such a shop to write.
FIELDS = {
    "external_id": "upc",
    "title": "title",
    "description": "description",
    "category": "categories.name|join",
    "brand": "brand.name",
    "price": "stockrecords.price|min",
    "in_stock": "stockrecords.num_in_stock|sum",
    "is_active": "is_public",
    "images": "images.original",
    "attributes": "callable:tests.test_source_tables.review_attributes",
}
SOURCE = {
    "MODEL": "tableshop.Product",
    "FIELDS": FIELDS,
    "WATCH": {"tableshop.Review": "reviews"},  # read by the attributes callable
    "PARENT": "parent",
}


def review_attributes(product: Product) -> dict[str, Any]:
    scores = [r.score for r in product.reviews.all()]
    return {"rating": round(sum(scores) / len(scores), 2)} if scores else {}


@pytest.fixture
def table_source(settings):
    def configure(**changes: Any) -> None:
        settings.SHOP_RECS = {**settings.SHOP_RECS, "ITEM_SOURCE": {**SOURCE, **changes}}

    configure()
    return configure


@pytest.fixture
def encodings():
    """Item ids announced for encoding (each announcement queues one encoding)."""
    seen: list[int] = []

    def receiver(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
        seen.extend(item_ids)

    signals.item_content_changed.connect(receiver, dispatch_uid="test_source_tables.encodings")
    yield seen
    signals.item_content_changed.disconnect(dispatch_uid="test_source_tables.encodings")


def picture(product: Product, color: int, order: int = 0) -> ProductImage:
    return ProductImage.objects.create(
        product=product,
        original=ContentFile(image_bytes(color=color), name=f"{product.upc}-{color}.png"),
        display_order=order,
    )


def item(upc: str = "shirt-1") -> Item:
    return Item.objects.get(external_id=upc)


def spaces(upc: str = "shirt-1") -> set[str]:
    return set(ItemEmbedding.objects.filter(item__external_id=upc).values_list("space", flat=True))


# --------------------------------------------------------------------------- the back office


def test_a_back_office_saving_product_then_related_rows_mirrors_every_step(
    table_source, django_capture_on_commit_callbacks
) -> None:
    def step():
        return django_capture_on_commit_callbacks(execute=True)

    brand = Brand.objects.create(name="Nordhavn")
    shirts, summer = Category.objects.create(name="Shirts"), Category.objects.create(name="Summer")
    with step():  # 1. the product row alone
        product = Product.objects.create(upc="shirt-1", title="Linen shirt", brand=brand)
    assert (item().title, item().brand, item().category) == ("Linen shirt", "Nordhavn", "")
    assert item().price is None and not item().in_stock
    assert spaces() == {"text", "content"}

    with step():  # 2. its stock record: price and stock
        record = StockRecord.objects.create(
            product=product, partner_sku="A1", price=Decimal("39.00"), num_in_stock=3
        )
    assert item().price == Decimal("39.00") and item().in_stock

    with step():  # 3. a second partner, cheaper and sold out
        StockRecord.objects.create(
            product=product, partner_sku="B1", price=Decimal("35.50"), num_in_stock=0
        )
    assert item().price == Decimal("35.50") and item().in_stock  # min price, total stock 3

    with step():  # 4. the gallery
        picture(product, 10)
    assert item().images.count() == 1 and item().images.get().status == "ready"
    assert spaces() == {"text", "image", "content"}

    with step():  # 5. categories, through the explicit many-to-many model (an admin inline)
        ProductCategory.objects.create(product=product, category=shirts)
    assert item().category == "Shirts"
    with step():  # ... and through the related manager (m2m_changed)
        product.categories.add(summer)
    assert item().category == "Shirts, Summer"

    with step():  # 6. stock edited in the back office: reaches the plugin without recs_sync
        record.num_in_stock = 0
        record.save()
    assert not item().in_stock
    with step():  # 7. a review, read by a callable: WATCH
        Review.objects.create(product=product, score=4)
        Review.objects.create(product=product, score=5)
    assert item().attributes == {"rating": 4.5}

    with step():  # 8. related rows deleted
        StockRecord.objects.filter(partner_sku="B1").delete()
        product.images.get().delete()
        summer.delete()
    assert item().price == Decimal("39.00") and item().category == "Shirts"
    assert item().images.count() == 0 and spaces() == {"text", "content"}
    with step():  # the brand renamed in its own table
        brand.name = "Nordhavn Studio"
        brand.save()
    assert item().brand == "Nordhavn Studio"
    with step():
        shirts.product_set.clear()  # unlinked from the category's side
    assert item().category == ""


def test_one_transaction_mirrors_the_product_once_and_encodes_it_once_with_its_image(
    table_source, django_capture_on_commit_callbacks, encodings
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        product = Product.objects.create(upc="shirt-1", title="Linen shirt")
        StockRecord.objects.create(
            product=product, partner_sku="A1", price=Decimal("39.00"), num_in_stock=2
        )
        picture(product, 10)
        product.categories.add(Category.objects.create(name="Shirts"))
        product.save()
    mirrored = [c for c in callbacks if getattr(c, "__qualname__", "") == "_Batch.flush"]
    assert len(mirrored) == 1  # one batch for the whole transaction
    assert item().price == Decimal("39.00") and item().in_stock and item().category == "Shirts"
    assert encodings == [item().pk]  # encoded once, with its image
    assert spaces() == {"text", "image", "content"}
    assert ItemEncoding.objects.get(item=item()).status == "done"

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        StockRecord.objects.create(product=product, partner_sku="B1", num_in_stock=1)
        transaction.set_rollback(True)  # a rolled-back edit mirrors nothing
    assert StockRecord.objects.count() == 1


# --------------------------------------------------------------------------- types


def test_paths_through_to_many_relations_must_say_how_to_reduce(table_source) -> None:
    def problems(**fields: str) -> dict[str, str]:
        table_source(FIELDS={**FIELDS, **fields})
        return {p.id: p.msg for p in check_settings()}

    assert problems() == {}
    found = problems(category="categories.name")
    assert "'category'" in found["shop_recs.E009"] and "'categories'" in found["shop_recs.E009"]
    found = problems(in_stock="stockrecords.num_in_stock")
    assert "to-many relation 'stockrecords'" in found["shop_recs.E009"]
    assert "'|nope' " not in found["shop_recs.E009"]
    assert "is not a reducer" in problems(price="stockrecords.price|avg")["shop_recs.E009"]
    found = problems(price="stockrecords.prize|min")
    assert (
        "StockRecord (reached through stockrecords) has no field or attribute 'prize'"
        in (found["shop_recs.E003"])
    )
    table_source(WATCH={"tableshop.Review": "stockrecords"})
    assert "not a lookup from tableshop.Product to tableshop.Review" in {
        p.id: p.msg for p in check_settings()
    }.get("shop_recs.E010", "")
    table_source(PARENT="brand")
    assert "not a foreign key from tableshop.Product to itself" in {
        p.id: p.msg for p in check_settings()
    }.get("shop_recs.E011", "")


def test_reducers_and_per_value_types(table_source) -> None:
    product = Product.objects.create(upc="p1", title="Shirt")
    for sku, price, stock in (("a", "39.00", 0), ("b", "35.50", 0), ("c", None, 0)):
        StockRecord.objects.create(
            product=product, partner_sku=sku, price=price, num_in_stock=stock
        )
    for name in ("Shirts", "Summer", "Shirts"):
        product.categories.add(Category.objects.create(name=name))
    table_source(FIELDS={**FIELDS, "description": "stockrecords.partner_sku|join", "brand": "upc"})
    data = item_source().read(product)
    assert data["category"] == "Shirts, Summer"  # joined, repeats once
    assert data["price"] == Decimal("35.50") and data["in_stock"] is False  # 0 in stock: no
    assert data["description"] == "a, b, c"
    table_source(FIELDS={**FIELDS, "price": "stockrecords.price|first", "in_stock": "upc"})
    with pytest.raises(Exception) as err:
        item_source().read(product)
    assert "'p1' is not a yes/no value" in str(err.value)
    # a callable that returns a list for a one-value field is refused, saying how to fix it
    table_source(FIELDS={**FIELDS, "title": lambda p: [p.title]})
    with pytest.raises(Exception) as err:
        item_source().read(product)
    assert "got a list of 1, not a text" in str(err.value) and "|first" in str(err.value)


# --------------------------------------------------------------------------- variants


VARIANT_FIELDS = {
    **FIELDS,
    "price": "children.stockrecords.price|min",
    "in_stock": "children.stockrecords.num_in_stock|sum",
}


def test_variants_are_their_parents_item_and_their_purchases_count_for_it(
    table_source, django_capture_on_commit_callbacks, django_user_model
) -> None:
    table_source(FIELDS=VARIANT_FIELDS)
    with django_capture_on_commit_callbacks(execute=True):
        parent = Product.objects.create(upc="tee", title="Cotton tee")
        small = Product.objects.create(parent=parent, title="")  # a variant has no title
        large = Product.objects.create(parent=parent, upc="tee-l")
        StockRecord.objects.create(product=small, partner_sku="S", price="15.00", num_in_stock=0)
    assert list(Item.objects.values_list("external_id", flat=True)) == ["tee"]
    assert item("tee").price == Decimal("15.00") and not item("tee").in_stock
    with django_capture_on_commit_callbacks(execute=True):  # a variant's stock arrives
        StockRecord.objects.create(product=large, partner_sku="L", price="17.00", num_in_stock=4)
    assert item("tee").in_stock and item("tee").price == Decimal("15.00")

    assert tracking.external_id_of(large) == "tee"
    buyer = django_user_model.objects.create_user("buyer", password="pw-123456")
    outcome = tracking.record_purchase(order_id="o-1", product=large, user=buyer)
    assert outcome is not None and outcome.status == "created"
    bought = Interaction.objects.get(event="purchase")
    assert bought.item.external_id == "tee" and bought.customer.user == buyer
    with django_capture_on_commit_callbacks(execute=True):
        large.delete()  # a variant gone: its parent's stock changes, no item is removed
    assert item("tee").is_active and not item("tee").in_stock

    report = sync_all(progress=False)
    assert report.summary() == (
        "created 0, updated 0, unchanged 1, deactivated 0, failed 0; "
        "1 variants mirrored through their parents"
    )


# --------------------------------------------------------------------------- bad products


def test_an_empty_sku_never_blocks_the_others(table_source) -> None:
    for n in range(3):
        product = Product.objects.create(upc=f"p{n}", title=f"Shirt {n}")
    blank = Product.objects.create(upc="", title="Draft shirt")
    sync_all(progress=False)
    assert Item.objects.count() == 3
    product.delete()  # no signals: products deleted behind the plugin's back
    report = sync_all(progress=False)
    assert report.summary() == (
        "created 0, updated 0, unchanged 2, deactivated 1, failed 0; "
        f"skipped 1 without a valid external id (pk {blank.pk})"
    )
    assert not item("p2").is_active
    out = io.StringIO()
    call_command("recs_sync", "--dry-run", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert f"skipped 1 without a valid external id (pk {blank.pk})" in text
    assert "Mapped values" in text and "title: 'Shirt 0'; 'Shirt 1'" in text


# --------------------------------------------------------------------------- the queue


@pytest.mark.django_db(transaction=True)
def test_the_default_queue_mirrors_outside_the_request_once_per_burst(
    table_source, settings, encodings
) -> None:
    """Committed saves in separate transactions: the saving thread only notes the product; the
    queue's thread mirrors it once, after the burst, with everything."""
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MIRROR_DELAY_SECONDS": 3}
    product = Product.objects.create(upc="shirt-1", title="Linen shirt")
    StockRecord.objects.create(product=product, partner_sku="A1", price="39.00", num_in_stock=2)
    picture(product, 10)
    product.categories.add(Category.objects.create(name="Shirts"))
    assert not Item.objects.exists()  # nothing mirrored in the saving thread
    assert mirror_queue.pending() == 1  # one product noted, mirrored 3 s after the last save
    deadline = time.monotonic() + 60
    while not Item.objects.filter(external_id="shirt-1").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    mirror_queue.drain()  # waits for the thread's batch to finish
    assert item().price == Decimal("39.00") and item().in_stock and item().category == "Shirts"
    assert encodings == [item().pk]  # one encoding, with the image
    assert spaces() == {"text", "image", "content"}
    assert mirror_queue.pending() == 0


def test_a_product_at_the_image_cap_can_swap_an_image(
    table_source, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MAX_IMAGES_PER_ITEM": 2}
    with django_capture_on_commit_callbacks(execute=True):
        product = Product.objects.create(upc="shirt-1", title="Linen shirt")
        first = picture(product, 10)
        picture(product, 20, order=1)
    assert item().images.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        first.delete()
        picture(product, 30, order=2)  # removed and added in one edit: still 2 images
    checksums = set(item().images.values_list("checksum", flat=True))
    assert len(checksums) == 2 and item().images.count() == 2
    assert hashlib.sha256(image_bytes(color=30)).hexdigest() in checksums
    assert hashlib.sha256(image_bytes(color=10)).hexdigest() not in checksums
