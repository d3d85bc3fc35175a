"""Images registered by URL: recorded at once, downloaded by a worker (SSRF-safe, validated),
stored as files; the item is re-encoded either way.
"""

from __future__ import annotations

import io

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from shop_recs.catalog import signals
from shop_recs.catalog.models import Item, ItemImage
from shop_recs.catalog.services.common import (
    announce_after_commit,
    items_content_changed,
    items_mark_pending,
)
from shop_recs.catalog.services.images import IMAGE_EXTENSIONS, next_image_position
from shop_recs.catalog.validation import inspect_image
from shop_recs.conf import recs_settings
from shop_recs.encoding.fetch import ImageFetchError, fetch_image


def item_image_add_url(*, item: Item, url: str, position: int | None = None) -> ItemImage:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in recs_settings.IMAGE_URL_SCHEMES:
        allowed = ", ".join(recs_settings.IMAGE_URL_SCHEMES)
        raise ValidationError({"url": [f"URL scheme {scheme!r} is not allowed; use {allowed}."]})
    existing = item.images.filter(source_url=url).first()
    if existing is not None:
        return existing
    if position is None:
        position = next_image_position(item)
    with transaction.atomic():
        image = ItemImage.objects.create(item=item, source_url=url, position=position)
        item.save(update_fields=["updated_at"])
        items_mark_pending(item_ids=[item.pk])
        announce_after_commit(signals.item_images_added, image_ids=[image.pk])
    return image


class ImageFetchRetry(ConnectionError):
    """A download failed for a reason that may pass (timeout, connection): try again later."""


TRANSIENT_FETCH_REASONS = frozenset({"timeout", "connection"})


def item_image_fetch(*, image: ItemImage, retry_transient: bool = False) -> ItemImage:
    """Download an image registered by URL (SSRF-safe), validate it, store it as a file.

    A refused or invalid download marks the image failed with the reason; the item keeps its
    other images and is re-encoded either way. With ``retry_transient`` a timeout or connection
    failure raises ImageFetchRetry instead, so the caller (a task) can try again later.
    """
    if image.file or not image.source_url:
        return image
    try:
        fetched = fetch_image(
            image.source_url,
            max_bytes=recs_settings.MAX_IMAGE_BYTES,
            timeout=float(recs_settings.IMAGE_FETCH_TIMEOUT),
            allowed_schemes=tuple(recs_settings.IMAGE_URL_SCHEMES),
            allow_networks=tuple(recs_settings.IMAGE_FETCH_ALLOW_NETWORKS),
        )
        info = inspect_image(io.BytesIO(fetched.data), field="url")
    except ImageFetchError as exc:
        if retry_transient and exc.reason in TRANSIENT_FETCH_REASONS:
            raise ImageFetchRetry(str(exc)) from exc
        return _image_failed(image, f"download refused or failed ({exc.reason}): {exc}")
    except ValidationError as exc:
        return _image_failed(image, "; ".join(exc.messages))
    ext = IMAGE_EXTENSIONS.get(info.format, "img")
    with transaction.atomic():
        image.file.save(f"{info.checksum[:16]}.{ext}", ContentFile(fetched.data), save=False)
        image.width, image.height = info.width, info.height
        image.size_bytes, image.checksum = info.size_bytes, info.checksum
        image.content_type, image.status, image.error = (
            info.content_type,
            ItemImage.Status.READY,
            "",
        )
        image.save()
        items_content_changed([image.item_id])
    return image


def _image_failed(image: ItemImage, reason: str) -> ItemImage:
    with transaction.atomic():
        image.status, image.error = ItemImage.Status.FAILED, reason[:2000]
        image.save(update_fields=["status", "error"])
        items_content_changed([image.item_id])
    return image
