"""Mirroring a product: its item (and images) created or updated through the catalog services,
deactivated when the product is gone. The model signals that ask for it are :mod:`.watch`; the
queue that runs it outside the shop's request is :mod:`.queue`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import models, transaction

from shop_recs.catalog import services
from shop_recs.catalog.models import Item, ItemEncoding
from shop_recs.encoding.images import item_image_add_url
from shop_recs.storefront.source.checks import _require_source, item_source
from shop_recs.storefront.source.values import ImageRef, ItemSource

logger = logging.getLogger(__name__)


@dataclass
class _Plan:
    fields: dict[str, Any]
    attributes: dict[str, Any]
    changes: dict[str, Any]
    marker: dict[str, Any]
    marker_changed: bool
    images_changed: bool


def _plan(source: ItemSource, data: dict[str, Any], item: Item | None) -> _Plan:
    fields = {n: data[n] for n in Item.DATA_FIELDS if n in data and n != "attributes"}
    old_attributes = item.attributes if item is not None else {}
    old_marker = item.source if item is not None else None
    marker: dict[str, Any] = {"model": source.label}
    images_changed = False
    if source.maps_images:
        marker["images"] = [ref.key for ref in data["images"]]
        images_changed = (
            item is None
            or not isinstance(old_marker, dict)
            or old_marker.get("images") != marker["images"]
        )
    # not mapped: keep what the API or an import stored
    attributes = data["attributes"] if "attributes" in data else dict(old_attributes)
    wanted = {**fields, "attributes": attributes}
    changes = wanted if item is None else {n: v for n, v in wanted.items() if getattr(item, n) != v}
    return _Plan(fields, attributes, changes, marker, old_marker != marker, images_changed)


def _sync_images(item: Item, refs: Sequence[ImageRef], *, announce: bool) -> None:
    """Make the item's images those of the product: delete the others first (so a product at
    the ``MAX_IMAGES_PER_ITEM`` cap can swap an image), then add the new ones (files are copied
    into the plugin's storage, deduplicated by checksum; URLs are fetched by a worker). An image
    that cannot be read or is invalid is skipped with a warning."""
    files: dict[str, bytes] = {}
    for ref in refs:
        if not ref.url:
            try:
                with default_storage.open(ref.name, "rb") as fh:
                    files[ref.name] = fh.read()
            except OSError as exc:
                logger.warning("image %s of item %s skipped: %s", ref.name, item.external_id, exc)
    wanted_urls = {ref.url for ref in refs if ref.url}
    wanted_sums = {hashlib.sha256(data).hexdigest() for data in files.values()}
    for image in item.images.all():
        if image.source_url in wanted_urls or (image.checksum and image.checksum in wanted_sums):
            continue
        services.item_image_delete(image=image)
    for position, ref in enumerate(refs):
        if not ref.url and ref.name not in files:
            continue  # unreadable: warned above
        try:
            if ref.url:
                item_image_add_url(item=item, url=ref.url, position=position)
            else:
                services.item_image_add_file(
                    item=item,
                    upload=io.BytesIO(files[ref.name]),
                    filename=posixpath.basename(ref.name),
                    position=position,
                    announce=announce,
                )
        except ValidationError as exc:
            logger.warning(
                "image %s of item %s skipped: %s",
                ref.url or ref.name,
                item.external_id,
                "; ".join(exc.messages),
            )


def _sync_data(
    source: ItemSource, data: dict[str, Any], *, dry_run: bool = False, announce: bool = True
) -> tuple[Item | None, str]:
    external_id = data["external_id"]
    if dry_run:
        item = Item.objects.filter(external_id=external_id).first()
        plan = _plan(source, data, item)
        if item is None:
            return None, "created"
        changed = plan.changes or plan.marker_changed or plan.images_changed
        return item, "updated" if changed else "unchanged"
    for attempt in range(2):
        try:
            with transaction.atomic():
                item = Item.objects.select_for_update().filter(external_id=external_id).first()
                plan = _plan(source, data, item)
                # the item's row, then its images: announced for encoding once, at the end
                if item is None:
                    item = services.item_create(
                        external_id=external_id,
                        **plan.fields,
                        attributes=plan.attributes,
                        announce=False,
                    )
                    outcome = "created"
                elif plan.changes:
                    services.item_update(item=item, data=plan.changes, announce=False)
                    outcome = "updated"
                else:
                    outcome = "unchanged"
                if plan.marker_changed:
                    Item.objects.filter(pk=item.pk).update(source=plan.marker)
                    item.source = plan.marker
                    if outcome == "unchanged":
                        outcome = "updated"
                if plan.images_changed:
                    _sync_images(item, data["images"], announce=False)
                    outcome = "created" if outcome == "created" else "updated"
                if announce and outcome != "unchanged":
                    announce_pending([item.pk])
            return item, outcome
        except services.AlreadyExists:
            if attempt:  # created concurrently: the second try updates it
                raise
    raise AssertionError("unreachable")


def announce_pending(item_ids: list[int]) -> None:
    """Queue the encoding of those items whose content changed (a price or stock change marks
    nothing pending), once, after commit."""
    pending = ItemEncoding.objects.filter(pk__in=item_ids, status=ItemEncoding.Status.PENDING)
    services.items_announce_changed(item_ids=sorted(pending.values_list("pk", flat=True)))


def product_sync(*, product: models.Model) -> Item:
    """Create or update the plugin item (and its images) of a shop product.

    Goes through the catalog services: the same validation as the REST API, the item is
    marked pending and encoded after commit when its content changed; an unchanged product
    changes nothing (and is not re-encoded). Raises ValidationError naming the product's
    fields that cannot be mirrored.
    """
    source = _require_source()
    try:
        data = source.read(product)
    except ValidationError as exc:
        raise _with_product(exc, source, product) from None
    item, _ = _sync_data(source, data)
    assert item is not None
    return item


def _with_product(exc: ValidationError, source: ItemSource, product: Any) -> ValidationError:
    return ValidationError(
        {
            name: [f"{source.label} {product.pk}: {message}" for message in messages]
            for name, messages in exc.message_dict.items()
        }
    )


def product_removed(*, external_id: str) -> None:
    """The product is gone: deactivate its item, so it leaves every recommendation.

    Deactivated, not deleted: deleting an item deletes its interactions (the shoppers' history
    that trains the model and explains their recommendations), the merchandising rules that
    name it and its vectors, and a product restored or re-created with the same id would start
    from nothing. An inactive item is kept for that history and never served.
    """
    item = Item.objects.filter(external_id=external_id).first()
    if item is not None and item.is_active:
        services.item_update(item=item, data={"is_active": False})


def mirror_products(*, pks: Sequence[Any] = (), removed: Sequence[str] = ()) -> int:
    """Mirror these products (by primary key) and deactivate the items of these removed
    external ids: the work the mirroring queue (:mod:`.queue`) hands out, in a background
    thread, a worker's task or, with ``MIRROR_DELAY_SECONDS = 0``, right after the commit.

    Each product is read again, as committed: a variant stands for its parent (``PARENT``), a
    product outside the QUERYSET (e.g. unpublished) is removed. Removals run first, so a
    product deleted and re-created under the same id ends up active. One product's failure is
    logged and never stops the others. Returns the number of products mirrored.
    """
    source = item_source()
    if source is None:
        return 0
    for external_id in dict.fromkeys(removed):
        try:
            product_removed(external_id=external_id)
        except Exception:
            logger.exception(
                "shop_recs: the deletion of %s (item %s) could not be mirrored; run "
                "`python manage.py recs_sync`",
                source.label,
                external_id,
            )
    done: set[Any] = set()
    for pk in dict.fromkeys(pks):
        try:
            product = source.model._default_manager.filter(pk=pk).first()
            if product is None:  # deleted since: its own removal was queued
                continue
            target = source.item_product(product)
            if target.pk in done:
                continue
            done.add(target.pk)
            # Read again after commit: the committed state, with the QUERYSET's filters and
            # prefetches (a product outside it, e.g. unpublished, is not offered).
            offered = source.queryset().filter(pk=target.pk).first()
            if offered is None:
                product_removed(external_id=source.external_id_of(target))
            else:
                product_sync(product=offered)
        except Exception:
            logger.exception(
                "shop_recs: %s %s could not be mirrored into the recommendations catalog; "
                "fix the cause, then run `python manage.py recs_sync`",
                source.label,
                pk,
            )
    return len(done)
