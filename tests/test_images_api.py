"""Image upload (multipart) and image by URL, with every kind of bad file refused."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from shop_recs.catalog.models import Item, ItemImage
from tests.conftest import image_bytes, png_header_only

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(api):
    response = api.post("/api/v1/items/", {"external_id": "sku-1", "title": "Bag"}, format="json")
    assert response.status_code == 201
    return Item.objects.get(external_id="sku-1")


def upload(api, data: bytes, name: str = "a.png", **extra):
    return api.post(
        "/api/v1/items/sku-1/images/",
        {"file": SimpleUploadedFile(name, data), **extra},
        format="multipart",
    )


def test_upload_png_and_jpeg(api, anon, item) -> None:
    first = upload(api, image_bytes((40, 30)))
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["width"], body["height"]) == (40, 30)
    assert body["status"] == "ready" and body["content_type"] == "image/png"
    assert len(body["checksum"]) == 64 and body["url"].startswith("http://testserver/media/")
    second = upload(api, image_bytes((20, 20), fmt="JPEG"), name="b.jpg", position=5)
    assert second.status_code == 201 and second.json()["position"] == 5
    listed = anon.get("/api/v1/items/sku-1/images/").json()
    assert [i["position"] for i in listed] == [0, 5]
    assert len(anon.get("/api/v1/items/sku-1/").json()["images"]) == 2


def test_same_bytes_twice_stores_one_image(api, item) -> None:
    data = image_bytes()
    assert upload(api, data).json()["id"] == upload(api, data).json()["id"]
    assert ItemImage.objects.count() == 1


def test_delete_image(api, item) -> None:
    image_id = upload(api, image_bytes()).json()["id"]
    assert api.delete(f"/api/v1/items/sku-1/images/{image_id}/").status_code == 204
    assert api.delete(f"/api/v1/items/sku-1/images/{image_id}/").status_code == 404
    assert not ItemImage.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not an image", "Not a valid image"),
        (b"", "empty"),
        (image_bytes()[:60], "corrupt"),
        (png_header_only(20000, 20000), "too large"),
    ],
)
def test_bad_files_are_400(api, item, data, message) -> None:
    response = upload(api, data)
    assert response.status_code == 400, response.content
    assert "file" in response.json()
    assert message in str(response.json()["file"])
    assert not ItemImage.objects.exists()


def test_unsupported_format_and_size_limit(api, item, settings) -> None:
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(buf, format="BMP")
    response = upload(api, buf.getvalue(), name="x.bmp")
    assert response.status_code == 400 and "BMP" in str(response.json()["file"])
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MAX_IMAGE_BYTES": 100}
    response = upload(api, image_bytes((200, 200)))
    assert response.status_code == 400 and "larger than 100 bytes" in str(response.json())


def test_missing_file_and_wrong_fields(api, item) -> None:
    response = api.post("/api/v1/items/sku-1/images/", {"position": 1}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()
    response = upload(api, image_bytes(), position=-1)
    assert response.status_code == 400 and "position" in response.json()


def test_image_by_url(api, item) -> None:
    response = api.post(
        "/api/v1/items/sku-1/images/", {"url": "https://cdn.example.com/a.jpg"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending"
    assert response.json()["source_url"] == "https://cdn.example.com/a.jpg"
    assert response.json()["url"] is None  # no stored file before the worker fetched it
    again = api.post(
        "/api/v1/items/sku-1/images/", {"url": "https://cdn.example.com/a.jpg"}, format="json"
    )
    assert again.json()["id"] == response.json()["id"]


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "not a url", ""])
def test_bad_urls_are_400(api, item, url) -> None:
    response = api.post("/api/v1/items/sku-1/images/", {"url": url}, format="json")
    assert response.status_code == 400 and "url" in response.json()
    assert not ItemImage.objects.exists()


def test_images_need_auth_and_an_existing_item(anon, api, item) -> None:
    assert upload(anon, image_bytes()).status_code == 401
    response = api.post(
        "/api/v1/items/nope/images/",
        {"file": SimpleUploadedFile("a.png", image_bytes())},
        format="multipart",
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/a.jpg", "loopback"),
        ("http://localhost:8000/a.jpg", "loopback"),
        ("http://[::1]/a.png", "loopback"),
        ("http://10.1.2.3/a.jpg", "private"),
        ("http://192.168.0.10/a.jpg", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://user:pw@cdn.example.com/a.jpg", "credentials"),
    ],
)
def test_item9_private_urls_are_refused_at_submission(api, item, url, why) -> None:
    """Issue 14, item 9: refused with a 400 naming the rule, not accepted and failed later."""
    response = api.post("/api/v1/items/sku-1/images/", {"url": url}, format="json")
    assert response.status_code == 400, response.content
    assert why in response.json()["url"][0]
    assert not ItemImage.objects.exists()


def test_item9_allowed_networks_are_accepted(api, item, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "IMAGE_FETCH_ALLOW_NETWORKS": ["10.1.2.0/24"]}
    response = api.post(
        "/api/v1/items/sku-1/images/", {"url": "http://10.1.2.3/a.jpg"}, format="json"
    )
    assert response.status_code == 201, response.content


def test_item9_a_pending_url_is_never_a_card_image(api, anon, item) -> None:
    from shop_recs.catalog.models import Item
    from tests.conftest import write_vector

    other = Item.objects.create(external_id="sku-2", title="Other bag")
    write_vector(item, "content", [1.0, 0.0, 0.0])
    write_vector(other, "content", [0.9, 0.1, 0.0])
    response = api.post(
        "/api/v1/items/sku-2/images/", {"url": "https://cdn.invalid/a.jpg"}, format="json"
    )
    assert response.status_code == 201, response.content
    similar = anon.get("/api/v1/items/sku-1/similar/?space=content").json()
    assert [r["item"]["external_id"] for r in similar["results"]] == ["sku-2"]
    assert similar["results"][0]["item"]["image"] is None


def test_item5_images_per_item_are_capped(api, item, settings) -> None:
    """Issue 14, item 5: at most MAX_IMAGES_PER_ITEM images, uploads and URLs alike."""
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MAX_IMAGES_PER_ITEM": 3}
    for color in range(3):
        assert upload(api, image_bytes(color=color)).status_code == 201
    response = upload(api, image_bytes(color=99))
    assert response.status_code == 400 and "MAX_IMAGES_PER_ITEM" in response.json()["file"][0]
    response = api.post(
        "/api/v1/items/sku-1/images/", {"url": "https://cdn.example.com/z.jpg"}, format="json"
    )
    assert response.status_code == 400 and "MAX_IMAGES_PER_ITEM" in response.json()["url"][0]
    assert ItemImage.objects.count() == 3
    assert upload(api, image_bytes(color=0)).status_code == 201  # the same bytes: no new image
