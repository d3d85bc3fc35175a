"""Encoding service: item text and images -> vectors in pgvector (text, image, content spaces).

Encoders are chosen in the plugin settings by dotted path and loaded once per process. Work is
idempotent: each (item, space) row is upserted, and an item whose text, images and encoder
versions are unchanged since its last encoding is skipped (compared by content hash + version).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.module_loading import import_string
from PIL import Image, UnidentifiedImageError

from shop_recs.catalog.conf import recs_settings
from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding, ItemImage, Space
from shop_recs.catalog.vectors import ensure_index, indexes_deferred
from shop_recs.recsys.encoders import (
    RECIPE_VERSION,
    content_version,
    fuse_content,
    item_text,
    mean_of_normalised,
)

logger = logging.getLogger(__name__)
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: str, options_json: str) -> Any:
    cls = import_string(path)
    logger.info("loading encoder %s %s", path, options_json)
    return cls(**json.loads(options_json))


def text_encoder() -> Any:
    with _lock:
        return _load(
            recs_settings.TEXT_ENCODER,
            json.dumps(recs_settings.TEXT_ENCODER_OPTIONS, sort_keys=True),
        )


def image_encoder() -> Any | None:
    """The configured image encoder; ``"joint"`` reuses a text encoder that also reads images
    (a CLIP model), so both spaces share one embedding space."""
    path = recs_settings.IMAGE_ENCODER
    if not path:
        return None
    if path == "joint":
        encoder = text_encoder()
        if "image" not in encoder.modalities:
            raise ValueError(
                "SHOP_RECS['IMAGE_ENCODER'] is 'joint' but the text encoder "
                f"{encoder.name} reads no images: configure a CLIP model or an image encoder."
            )
        return encoder
    with _lock:
        return _load(path, json.dumps(recs_settings.IMAGE_ENCODER_OPTIONS, sort_keys=True))


def warm_up() -> None:
    """Load the encoders now (worker start-up) rather than in the first task."""
    text_encoder()
    image_encoder()


def encoder_versions() -> dict[str, str]:
    text = text_encoder()
    image = image_encoder()
    image_version = image.version if image is not None else "none"
    weight = float(recs_settings.CONTENT_TEXT_WEIGHT)
    return {
        Space.TEXT: f"{text.version};recipe={RECIPE_VERSION}",
        Space.IMAGE: image_version,
        Space.CONTENT: content_version(text.version, image_version, weight),
    }


def item_text_of(item: Item) -> str:
    return item_text(
        title=item.title,
        category=item.category,
        brand=item.brand,
        description=item.description,
        attributes=item.attributes,
        attribute_keys=recs_settings.TEXT_ATTRIBUTE_KEYS,
    )


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class EncodeReport:
    encoded: int = 0
    skipped: int = 0
    failed: int = 0
    images_encoded: int = 0
    images_failed: int = 0
    seconds: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)

    def add(self, other: EncodeReport) -> None:
        for name in ("encoded", "skipped", "failed", "images_encoded", "images_failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)

    def summary(self) -> str:
        rate = self.encoded / self.seconds if self.seconds else 0.0
        return (
            f"encoded {self.encoded} items ({self.images_encoded} images), skipped "
            f"{self.skipped} unchanged, failed {self.failed} items and {self.images_failed} "
            f"images in {self.seconds:.1f}s ({rate:.1f} items/s)"
        )


def items_encode(
    *,
    item_ids: Sequence[int],
    force: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], Any] | None = None,
    bulk: bool | None = None,
) -> EncodeReport:
    """Encode items in batches; each batch commits on its own, so a crash loses at most one.

    ``bulk`` (default: when at least ``ENCODE_BULK_MIN`` items and half the catalogue are
    encoded at once, e.g. ``recs_encode --all`` or a first import) builds the content spaces'
    HNSW indexes once at the end instead of maintaining them for every row.
    """
    batch_size = batch_size or int(recs_settings.ENCODE_BATCH_SIZE)
    report = EncodeReport()
    started = time.perf_counter()
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    if bulk is None:
        minimum = int(recs_settings.ENCODE_BULK_MIN)
        bulk = 0 < minimum <= len(ids) and 2 * len(ids) >= Item.objects.count()
    deferred = indexes_deferred([Space.TEXT, Space.IMAGE, Space.CONTENT]) if bulk else nullcontext()
    with deferred:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            report.add(_encode_batch(chunk, force=force))
            if progress is not None:
                progress(len(chunk))
    report.seconds = time.perf_counter() - started
    return report


def _load_image(image: ItemImage) -> Image.Image:
    with image.file.open("rb") as fh, Image.open(fh) as img:
        if img.width * img.height > recs_settings.MAX_IMAGE_PIXELS:
            raise ValueError(f"image is too large: {img.width}x{img.height} pixels")
        img.load()
        return img.convert("RGB")


def _encode_batch(ids: list[int], *, force: bool) -> EncodeReport:
    report = EncodeReport()
    items = list(
        Item.objects.filter(pk__in=ids)
        .prefetch_related(
            Prefetch(
                "images",
                queryset=ItemImage.objects.filter(status=ItemImage.Status.READY)
                .exclude(file="")
                .order_by("position", "id"),
            ),
            Prefetch(
                "embeddings",
                queryset=ItemEmbedding.objects.only(
                    "item_id", "space", "content_hash", "encoder_version"
                ),
            ),
        )
        .order_by("pk")
    )
    if not items:
        return report
    versions = encoder_versions()
    text_enc, image_enc = text_encoder(), image_encoder()

    texts = {item.pk: item_text_of(item) for item in items}
    hashes: dict[int, dict[str, str]] = {}
    todo: list[Item] = []
    skipped: list[int] = []
    for item in items:
        text_hash = _sha(texts[item.pk])
        image_hash = _sha(*sorted(img.checksum for img in item.images.all()))
        has_images = image_enc is not None and bool(item.images.all())
        wanted = {Space.TEXT: text_hash, Space.CONTENT: _sha(text_hash, image_hash)}
        if has_images:
            wanted[Space.IMAGE] = image_hash
        hashes[item.pk] = wanted
        stored = {
            e.space: (e.content_hash, e.encoder_version)
            for e in item.embeddings.all()
            if e.space != Space.HYBRID
        }
        current = {space: (h, versions[space]) for space, h in wanted.items()}
        if not force and stored == current:
            skipped.append(item.pk)
        else:
            todo.append(item)
    report.skipped = len(skipped)
    if skipped:
        # Unchanged since the last encoding (e.g. a re-save without content change).
        ItemEncoding.objects.filter(pk__in=skipped, status=ItemEncoding.Status.PENDING).update(
            status=ItemEncoding.Status.DONE
        )
    if not todo:
        return report

    # Images: decode each; a bad file fails that image only, never the item.
    pixels: list[Image.Image] = []
    owners: list[int] = []
    failed_images: list[ItemImage] = []
    if image_enc is not None:
        for item in todo:
            for image in item.images.all():
                try:
                    pixels.append(_load_image(image))
                    owners.append(item.pk)
                except (
                    OSError,
                    ValueError,
                    SyntaxError,
                    UnidentifiedImageError,
                    Image.DecompressionBombError,
                ) as exc:
                    image.status, image.error = ItemImage.Status.FAILED, f"cannot decode: {exc}"
                    failed_images.append(image)
    try:
        text_vecs = text_enc.encode_texts([texts[i.pk] for i in todo])
        image_vecs = image_enc.encode_images(pixels) if pixels else None
    except Exception as exc:  # an encoder crash: record it on the items, keep the worker alive
        logger.exception("encoding failed for items %s", [i.pk for i in todo])
        ItemEncoding.objects.filter(pk__in=[i.pk for i in todo]).update(
            status=ItemEncoding.Status.FAILED, error=f"encoder error: {exc}"[:2000]
        )
        report.failed += len(todo)
        report.errors.update({i.pk: str(exc) for i in todo})
        return report

    per_item: dict[int, list[np.ndarray]] = {}
    if image_vecs is not None:
        for owner, vec in zip(owners, image_vecs, strict=True):
            per_item.setdefault(owner, []).append(vec)
    weight = float(recs_settings.CONTENT_TEXT_WEIGHT)
    rows: list[ItemEmbedding] = []
    now = timezone.now()
    drop_image: list[int] = []
    failed_ids = {img.pk for img in failed_images}
    for item, text_vec in zip(todo, text_vecs, strict=True):
        image_vec = mean_of_normalised(np.stack(per_item[item.pk])) if item.pk in per_item else None
        # Hash the images that were actually encoded: failed ones are no longer READY, so the
        # next run computes the same hash and skips the item.
        image_hash = _sha(
            *sorted(img.checksum for img in item.images.all() if img.pk not in failed_ids)
        )
        text_hash = hashes[item.pk][Space.TEXT]
        vectors = {
            Space.TEXT: (text_vec, text_enc.name, text_hash),
            Space.CONTENT: (
                fuse_content(
                    text_vec,
                    image_vec,
                    text_weight=weight,
                    image_dim=image_enc.dim if image_enc is not None else 0,
                ),
                "content",
                _sha(text_hash, image_hash),
            ),
        }
        if image_vec is None:
            drop_image.append(item.pk)
        else:
            vectors[Space.IMAGE] = (image_vec, image_enc.name, image_hash)
        for space, (vec, name, content_hash) in vectors.items():
            rows.append(
                ItemEmbedding(
                    item_id=item.pk,
                    space=space,
                    dim=int(vec.shape[-1]),
                    vector=np.asarray(vec, dtype=np.float32),
                    encoder=name,
                    encoder_version=versions[space],
                    content_hash=content_hash,
                    updated_at=now,
                )
            )
    for space, dim in {(r.space, r.dim) for r in rows}:
        ensure_index(space, dim)
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Vectors are derived data: if the server crashes before this commit reaches disk,
            # the items are simply still pending and get encoded again. Not waiting for the WAL
            # flush of every batch (HNSW index pages make it large) saves a good share of the
            # time spent storing.
            cursor.execute("SET LOCAL synchronous_commit = off")
        ItemEmbedding.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["item", "space"],
            update_fields=[
                "dim",
                "vector",
                "encoder",
                "encoder_version",
                "content_hash",
                "updated_at",
            ],
        )
        ItemEmbedding.objects.filter(item_id__in=drop_image, space=Space.IMAGE).delete()
        if failed_images:
            ItemImage.objects.bulk_update(failed_images, ["status", "error"])
        errors = {}
        for image in failed_images:
            errors.setdefault(image.item_id, []).append(f"image {image.pk}: {image.error}")
        ItemEncoding.objects.bulk_create(
            [
                ItemEncoding(
                    item_id=item.pk,
                    status=ItemEncoding.Status.DONE,
                    error="; ".join(errors.get(item.pk, []))[:2000],
                    encoded_at=now,
                    attempts=1,
                )
                for item in todo
            ],
            update_conflicts=True,
            unique_fields=["item"],
            update_fields=["status", "error", "encoded_at"],
        )
    if todo:
        # The active model's item tower gives these items hybrid vectors right away (no
        # retraining); a failure there must not undo the content vectors just stored.
        from shop_recs.catalog.training import hybrid_vectors_refresh

        try:
            hybrid_vectors_refresh(item_ids=[item.pk for item in todo])
        except Exception:
            logger.exception("hybrid vectors of items %s could not be written", todo[:5])
    report.encoded += len(todo)
    report.images_encoded += len(pixels)
    report.images_failed += len(failed_images)
    return report


def items_needing_encoding(*, stale: bool = True) -> list[int]:
    """Items never encoded, pending or failed; with ``stale`` also those whose stored encoder
    version differs from the configured encoders'."""
    ids = set(
        Item.objects.exclude(encoding__status=ItemEncoding.Status.DONE).values_list("pk", flat=True)
    )
    if stale:
        versions = encoder_versions()
        for space in (Space.TEXT, Space.CONTENT):
            ids |= set(
                ItemEmbedding.objects.filter(space=space)
                .exclude(encoder_version=versions[space])
                .values_list("item_id", flat=True)
            )
        ids |= set(
            ItemEmbedding.objects.filter(space=Space.IMAGE)
            .exclude(encoder_version=versions[Space.IMAGE])
            .values_list("item_id", flat=True)
        )
    return sorted(ids)
