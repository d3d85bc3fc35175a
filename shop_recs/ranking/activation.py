"""Activation: the active model's item vectors in pgvector (space ``hybrid``, inner product).

Activating a version writes its item tower's vectors for every encoded item and switches the
active flag in one transaction; items encoded later get their vectors from the active model's
item tower without retraining (:func:`hybrid_vectors_refresh`, run after each encoding batch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from shop_recs.catalog.models import ItemEmbedding, ModelVersion, Space
from shop_recs.catalog.vectors import ensure_index
from shop_recs.ranking.dataset import TrainingError, catalog_features
from shop_recs.ranking.registry import active_model, load_model

logger = logging.getLogger(__name__)

HYBRID_ENCODER = "hybrid"


def hybrid_vectors_write(
    *, model: Any, version: ModelVersion, item_ids: Sequence[int] | None = None
) -> int:
    """Write the item tower's vectors of these items (default: every encoded item) to the
    ``hybrid`` space. Items the model was trained on include their ID part; others are
    content-only, which is how an item created after training is recommended right away."""
    dims = model.feature_dims
    catalog = catalog_features(
        item_ids=item_ids,
        text_dim=dims["text_dim"] or None,
        image_dim=dims["image_dim"],
        model=model,
    )
    if not catalog.item_ids:
        return 0
    vectors = model.item_vectors(catalog.features, catalog.external_ids)
    dim = int(vectors.shape[1])
    ensure_index(Space.HYBRID, dim)
    now = timezone.now()
    rows = [
        ItemEmbedding(
            item_id=pk,
            space=Space.HYBRID,
            dim=dim,
            vector=vec.astype(np.float32),
            encoder=HYBRID_ENCODER,
            encoder_version=str(version.model_version or version.pk),
            content_hash=f"model-{version.pk}",
            updated_at=now,
        )
        for pk, vec in zip(catalog.item_ids, vectors, strict=True)
    ]
    for start in range(0, len(rows), 2000):
        ItemEmbedding.objects.bulk_create(
            rows[start : start + 2000],
            update_conflicts=True,
            unique_fields=["item", "space"],
            update_fields=["dim", "vector", "encoder", "encoder_version", "content_hash",
                           "updated_at"],
        )  # fmt: skip
    return len(rows)


def model_activate(*, version: ModelVersion, model: Any = None) -> int:
    """Make ``version`` the active model: write its item vectors, then switch, atomically for
    readers (they see the old vectors and model or the new ones). Returns vectors written."""
    if version.status != ModelVersion.Status.READY:
        raise TrainingError(f"Model {version.pk} is {version.status}, not ready: cannot activate.")
    model = model if model is not None else load_model(version)
    with transaction.atomic():
        written = hybrid_vectors_write(model=model, version=version)
        ItemEmbedding.objects.filter(space=Space.HYBRID).exclude(
            content_hash=f"model-{version.pk}"
        ).delete()
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    logger.info("activated model %s (%d item vectors)", version.pk, written)
    return written


def model_rollback() -> ModelVersion:
    """Activate the version that was active before the current one."""
    current = ModelVersion.objects.filter(is_active=True).first()
    previous = (
        ModelVersion.objects.filter(status=ModelVersion.Status.READY, activated_at__isnull=False)
        .exclude(pk=getattr(current, "pk", None))
        .order_by("-activated_at")
        .first()
    )
    if previous is None:
        raise TrainingError("No earlier activated model to roll back to.")
    model_activate(version=previous)
    return previous


def hybrid_vectors_refresh(*, item_ids: Sequence[int]) -> int:
    """After items were (re-)encoded: their hybrid vectors from the active model's item tower
    (no retraining). Without an active model, nothing to do."""
    found = active_model()
    if found is None or not item_ids:
        return 0
    version, model = found
    return hybrid_vectors_write(model=model, version=version, item_ids=item_ids)
