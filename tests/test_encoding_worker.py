"""Real Celery workers on Redis run the encoding pipeline: items created through the API,
images by URL (with SSRF refusals), and a worker killed mid-batch."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding, ItemImage
from shop_recs.catalog.services import item_image_add_file
from tests.celery_support import Workers, redis_broker, wait_for
from tests.test_encoding_pipeline import picture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PNG = picture(0)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_broker(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def image_server() -> Iterator[str]:
    """A local HTTP server with one PNG (only 127.0.0.1 is ever contacted)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/shirt.png":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def encoded(external_id: str) -> bool:
    return ItemEncoding.objects.filter(item__external_id=external_id, status="done").exists()


def test_worker_encodes_items_created_through_the_api(api, redis_url, image_server) -> None:
    with Workers(redis_url) as workers:
        workers.start({"SHOP_RECS_IMAGE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32"})
        item = {"external_id": "shirt", "title": "Linen shirt", "category": "Shirts"}
        assert api.post("/api/v1/items/", item, format="json").status_code == 201
        upload = SimpleUploadedFile("shirt.png", PNG)
        response = api.post("/api/v1/items/shirt/images/", {"file": upload}, format="multipart")
        assert response.status_code == 201
        assert api.get("/api/v1/items/shirt/").json()["encoding"]["status"] == "pending"
        assert wait_for(
            lambda: ItemEmbedding.objects.filter(item__external_id="shirt").count() == 3, 180
        ), "the worker did not encode the item"

        # images by URL: the worker downloads the local one; SSRF targets are refused when
        # they are registered (the worker's fetcher checks every hop again)
        api.post("/api/v1/items/", {"external_id": "bag", "title": "Tote bag"}, format="json")
        for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1/a.jpg"):
            response = api.post("/api/v1/items/bag/images/", {"url": url}, format="json")
            assert response.status_code == 400, response.content
        with override_settings(
            SHOP_RECS={**settings.SHOP_RECS, "IMAGE_FETCH_ALLOW_NETWORKS": ["127.0.0.1/32"]}
        ):
            response = api.post(
                "/api/v1/items/bag/images/", {"url": f"{image_server}/shirt.png"}, format="json"
            )
        assert response.status_code == 201, response.content
        assert wait_for(
            lambda: (
                not ItemImage.objects.filter(item__external_id="bag", status="pending").exists()
                and encoded("bag")
                and ItemEmbedding.objects.filter(item__external_id="bag", space="image").exists()
            ),
            120,
        )
    (fetched,) = ItemImage.objects.filter(item__external_id="bag")
    assert fetched.source_url == f"{image_server}/shirt.png"
    assert fetched.status == "ready" and fetched.file and fetched.width == 96
    assert set(
        ItemEmbedding.objects.filter(item__external_id="bag").values_list("space", flat=True)
    ) == {"text", "image", "content"}


def test_worker_killed_mid_batch_leaves_every_item_encoded_once(redis_url) -> None:
    from shop_recs.workers.tasks import encode_items

    n = 60
    items = Item.objects.bulk_create(
        [Item(external_id=f"k{i}", title=f"Product number {i}") for i in range(n)]
    )
    for i, item in enumerate(items):
        item_image_add_file(
            item=item, upload=io.BytesIO(picture(i)), filename="p.png", announce=False
        )
    fast_redelivery = (
        '{"visibility_timeout": 4, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}'
    )
    env = {
        "SHOP_RECS_ENCODE_BATCH_SIZE": "4",
        "SHOP_RECS_BROKER_TRANSPORT_OPTIONS": fast_redelivery,
    }
    done = lambda: ItemEncoding.objects.filter(status="done").count()  # noqa: E731
    with Workers(redis_url) as workers:
        first = workers.start(env)
        encode_items.delay([item.pk for item in items])
        assert wait_for(lambda: done() >= 4, 180, interval=0.02), "no batch finished"
        workers.kill(first)  # SIGKILL between or inside batches: no ack, no warm shutdown
        killed_at = done()
        assert 0 < killed_at < n, f"kill came too late ({killed_at} of {n} done)"
        workers.start(env)  # the task is redelivered after the visibility timeout
        assert wait_for(lambda: done() == n, 240), f"only {done()} of {n} encoded"
    for space in ("text", "image", "content"):
        assert ItemEmbedding.objects.filter(space=space).count() == n  # none lost, none doubled
    assert ItemEmbedding.objects.values("item_id", "space").distinct().count() == 3 * n


def test_item5_with_a_broker_an_upload_only_queues_the_encoding(api, redis_url) -> None:
    """Issue 14, item 5: with a broker configured, the request stores the image and queues a
    task; decoding and encoding happen in a worker, never in the web process."""
    import redis

    from shop_recs.catalog.models import ItemImageEmbedding
    from tests.test_encoding_pipeline import photo_jpeg

    big = photo_jpeg((4000, 3000), seed=3)
    with Workers(redis_url) as workers:
        assert (
            api.post(
                "/api/v1/items/", {"external_id": "cam", "title": "Camera bag"}, format="json"
            ).status_code
            == 201
        )
        response = api.post(
            "/api/v1/items/cam/images/",
            {"file": SimpleUploadedFile("cam.jpg", big)},
            format="multipart",
        )
        assert response.status_code == 201, response.content
        assert not ItemImageEmbedding.objects.exists()
        assert not ItemEmbedding.objects.filter(item__external_id="cam").exists()
        assert api.get("/api/v1/items/cam/").json()["encoding"]["status"] == "pending"
        queue = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
        queued = [m.decode() for m in queue.lrange(workers.queue, 0, -1)]
        assert any("shop_recs.workers.tasks.encode_items" in m for m in queued), queued
        workers.start()
        assert wait_for(lambda: encoded("cam"), 180), "the worker did not encode the item"
    assert ItemImageEmbedding.objects.filter(image__item__external_id="cam").count() == 1
