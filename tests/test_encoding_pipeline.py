"""The encoding pipeline with the real bundled encoders: on-commit encoding, hash skip, stale
re-encode, bad images, the similar-items and search endpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image, ImageDraw

from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding, ItemImage
from shop_recs.encoding.service import items_encode, items_needing_encoding

pytestmark = pytest.mark.django_db

PRODUCTS = [
    ("shirt", "Linen summer shirt", "Shirts", "Nordhavn", "A breathable linen shirt for hot days."),
    ("boots", "Leather ankle boots", "Boots", "Hollis", "Waterproof leather boots for winter."),
    ("bag", "Canvas tote bag", "Bags", "Fjellsti", "A roomy canvas bag for shopping."),
    ("dress", "Silk evening dress", "Dresses", "Nordhavn", "An elegant silk dress for parties."),
    ("sneaker", "Running sneakers", "Shoes", "Hollis", "Light cushioned shoes for jogging."),
    ("coat", "Wool winter coat", "Coats", "Fjellsti", "A warm wool coat against the cold."),
]


def picture(kind: int) -> bytes:
    """Distinct synthetic pictures: a shape per kind on a plain background."""
    img = Image.new("RGB", (96, 96), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    if kind % 3 == 0:
        draw.ellipse((10, 10, 86, 86), fill=(200, 30, 30))
    elif kind % 3 == 1:
        draw.rectangle((20, 5, 76, 91), fill=(20, 40, 180))
    else:
        draw.polygon([(48, 4), (92, 92), (4, 92)], fill=(20, 150, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def catalog(api, django_capture_on_commit_callbacks):
    """Six items created through the API; the on-commit tasks run (in-process, no broker)."""
    with django_capture_on_commit_callbacks(execute=True):
        for n, (ext, title, category, brand, description) in enumerate(PRODUCTS):
            response = api.post(
                "/api/v1/items/",
                {
                    "external_id": ext,
                    "title": title,
                    "category": category,
                    "brand": brand,
                    "description": description,
                    "price": str(10 + 10 * n),
                },
                format="json",
            )
            assert response.status_code == 201, response.content
            if ext != "coat":  # one item without an image
                upload = SimpleUploadedFile(f"{ext}.png", picture(n))
                response = api.post(
                    f"/api/v1/items/{ext}/images/", {"file": upload}, format="multipart"
                )
                assert response.status_code == 201, response.content
    return api


def spaces(external_id: str) -> set[str]:
    return set(
        ItemEmbedding.objects.filter(item__external_id=external_id).values_list("space", flat=True)
    )


def test_created_items_are_encoded_after_commit(catalog) -> None:
    assert spaces("shirt") == {"text", "image", "content"}
    assert spaces("coat") == {"text", "content"}  # no image: still text and content
    row = ItemEmbedding.objects.get(item__external_id="shirt", space="text")
    assert row.dim == 384 and len(row.content_hash) == 64
    assert row.encoder == "all-MiniLM-L6-v2" and row.encoder_version
    assert ItemEmbedding.objects.get(item__external_id="shirt", space="image").dim == 1280
    body = catalog.get("/api/v1/items/shirt/").json()
    assert body["encoding"]["status"] == "done" and body["encoding"]["encoded_at"]
    assert {s["space"] for s in body["encoding"]["spaces"]} == {"text", "image", "content"}


def test_unchanged_items_are_skipped_and_changed_ones_reencoded(
    catalog, django_capture_on_commit_callbacks
) -> None:
    ids = list(Item.objects.values_list("pk", flat=True))
    report = items_encode(item_ids=ids)
    assert report.skipped == len(ids) and report.encoded == 0
    before = ItemEmbedding.objects.get(item__external_id="bag", space="text").vector
    with django_capture_on_commit_callbacks(execute=True):
        catalog.patch("/api/v1/items/bag/", {"price": "99.00"}, format="json")
    assert ItemEncoding.objects.get(item__external_id="bag").status == "done"  # price: no re-encode
    with django_capture_on_commit_callbacks(execute=True):
        catalog.patch("/api/v1/items/bag/", {"title": "Leather messenger bag"}, format="json")
    after = ItemEmbedding.objects.get(item__external_id="bag", space="text").vector
    assert not np.allclose(np.asarray(before), np.asarray(after))
    assert ItemEmbedding.objects.filter(item__external_id="bag").count() == 3  # upserted


def test_stale_items_are_reencoded_after_an_encoder_change(catalog, settings) -> None:
    assert items_needing_encoding(stale=True) == []
    ItemEmbedding.objects.filter(item__external_id="dress", space="text").update(
        encoder_version="older-model"
    )
    assert items_needing_encoding(stale=True) == [Item.objects.get(external_id="dress").pk]
    out = io.StringIO()
    call_command("recs_encode", "--stale", stdout=out, stderr=io.StringIO())
    assert "encoded 1 items" in out.getvalue() and "items/s" in out.getvalue()
    assert items_needing_encoding(stale=True) == []
    # a new fusion weight changes the content space's version: every item is stale
    settings.SHOP_RECS = {**settings.SHOP_RECS, "CONTENT_TEXT_WEIGHT": 0.7}
    assert len(items_needing_encoding(stale=True)) == len(PRODUCTS)
    out = io.StringIO()
    call_command("recs_encode", "--all", "--batch-size", "4", stdout=out, stderr=io.StringIO())
    assert f"encoded {len(PRODUCTS)} items" in out.getvalue()


def hnsw_indexes() -> set[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
            [ItemEmbedding._meta.db_table, "recs_emb_%_hnsw"],
        )
        return {name for (name,) in cursor.fetchall()}


def test_bulk_re_encoding_keeps_the_live_indexes(catalog, anon, settings) -> None:
    expected = {"recs_emb_text_384_hnsw", "recs_emb_image_1280_hnsw", "recs_emb_content_1664_hnsw"}
    assert expected <= hnsw_indexes()
    before = anon.get("/api/v1/items/shirt/similar/?space=text&k=5").json()["results"]
    settings.SHOP_RECS = {**settings.SHOP_RECS, "ENCODE_BULK_MIN": 4}
    seen_during: list[set[str]] = []
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    report = items_encode(
        item_ids=ids,
        force=True,
        batch_size=2,
        progress=lambda n: seen_during.append(hnsw_indexes()),
    )
    assert report.encoded == len(PRODUCTS)
    # the spaces hold vectors that readers use: their indexes stay in place throughout
    assert seen_during and all(expected <= names for names in seen_during)
    assert expected <= hnsw_indexes()
    after = anon.get("/api/v1/items/shirt/similar/?space=text&k=5").json()["results"]
    assert [r["item"]["external_id"] for r in after] == [r["item"]["external_id"] for r in before]
    # a small batch (a worker's chunk) keeps the indexes in place
    items_encode(
        item_ids=ids[:2], force=True, progress=lambda n: seen_during.append(hnsw_indexes())
    )
    assert expected <= seen_during[-1]

    def boom(n: int) -> None:
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError):
        items_encode(item_ids=ids, force=True, progress=boom)
    assert expected <= hnsw_indexes()  # never dropped, also when the load failed


def test_a_corrupt_stored_image_fails_alone(catalog) -> None:
    image = ItemImage.objects.get(item__external_id="boots")
    with open(image.file.path, "wb") as fh:  # the file went bad on disk after upload
        fh.write(b"\x89PNG\r\n\x1a\n garbage")
    item = image.item
    report = items_encode(item_ids=[item.pk], force=True)
    assert report.encoded == 1 and report.images_failed == 1
    image.refresh_from_db()
    assert image.status == "failed" and "cannot decode" in image.error
    assert spaces("boots") == {"text", "content"}  # text and content still written
    encoding = ItemEncoding.objects.get(item=item)
    assert encoding.status == "done" and "cannot decode" in encoding.error
    assert items_encode(item_ids=[item.pk]).skipped == 1  # and stays consistent


def test_similar_items_endpoint(catalog, anon) -> None:
    response = anon.get("/api/v1/items/shirt/similar/?space=text&k=3")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["item_id"] == "shirt" and body["space"] == "text"
    results = body["results"]
    assert len(results) == 3
    assert "shirt" not in [r["item"]["external_id"] for r in results]
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]
    assert results[0]["similarity"]["text"] == pytest.approx(results[0]["score"], abs=1e-4)
    assert {"text", "content"} <= set(results[0]["similarity"])
    content = anon.get("/api/v1/items/shirt/similar/?k=10").json()  # content is the default
    assert content["space"] == "content" and len(content["results"]) == len(PRODUCTS) - 1
    image = anon.get("/api/v1/items/shirt/similar/?space=image&k=10").json()["results"]
    assert "coat" not in [r["item"]["external_id"] for r in image]  # coat has no image
    assert image[0]["item"]["image"].startswith("http://testserver/media/")


def test_similar_items_filters(catalog, anon) -> None:
    def ids(query: str) -> list[str]:
        response = anon.get(f"/api/v1/items/shirt/similar/?{query}")
        assert response.status_code == 200, response.content
        return [r["item"]["external_id"] for r in response.json()["results"]]

    assert set(ids("brand=Nordhavn&k=5")) == {"dress"}
    assert set(ids("price_max=35&k=5")) == {"boots", "bag"}
    assert set(ids("price_min=35&price_max=55&k=5")) == {"dress", "sneaker"}
    assert "bag" not in ids("exclude=bag,boots&k=5") and len(ids("exclude=bag,boots&k=5")) == 3
    Item.objects.filter(external_id="boots").update(in_stock=False)
    Item.objects.filter(external_id="bag").update(is_active=False)
    default = ids("k=10")
    assert "boots" not in default and "bag" not in default
    assert ids("in_stock=false&k=10") == ["boots"]
    assert ids("category=Coats&k=2") == ["coat"]


def test_similar_items_errors(catalog, anon, api) -> None:
    assert anon.get("/api/v1/items/nope/similar/").status_code == 404
    for query, field in [
        ("k=0", "k"),
        ("k=1000", "k"),
        ("space=sound", "space"),
        ("price_min=x", "price_min"),
        ("in_stock=maybe", "in_stock"),
    ]:
        response = anon.get(f"/api/v1/items/shirt/similar/?{query}")
        assert response.status_code == 400 and field in response.json(), query
    Item.objects.create(external_id="fresh", title="Not encoded yet")
    response = anon.get("/api/v1/items/fresh/similar/")
    assert response.status_code == 409
    assert response.json()["encoding"]["status"] == "pending"
    assert response.json()["detail"].startswith("Item 'fresh' has no content vector")


def test_semantic_search(catalog, anon) -> None:
    response = anon.get("/api/v1/search/?q=a+thick+wool+coat+to+keep+warm&k=2")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["spaces"] == ["text"]
    assert body["results"][0]["item"]["external_id"] == "coat"
    assert (
        anon.get("/api/v1/search/?q=bag&category=Bags&k=3").json()["results"][0]["item"][
            "external_id"
        ]
        == "bag"
    )
    assert anon.get("/api/v1/search/").status_code == 400
    assert anon.get("/api/v1/search/?q=").status_code == 400


def photo_jpeg(size: tuple[int, int], seed: int) -> bytes:
    """A large JPEG (random blocks, so it does not compress to nothing)."""
    rng = np.random.default_rng(seed)
    small = (rng.random((size[1] // 64, size[0] // 64, 3)) * 255).astype("uint8")
    img = Image.fromarray(small).resize(size, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def test_item5_a_new_image_is_encoded_alone(catalog) -> None:
    """Issue 14, item 5: adding an image encodes that image only; the item's image vector is
    still the mean of its images' normalised vectors (as a full re-encode computes it)."""
    from shop_recs.catalog.models import ItemImageEmbedding
    from shop_recs.catalog.services import item_image_add_file

    item = Item.objects.get(external_id="shirt")
    assert ItemImageEmbedding.objects.filter(image__item=item).count() == 1
    for kind in (1, 2):
        item_image_add_file(
            item=item, upload=io.BytesIO(photo_jpeg((256, 192), seed=kind)), filename="p.jpg"
        )
        report = items_encode(item_ids=[item.pk])
        assert report.encoded == 1 and report.images_encoded == 1, report.summary()
    assert ItemImageEmbedding.objects.filter(image__item=item).count() == 3
    incremental = np.asarray(ItemEmbedding.objects.get(item=item, space="image").vector)
    content = np.asarray(ItemEmbedding.objects.get(item=item, space="content").vector)
    report = items_encode(item_ids=[item.pk], force=True)  # every image decoded again
    assert report.images_encoded == 3
    full = np.asarray(ItemEmbedding.objects.get(item=item, space="image").vector)
    assert np.allclose(incremental, full, atol=1e-5)
    assert np.allclose(content, ItemEmbedding.objects.get(item=item, space="content").vector)
    # deleting an image drops its vector and the mean follows
    image = item.images.order_by("-id").first()
    from shop_recs.catalog.services import item_image_delete

    item_image_delete(image=image)
    report = items_encode(item_ids=[item.pk])
    assert report.images_encoded == 0 and report.encoded == 1
    assert ItemImageEmbedding.objects.filter(image__item=item).count() == 2


