"""Activation: the active model's item vectors in pgvector, one space per model version.

A version's item tower vectors are the stored space ``hybrid@<version id>``
(:func:`shop_recs.catalog.vectors.space_key`). Activating a version writes them beside the
live ones in batches (each its own short transaction), builds their IVFFlat index with
``CREATE INDEX CONCURRENTLY``, and only then moves the active pointer
(``ModelVersion.is_active``) in one tiny transaction: readers see the old model and its vectors
or the new ones, always with an index. The previous version's space is kept, so a rollback is
a pointer switch (plus the items encoded since); older ones are dropped.

Activations are serialised by a PostgreSQL advisory lock (:func:`activation_lock`): two at
once (an admin click while a scheduled training activates) run one after the other, and the
space of whichever ends up active is never dropped by the other.

Items encoded later get their vectors from the active model's item tower without retraining
(:func:`hybrid_vectors_refresh`, run after each encoding batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from shop_recs.catalog.models import ItemEmbedding, ModelVersion, Space
from shop_recs.catalog.vectors import (
    drop_space,
    embedding_table,
    ensure_index,
    space_indexes,
    space_key,
    to_literal,
)
from shop_recs.ranking.dataset import TrainingError, catalog_features
from shop_recs.ranking.registry import active_model, load_model

logger = logging.getLogger(__name__)

HYBRID_ENCODER = "hybrid"
#: Items per batch when a whole catalogue's vectors are written (bounded memory, short
#: transactions).
WRITE_BATCH = 20_000
#: Key of the session-level advisory lock held while a version is activated.
ACTIVATION_LOCK_KEY = 0x5EC5_AC71


#: How long an activation waits for another one to finish before giving up.
ACTIVATION_LOCK_WAIT_SECONDS = 3600.0


@contextmanager
def activation_lock(wait_seconds: float = ACTIVATION_LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold the activation lock on this connection, waiting for another activation to end.

    Session-level, not transactional. The wait polls ``pg_try_advisory_lock`` instead of
    blocking in ``pg_advisory_lock``: a blocked statement keeps its transaction open, and the
    other activation's ``CREATE INDEX CONCURRENTLY`` waits for every open transaction, which
    would deadlock the two.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ACTIVATION_LOCK_KEY])
            (locked,) = cursor.fetchone()
        if locked:
            break
        if time.monotonic() > deadline:
            raise TrainingError(
                f"Another model activation has run for over {wait_seconds:.0f} s; try again "
                "when it has finished (the model versions page shows the active one)."
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ACTIVATION_LOCK_KEY])


def _encoded_item_ids() -> list[int]:
    """Items with a content vector (encoded), in id order."""
    return list(
        ItemEmbedding.objects.filter(space=Space.CONTENT)
        .order_by("item_id")
        .values_list("item_id", flat=True)
    )


def _stale_item_ids(space: str) -> list[int]:
    """Encoded items without a vector in ``space`` or whose content was encoded after it."""
    table = embedding_table()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.item_id FROM {table} c LEFT JOIN {table} h ON h.item_id = c.item_id "
            "AND h.space = %s WHERE c.space = %s AND (h.id IS NULL OR h.updated_at < "
            "c.updated_at) ORDER BY c.item_id",
            [space, Space.CONTENT.value],
        )
        return [pk for (pk,) in cursor.fetchall()]


def _copy_rows(rows: list[tuple[Any, ...]]) -> None:
    """Insert new rows with COPY (a fresh version's space: nothing to update)."""
    columns = "item_id, space, dim, vector, encoder, encoder_version, content_hash, updated_at"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's cursor: COPY streams rows without one INSERT each
        with raw.copy(f"COPY {embedding_table()} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def hybrid_vectors_write(
    *,
    model: Any,
    version: ModelVersion,
    item_ids: Sequence[int] | None = None,
    fresh: bool = False,
) -> int:
    """Write the item tower's vectors of these items (default: every encoded item) to the
    version's space, in batches. Items the model was trained on include their ID part; others
    are content-only, which is how an item created after training is recommended right away.
    ``fresh``: none of these items has a row in that space yet (COPY instead of upserts)."""
    space = space_key(Space.HYBRID, version.pk)
    dims = model.feature_dims
    ids = _encoded_item_ids() if item_ids is None else sorted(set(int(i) for i in item_ids))
    written = 0
    for start in range(0, len(ids), WRITE_BATCH):
        catalog = catalog_features(
            item_ids=ids[start : start + WRITE_BATCH],
            text_dim=dims["text_dim"] or None,
            image_dim=dims["image_dim"],
            model=model,
        )
        if not catalog.item_ids:
            continue
        vectors = np.asarray(
            model.item_vectors(catalog.features, catalog.external_ids), dtype=np.float32
        )
        dim = int(vectors.shape[1])
        now = timezone.now()
        tag = str(version.model_version or version.pk)
        if not fresh:
            # a live space: its index exists (a cached check), rows go into it as they land
            ensure_index(space, dim, concurrently=True)
        with transaction.atomic():
            if fresh:
                _copy_rows(
                    [
                        (pk, space, dim, to_literal(vec), HYBRID_ENCODER, tag,
                         f"model-{version.pk}", now)
                        for pk, vec in zip(catalog.item_ids, vectors, strict=True)
                    ]
                )  # fmt: skip
            else:
                rows = [
                    ItemEmbedding(
                        item_id=pk, space=space, dim=dim, vector=vec, encoder=HYBRID_ENCODER,
                        encoder_version=tag, content_hash=f"model-{version.pk}", updated_at=now,
                    )
                    for pk, vec in zip(catalog.item_ids, vectors, strict=True)
                ]  # fmt: skip
                for at in range(0, len(rows), 2000):
                    ItemEmbedding.objects.bulk_create(
                        rows[at : at + 2000],
                        update_conflicts=True,
                        unique_fields=["item", "space"],
                        update_fields=["dim", "vector", "encoder", "encoder_version",
                                       "content_hash", "updated_at"],
                    )  # fmt: skip
        written += len(catalog.item_ids)
    return written


def _space_dims(space: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT dim FROM {embedding_table()} WHERE space = %s", [space])
        return sorted(int(d) for (d,) in cursor.fetchall())


def _drop_old_spaces(keep: set[str]) -> list[str]:
    """Drop every model version's space except ``keep`` (the active and the previous one)
    and, whatever ``keep`` says, the space of the version active now."""
    keep = {*keep, space_key(Space.HYBRID)}
    candidates = {space for space, _ in space_indexes().values() if space.startswith("hybrid@")}
    candidates |= {
        space_key(Space.HYBRID, pk)
        for pk in ModelVersion.objects.filter(activated_at__isnull=False).values_list(
            "pk", flat=True
        )
    }
    dropped = []
    for space in sorted(candidates - keep):
        if drop_space(space):
            dropped.append(space)
    return dropped


def model_activate(*, version: ModelVersion, model: Any = None) -> int:
    """Make ``version`` the active model without degrading serving: write its item vectors
    beside the live ones (only the missing or stale ones when its space exists, e.g. a
    rollback), build its index concurrently, then switch the pointer atomically. Keeps the
    previous version's space, drops older ones. Returns vectors written. One activation at
    a time (:func:`activation_lock`)."""
    with activation_lock():
        version.refresh_from_db(fields=["status", "is_active", "activated_at"])
        return _activate(version, model)


def _activate(version: ModelVersion, model: Any) -> int:
    if version.status != ModelVersion.Status.READY:
        raise TrainingError(f"Model {version.pk} is {version.status}, not ready: cannot activate.")
    model = model if model is not None else load_model(version)
    space = space_key(Space.HYBRID, version.pk)
    stale = _stale_item_ids(space)
    fresh = not ItemEmbedding.objects.filter(space=space).exists()
    written = hybrid_vectors_write(model=model, version=version, item_ids=stale, fresh=fresh)
    if not _space_dims(space) and stale:
        raise TrainingError(f"Model {version.pk} gave no item vectors: nothing is encoded.")
    if fresh and written:
        # the planner's statistics do not know the new space yet: without them it would rank
        # the first requests after the switch by an exact scan (a second each at 100k items)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {embedding_table()}")
    for dim in _space_dims(space):
        ensure_index(space, dim, concurrently=True)
    with transaction.atomic():
        previous = (
            ModelVersion.objects.select_for_update()
            .filter(is_active=True)
            .exclude(pk=version.pk)
            .values_list("pk", flat=True)
            .first()
        )
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    # items re-encoded while the vectors were being written went to the then active space:
    # now that this one is active, they are refreshed here (and by the encoders from now on)
    late = _stale_item_ids(space)
    if late:
        written += hybrid_vectors_write(model=model, version=version, item_ids=late)
    keep = {space}
    if previous is not None:
        keep.add(space_key(Space.HYBRID, previous))
    else:
        # re-activating the active version: keep the one activated before it
        before = (
            ModelVersion.objects.filter(activated_at__isnull=False)
            .exclude(pk=version.pk)
            .order_by("-activated_at")
            .values_list("pk", flat=True)
            .first()
        )
        if before is not None:
            keep.add(space_key(Space.HYBRID, before))
    dropped = _drop_old_spaces(keep)
    logger.info(
        "activated model %s (%d item vectors written, kept %s, dropped %s)",
        version.pk, written, sorted(keep), dropped,
    )  # fmt: skip
    return written


def rollback_target() -> ModelVersion | None:
    """The version a roll back would activate: the ready one activated most recently before
    the current one, or None."""
    current = ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()
    return (
        ModelVersion.objects.filter(status=ModelVersion.Status.READY, activated_at__isnull=False)
        .exclude(pk=current)
        .order_by("-activated_at")
        .first()
    )


def model_rollback() -> ModelVersion:
    """Activate the version that was active before the current one (its space is kept, so
    this is a pointer switch plus the items encoded since). The choice and the switch hold
    the activation lock (advisory locks nest within a session)."""
    with activation_lock():
        previous = rollback_target()
        if previous is None:
            raise TrainingError("No earlier activated model to roll back to.")
        model_activate(version=previous)
    return previous


def hybrid_vectors_refresh(*, item_ids: Sequence[int]) -> int:
    """After items were (re-)encoded: their hybrid vectors from the active model's item tower
    (no retraining), in the active version's space. Without an active model, nothing to do."""
    found = active_model()
    if found is None or not item_ids:
        return 0
    version, model = found
    return hybrid_vectors_write(model=model, version=version, item_ids=item_ids)
