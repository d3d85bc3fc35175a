"""Encoding service: item text and images -> vectors in pgvector (text, image, content spaces).

Encoders are chosen in the plugin settings (``shop_recs.encoding.encoders``) and loaded once per
process. Work is idempotent: each (item, space) row is upserted, and an item whose text, images
and encoder versions are unchanged since its last encoding is skipped (compared by content hash
+ version). A batch runs in four steps: :func:`_plan` (what needs encoding), :func:`_decode`
(images to pixels, downscaled while decoding; only images without a current vector of their
own; a bad file fails that image only), :func:`_encode` (the encoders; a crash fails the
batch's items, never the worker), :func:`_store` (one transaction). Each image's vector is
stored (``ItemImageEmbedding``), so an item that gains an image encodes that image alone; its
``image`` vector is the mean of its images' normalised vectors, as before. After a batch is
stored, :data:`~shop_recs.catalog.signals.items_encoded` tells the other layers (the active
model's item vectors follow, ``shop_recs.workers.receivers``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Prefetch
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from shop_recs.catalog import signals
from shop_recs.catalog.models import (
    Item,
    ItemEmbedding,
    ItemEncoding,
    ItemImage,
    ItemImageEmbedding,
    Space,
)
from shop_recs.catalog.vectors import base_space, ensure_index, indexes_deferred
from shop_recs.conf import recs_settings
from shop_recs.encoding.encoders import encoder_versions, image_encoder, item_text_of, text_encoder
from shop_recs.recsys.encoders import fuse_content, mean_of_normalised

logger = logging.getLogger(__name__)

#: Why an image cannot be decoded (the image is marked failed, the item still encodes).
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
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
    with deferred, _Storer(overlap=len(ids) > batch_size) as storer:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            report.add(_encode_batch(chunk, force=force, store=storer.store))
            if progress is not None:
                progress(len(chunk))
    report.seconds = time.perf_counter() - started
    return report


class _Storer:
    """Stores each batch (:func:`_store` and what follows it) while the next one is decoded
    and encoded: the encoders wait for no database round trip, which keeps the pipeline's
    throughput close to the bare encoders' (``bench/encoding.py``). One storing thread, so
    batches are stored one at a time and in order; a failure is raised by the next ``store``
    or at the end, as it would have been in line.

    Only outside a transaction: the storing thread has its own database connection, which
    could not see rows the caller has not committed yet (and a caller's rollback could not
    undo what it stored). Inside one, or for a single batch, storing stays in line.
    """

    def __init__(self, *, overlap: bool) -> None:
        self.overlap = overlap and not connection.in_atomic_block
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def __enter__(self) -> _Storer:
        if self.overlap:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="shop_recs-store")
        return self

    def store(self, finish: Callable[[], None]) -> None:
        if self._pool is None:
            finish()
            return
        self._wait()
        self._pending = self._pool.submit(self._in_thread, finish)

    @staticmethod
    def _in_thread(finish: Callable[[], None]) -> None:
        try:
            finish()
        finally:
            connection.close()  # this thread's own connection

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, *exc: object) -> None:
        if self._pool is None:
            return
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


#: Images are decoded at most this large on their shorter side: twice the input of the bundled
#: encoders (224 px), so an encoder's own antialiased resize still has more pixels than it
#: keeps. A 36-megapixel photo then holds ~1 MB of pixels instead of ~100 MB.
DECODE_SHORT_SIDE = 512


def _load_image(image: ItemImage) -> Image.Image:
    """The image as RGB pixels, downscaled to :data:`DECODE_SHORT_SIDE` on its shorter side.
    ``thumbnail`` lets JPEG decode at 1/2, 1/4 or 1/8 scale (``draft``), so a large photo is
    never decoded at full size; other formats are decoded and shrunk right away."""
    with image.file.open("rb") as fh, Image.open(fh) as img:
        if img.width * img.height > recs_settings.MAX_IMAGE_PIXELS:
            raise ValueError(f"image is too large: {img.width}x{img.height} pixels")
        scale = DECODE_SHORT_SIDE / min(img.width, img.height)
        if scale < 1:
            img.thumbnail(
                (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                Image.Resampling.BICUBIC,
            )
        else:
            img.load()
        return img.convert("RGB")


@dataclass
class _Plan:
    """What a batch encodes: the items whose content or encoders changed, their texts and the
    hashes their vectors will be stored under; ``skipped`` are unchanged since last time."""

    todo: list[Item]
    texts: dict[int, str]
    hashes: dict[int, dict[str, str]]
    versions: dict[str, str]
    skipped: list[int] = field(default_factory=list)


@dataclass
class _Decoded:
    pixels: list[Image.Image] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # item pk of each entry of ``pixels``
    images: list[ItemImage] = field(default_factory=list)  # the image of each entry
    # images whose stored vector is current: (item pk, vector), not decoded again
    reused: list[tuple[int, np.ndarray]] = field(default_factory=list)
    failed: list[ItemImage] = field(default_factory=list)
    # filled by _encode: the new per-image vectors, stored by _store
    encoded: list[tuple[ItemImage, np.ndarray]] = field(default_factory=list)


def _plan(ids: list[int], *, force: bool, with_images: bool) -> _Plan | None:
    items = list(
        Item.objects.filter(pk__in=ids)
        .prefetch_related(
            Prefetch(
                "images",
                queryset=ItemImage.objects.filter(status=ItemImage.Status.READY)
                .exclude(file="")
                .select_related("embedding")
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
        return None
    plan = _Plan(todo=[], texts={}, hashes={}, versions=encoder_versions())
    for item in items:
        plan.texts[item.pk] = item_text_of(item)
        text_hash = _sha(plan.texts[item.pk])
        image_hash = _sha(*sorted(img.checksum for img in item.images.all()))
        wanted = {Space.TEXT: text_hash, Space.CONTENT: _sha(text_hash, image_hash)}
        if with_images and item.images.all():
            wanted[Space.IMAGE] = image_hash
        plan.hashes[item.pk] = wanted
        stored = {
            e.space: (e.content_hash, e.encoder_version)
            for e in item.embeddings.all()
            if base_space(e.space) != Space.HYBRID
        }
        current = {space: (h, plan.versions[space]) for space, h in wanted.items()}
        if not force and stored == current:
            plan.skipped.append(item.pk)
        else:
            plan.todo.append(item)
    return plan


def _decode(items: list[Item], *, image_version: str, force: bool) -> _Decoded:
    """The ready images of these items that need encoding, as RGB pixels; the others' stored
    vectors (same file, same encoder version) are reused unless ``force``. A bad file fails
    that image only."""
    out = _Decoded()
    for item in items:
        for image in item.images.all():
            stored = getattr(image, "embedding", None)  # select_related; None when missing
            if (
                not force
                and stored is not None
                and stored.encoder_version == image_version
                and stored.checksum == image.checksum
            ):
                out.reused.append((item.pk, np.asarray(stored.vector, dtype=np.float32)))
                continue
            try:
                out.pixels.append(_load_image(image))
                out.owners.append(item.pk)
                out.images.append(image)
            except DECODE_ERRORS as exc:
                image.status, image.error = ItemImage.Status.FAILED, f"cannot decode: {exc}"
                out.failed.append(image)
    return out


def _encode(
    plan: _Plan, decoded: _Decoded, text_enc: Any, image_enc: Any | None
) -> dict[int, dict[str, tuple[np.ndarray, str, str]]]:
    """The vectors of each item to store: space -> (vector, encoder name, content hash)."""
    text_vecs = text_enc.encode_texts([plan.texts[i.pk] for i in plan.todo])
    per_item: dict[int, list[np.ndarray]] = {}
    if decoded.pixels:
        vecs = image_enc.encode_images(decoded.pixels)
        for owner, image, vec in zip(decoded.owners, decoded.images, vecs, strict=True):
            per_item.setdefault(owner, []).append(vec)
            decoded.encoded.append((image, vec))
        decoded.pixels.clear()  # the batch's pixels are no longer needed
    for owner, vec in decoded.reused:
        per_item.setdefault(owner, []).append(vec)
    weight = float(recs_settings.CONTENT_TEXT_WEIGHT)
    failed_ids = {img.pk for img in decoded.failed}
    out: dict[int, dict[str, tuple[np.ndarray, str, str]]] = {}
    for item, text_vec in zip(plan.todo, text_vecs, strict=True):
        image_vec = mean_of_normalised(np.stack(per_item[item.pk])) if item.pk in per_item else None
        # Hash the images that were actually encoded: failed ones are no longer READY, so the
        # next run computes the same hash and skips the item.
        image_hash = _sha(
            *sorted(img.checksum for img in item.images.all() if img.pk not in failed_ids)
        )
        text_hash = plan.hashes[item.pk][Space.TEXT]
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
        if image_vec is not None:
            vectors[Space.IMAGE] = (image_vec, image_enc.name, image_hash)
        out[item.pk] = vectors
    return out


def _store(
    plan: _Plan, vectors: dict[int, dict[str, tuple[np.ndarray, str, str]]], decoded: _Decoded
) -> None:
    """Upsert the vectors, drop image vectors of items that lost their images, record the
    failed images and mark the items encoded: one transaction."""
    now = timezone.now()
    rows = [
        ItemEmbedding(
            item_id=pk,
            space=space,
            dim=int(vec.shape[-1]),
            vector=np.asarray(vec, dtype=np.float32),
            encoder=name,
            encoder_version=plan.versions[space],
            content_hash=content_hash,
            updated_at=now,
        )
        for pk, spaces in vectors.items()
        for space, (vec, name, content_hash) in spaces.items()
    ]
    drop_image = [pk for pk, spaces in vectors.items() if Space.IMAGE not in spaces]
    image_rows = [
        ItemImageEmbedding(
            image_id=image.pk,
            dim=int(vec.shape[-1]),
            vector=np.asarray(vec, dtype=np.float32),
            encoder_version=plan.versions[Space.IMAGE],
            checksum=image.checksum,
            updated_at=now,
        )
        for image, vec in decoded.encoded
    ]
    for space, dim in {(r.space, r.dim) for r in rows}:
        ensure_index(space, dim)
    errors: dict[int, list[str]] = {}
    for image in decoded.failed:
        errors.setdefault(image.item_id, []).append(f"image {image.pk}: {image.error}")
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
        ItemImageEmbedding.objects.bulk_create(
            image_rows,
            update_conflicts=True,
            unique_fields=["image"],
            update_fields=["dim", "vector", "encoder_version", "checksum", "updated_at"],
        )
        if decoded.failed:
            ItemImage.objects.bulk_update(decoded.failed, ["status", "error"])
        ItemEncoding.objects.bulk_create(
            [
                ItemEncoding(
                    item_id=item.pk,
                    status=ItemEncoding.Status.DONE,
                    error="; ".join(errors.get(item.pk, []))[:2000],
                    encoded_at=now,
                    attempts=1,
                )
                for item in plan.todo
            ],
            update_conflicts=True,
            unique_fields=["item"],
            update_fields=["status", "error", "encoded_at"],
        )


def _encode_batch(
    ids: list[int], *, force: bool, store: Callable[[Callable[[], None]], None] | None = None
) -> EncodeReport:
    report = EncodeReport()
    text_enc, image_enc = text_encoder(), image_encoder()
    plan = _plan(ids, force=force, with_images=image_enc is not None)
    if plan is None:
        return report
    report.skipped = len(plan.skipped)
    if plan.skipped:
        # Unchanged since the last encoding (e.g. a re-save without content change).
        ItemEncoding.objects.filter(pk__in=plan.skipped, status=ItemEncoding.Status.PENDING).update(
            status=ItemEncoding.Status.DONE
        )
    if not plan.todo:
        return report
    decoded = (
        _decode(plan.todo, image_version=plan.versions[Space.IMAGE], force=force)
        if image_enc is not None
        else _Decoded()
    )
    try:
        vectors = _encode(plan, decoded, text_enc, image_enc)
    except Exception as exc:  # an encoder crash: record it on the items, keep the worker alive
        logger.exception("encoding failed for items %s", [i.pk for i in plan.todo])
        ItemEncoding.objects.filter(pk__in=[i.pk for i in plan.todo]).update(
            status=ItemEncoding.Status.FAILED, error=f"encoder error: {exc}"[:2000]
        )
        report.failed += len(plan.todo)
        report.errors.update({i.pk: str(exc) for i in plan.todo})
        return report

    def finish() -> None:
        _store(plan, vectors, decoded)
        # e.g. the active model's item tower gives these items hybrid vectors right away (no
        # retraining); a receiver's failure must not undo the content vectors just stored.
        for _, result in signals.items_encoded.send_robust(
            sender=Item, item_ids=[item.pk for item in plan.todo]
        ):
            if isinstance(result, Exception):
                logger.error("after encoding items %s: %r", [i.pk for i in plan.todo][:5], result)

    (store or _in_line)(finish)
    report.encoded += len(plan.todo)
    report.images_encoded += len(decoded.encoded)
    report.images_failed += len(decoded.failed)
    return report


def _in_line(finish: Callable[[], None]) -> None:
    finish()


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
