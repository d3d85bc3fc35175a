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
from shop_recs.catalog.services.images import (
    IMAGE_EXTENSIONS,
    item_image_check_room,
    next_image_position,
)
from shop_recs.catalog.validation import inspect_image
from shop_recs.conf import recs_settings
from shop_recs.encoding import addresses
from shop_recs.encoding.fetch import ImageFetchError, fetch_image


def check_image_url(url: str) -> None:
    """Refuse at submission what the downloader would refuse: a scheme outside
    ``IMAGE_URL_SCHEMES``, a malformed URL, or a host that is (or resolves to) an address that
    is not public (loopback, private, link-local, metadata...) outside
    ``IMAGE_FETCH_ALLOW_NETWORKS``. A name that does not resolve now is left to the worker,
    which resolves and checks every hop again (DNS may answer differently by then)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme not in recs_settings.IMAGE_URL_SCHEMES:
        allowed = ", ".join(recs_settings.IMAGE_URL_SCHEMES)
        raise ValidationError({"url": [f"URL scheme {scheme!r} is not allowed; use {allowed}."]})
    try:
        target = addresses.parse_url(url, frozenset(recs_settings.IMAGE_URL_SCHEMES))
    except ImageFetchError as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    try:
        found = addresses.resolve(target)
    except ImageFetchError:
        return
    allowed_networks = addresses.parse_networks(recs_settings.IMAGE_FETCH_ALLOW_NETWORKS)
    for ip in found:
        why = addresses.address_refusal(ip, allowed_networks)
        if why:
            raise ValidationError(
                {
                    "url": [
                        f"Refused: {target.host} is {why} ({ip}). Image URLs must point to "
                        "public addresses; SHOP_RECS['IMAGE_FETCH_ALLOW_NETWORKS'] exempts "
                        "networks such as an internal CDN."
                    ]
                }
            )


def item_image_add_url(*, item: Item, url: str, position: int | None = None) -> ItemImage:
    """Register an image by URL (checked by :func:`check_image_url`); a worker downloads it.

    The same URL again returns the image registered before; if its download failed, it is
    tried again (a fixed server, a file now in place)."""
    check_image_url(url)
    existing = item.images.filter(source_url=url).first()
    if existing is not None:
        if existing.status == ItemImage.Status.FAILED and not existing.file:
            with transaction.atomic():
                existing.status, existing.error = ItemImage.Status.PENDING, ""
                existing.save(update_fields=["status", "error"])
                items_mark_pending(item_ids=[item.pk])
                announce_after_commit(signals.item_images_added, image_ids=[existing.pk])
        return existing
    with transaction.atomic():
        item_image_check_room(item, field="url")
        if position is None:
            position = next_image_position(item)
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
