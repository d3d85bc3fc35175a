"""Images registered by URL: downloaded through the SSRF-safe fetcher and validated like
uploads; anything refused or invalid marks that image failed with the reason."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from shop_recs.catalog.models import Item, ItemEncoding
from shop_recs.encoding import images
from tests.conftest import image_bytes, png_header_only

pytestmark = pytest.mark.django_db


SLOW_HITS = {"count": 0}
BODIES = {
    "/ok.png": ("image/png", image_bytes((40, 20))),
    "/truncated.png": ("image/png", image_bytes((40, 20))[:50]),
    "/empty.png": ("image/png", b""),
    "/bomb.png": ("image/png", png_header_only(30000, 30000)),
    "/fake.jpg": ("image/jpeg", b"GIF89a not really"),
    "/page.html": ("text/html", b"<html></html>"),
}


@pytest.fixture
def server(settings) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/slow.png":
                SLOW_HITS["count"] += 1
                time.sleep(1.0)  # longer than the test's fetch timeout
                return
            content_type, body = BODIES.get(self.path, ("text/plain", b""))
            self.send_response(200 if self.path in BODIES else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    settings.SHOP_RECS = {**settings.SHOP_RECS, "IMAGE_FETCH_ALLOW_NETWORKS": ["127.0.0.1/32"]}
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def fetch(url: str):
    item, _ = Item.objects.get_or_create(external_id="sku-1", defaults={"title": "Shirt"})
    image = images.item_image_add_url(item=item, url=url)
    return images.item_image_fetch(image=image)


def test_a_good_image_is_downloaded_and_stored(server) -> None:
    image = fetch(f"{server}/ok.png")
    assert image.status == "ready" and (image.width, image.height) == (40, 20)
    assert image.file and image.checksum and image.content_type == "image/png"
    assert ItemEncoding.objects.get(item=image.item).status == "pending"  # re-encode queued


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/truncated.png", "corrupt or truncated"),
        ("/empty.png", "empty"),
        ("/bomb.png", "too large"),
        ("/fake.jpg", "Not a valid image"),
        ("/page.html", "content_type"),
        ("/missing.png", "http_status"),
    ],
)
def test_bad_downloads_fail_with_a_reason(server, path, reason) -> None:
    image = fetch(f"{server}{path}")
    assert image.status == "failed" and reason in image.error, image.error
    assert not image.file


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.png",  # loopback (not allowed by default)
        "http://localhost/x.png",
        "http://[::1]/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/x.png",
    ],
)
def test_ssrf_targets_are_refused(url) -> None:
    from django.core.exceptions import ValidationError

    from shop_recs.catalog.models import ItemImage

    # at submission (issue 14, item 9): a 400 naming the rule, nothing stored
    item = Item.objects.create(external_id="sku-1", title="Shirt")
    with pytest.raises(ValidationError, match="must point to public addresses") as refused:
        images.item_image_add_url(item=item, url=url)
    assert "url" in refused.value.message_dict
    assert not ItemImage.objects.exists()
    # and again at download, for a row that got past it (DNS answers may change in between)
    image = ItemImage.objects.create(item=item, source_url=url)
    image = images.item_image_fetch(image=image)
    assert image.status == "failed" and "blocked_address" in image.error, image.error


def test_item9_a_failed_url_is_tried_again_when_registered_again(
    server, django_capture_on_commit_callbacks
) -> None:
    """Issue 14, item 9: re-registering a URL whose download failed fetches it again."""
    item = Item.objects.create(external_id="sku-1", title="Shirt")
    BODIES["/later.png"] = ("text/plain", b"not yet")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            image = images.item_image_add_url(item=item, url=f"{server}/later.png")
        image.refresh_from_db()
        assert image.status == "failed" and "content_type" in image.error
        BODIES["/later.png"] = BODIES["/ok.png"]  # the shop fixed its server
        with django_capture_on_commit_callbacks(execute=True):
            again = images.item_image_add_url(item=item, url=f"{server}/later.png")
        assert again.pk == image.pk
        again.refresh_from_db()
        assert again.status == "ready" and again.error == "" and again.file
    finally:
        BODIES.pop("/later.png", None)


def test_other_schemes_never_get_stored() -> None:
    item = Item.objects.create(external_id="sku-2", title="Bag")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="scheme"):
        images.item_image_add_url(item=item, url="file:///etc/passwd")


def test_a_timeout_is_retried_then_recorded(server, settings) -> None:
    """In-process (eager) Celery runs the retries at once: 1 try + 3 retries, then failed."""
    from shop_recs.catalog.models import ItemImage
    from shop_recs.workers.tasks import FETCH_RETRIES, fetch_item_image

    settings.SHOP_RECS = {**settings.SHOP_RECS, "IMAGE_FETCH_TIMEOUT": 0.3}
    item = Item.objects.create(external_id="slow", title="Slow")
    image = images.item_image_add_url(item=item, url=f"{server}/slow.png")
    fetch_item_image.delay(image.pk)
    image = ItemImage.objects.get(pk=image.pk)
    assert image.status == "failed" and "timeout" in image.error
    assert SLOW_HITS["count"] == FETCH_RETRIES + 1