def test_item5_large_images_are_downscaled_while_decoding(catalog, settings) -> None:
    """Issue 14, item 5: a large photo is decoded near the encoder's size (JPEG draft), and
    encodes like the same photo at that size."""
    from shop_recs.catalog.services import item_image_add_file
    from shop_recs.encoding.service import DECODE_SHORT_SIDE, _load_image

    big = photo_jpeg((6000, 4000), seed=1)
    item = Item.objects.get(external_id="coat")
    image = item_image_add_file(item=item, upload=io.BytesIO(big), filename="big.jpg")
    assert (image.width, image.height) == (6000, 4000)
    pixels = _load_image(image)
    assert min(pixels.size) == DECODE_SHORT_SIDE and pixels.size[0] == 768
    report = items_encode(item_ids=[item.pk])
    assert report.images_encoded == 1 and spaces("coat") == {"text", "image", "content"}
    # the same picture uploaded small gives (nearly) the same vector
    from shop_recs.encoding.encoders import image_encoder

    small = Image.open(io.BytesIO(big)).convert("RGB").resize((768, 512), Image.Resampling.BICUBIC)
    expected = image_encoder().encode_images([small])[0]
    stored = np.asarray(ItemEmbedding.objects.get(item=item, space="image").vector)
    assert float(np.dot(stored, expected)) > 0.98
