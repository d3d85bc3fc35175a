"""Item images stored as files: add (validated, deduplicated by checksum) and delete.

Images registered by URL are downloaded by the encoding layer (``shop_recs.encoding.images``).
"""

from __future__ import annotations

from typing import IO

from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import transaction
from django.db.models import Max

from shop_recs.catalog.models import Item, ItemImage
from shop_recs.catalog.services.common import items_content_changed
from shop_recs.catalog.validation import inspect_image
from shop_recs.conf import recs_settings

# Fields whose change alters what an encoder sees; price/stock changes do not re-encode.
IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


def item_image_add_file(
    *,
    item: Item,
    upload: IO[bytes],
    filename: str,
    position: int | None = None,
    announce: bool = True,
) -> ItemImage:
    info = inspect_image(upload, field="file")
    existing = item.images.filter(checksum=info.checksum).first()
    if existing is not None:
        # The same bytes again: keep one copy (imports and retries re-send images).
        return existing
    ext = IMAGE_EXTENSIONS.get(info.format, "img")
    name = f"{info.checksum[:16]}.{ext}"
    with transaction.atomic():
        item_image_check_room(item, field="file")
        if position is None:
            position = next_image_position(item)
        image = ItemImage(
            item=item,
            position=position,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            checksum=info.checksum,
            content_type=info.content_type,
            status=ItemImage.Status.READY,
        )
        image.file.save(name, File(upload, name=filename or name), save=False)
        image.save()
        item.save(update_fields=["updated_at"])
        items_content_changed([item.pk], announce=announce)
    return image


def item_image_check_room(item: Item, *, field: str) -> None:
    """Refuse one more image when the item holds ``MAX_IMAGES_PER_ITEM`` already (every image
    is decoded and encoded by the workers). Call it inside the transaction that adds the
    image: it locks the item's row, so concurrent uploads cannot pass the cap together."""
    limit = int(recs_settings.MAX_IMAGES_PER_ITEM)
    Item.objects.select_for_update().filter(pk=item.pk).values_list("pk").first()
    count = ItemImage.objects.filter(item_id=item.pk).count()
    if count >= limit:
        raise ValidationError(
            {
                field: [
                    f"Item {item.external_id!r} has {count} images, the most allowed "
                    f"(SHOP_RECS['MAX_IMAGES_PER_ITEM'] = {limit}): delete one first."
                ]
            }
        )


def item_image_delete(*, image: ItemImage) -> None:
    item = image.item
    with transaction.atomic():
        if image.file:
            image.file.delete(save=False)
        image.delete()
        item.save(update_fields=["updated_at"])
        items_content_changed([item.pk])


def next_image_position(item: Item) -> int:
    last = item.images.aggregate(m=Max("position"))["m"]
    return 0 if last is None else last + 1
