"""The model's training data from the catalogue: stored content vectors as item features, positive
interactions as a :class:`~shop_recs.recsys.base.Dataset`.

Shoppers are keyed by the customer's external id, or ``session:<id>`` for anonymous sessions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shop_recs.catalog.models import Interaction, Item, ItemEmbedding, Space
from shop_recs.conf import recs_settings
from shop_recs.recsys.base import Dataset, ItemFeatures

SESSION_PREFIX = "session:"


class TrainingError(Exception):
    """Training cannot run (too little data, nothing encoded); the message says what to do."""


def user_key(*, customer_external_id: str | None, session_id: str = "") -> str | None:
    """The model's id of a shopper: the customer's external id, else ``session:<id>``."""
    if customer_external_id:
        return customer_external_id
    return f"{SESSION_PREFIX}{session_id}" if session_id else None


def _stored_vectors(space: str, item_ids: Sequence[int] | None) -> dict[int, np.ndarray]:
    qs = ItemEmbedding.objects.filter(space=space)
    if item_ids is not None:
        qs = qs.filter(item_id__in=list(item_ids))
    return {
        item_id: np.asarray(vector, dtype=np.float32)
        for item_id, vector in qs.values_list("item_id", "vector").iterator(chunk_size=2000)
    }


def _majority_dim(vectors: dict[int, np.ndarray]) -> int | None:
    dims = Counter(len(v) for v in vectors.values())
    return dims.most_common(1)[0][0] if dims else None


@dataclass
class CatalogFeatures:
    """Features of the items that have a usable text vector, row i = ``item_ids[i]``."""

    item_ids: list[int]
    external_ids: list[str]
    features: ItemFeatures


def catalog_features(
    *,
    item_ids: Sequence[int] | None = None,
    text_dim: int | None = None,
    image_dim: int | None = None,
    model: Any = None,
) -> CatalogFeatures:
    """Content features of items from their stored text and image vectors.

    Items without a text vector (of ``text_dim``, default the most common) are left out: they
    are not encoded yet. With ``model``, category/brand codes follow its vocabulary (new names
    get 0); without, the vocabulary is built from these items (training).
    """
    text = _stored_vectors(Space.TEXT, item_ids)
    text_dim = text_dim or _majority_dim(text)
    rows = Item.objects.order_by("pk")
    if item_ids is not None:
        rows = rows.filter(pk__in=list(item_ids))
    items = [
        (pk, ext, category, brand)
        for pk, ext, category, brand in rows.values_list("pk", "external_id", "category", "brand")
        if pk in text and len(text[pk]) == text_dim
    ]
    pks = [i[0] for i in items]
    image = _stored_vectors(Space.IMAGE, pks) if pks else {}
    image_dim = image_dim if image_dim is not None else (_majority_dim(image) or 0)
    n = len(items)
    text_m = np.zeros((n, text_dim or 0), dtype=np.float32)
    image_m = np.zeros((n, image_dim), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    for row, pk in enumerate(pks):
        text_m[row] = text[pk]
        vec = image.get(pk)
        if image_dim and vec is not None and len(vec) == image_dim:
            image_m[row], mask[row] = vec, True
    categories = [i[2] for i in items]
    brands = [i[3] for i in items]
    if model is not None:
        category_names, brand_names = list(model.category_names), list(model.brand_names)
        category_codes = model.codes("category", categories)
        brand_codes = model.codes("brand", brands)
    else:
        category_names = ["", *sorted({c for c in categories if c})]
        brand_names = ["", *sorted({b for b in brands if b})]
        cat_index = {name: i for i, name in enumerate(category_names)}
        brand_index = {name: i for i, name in enumerate(brand_names)}
        category_codes = np.array([cat_index.get(c, 0) for c in categories], dtype=np.int64)
        brand_codes = np.array([brand_index.get(b, 0) for b in brands], dtype=np.int64)
    features = ItemFeatures(
        text=text_m,
        image=image_m if image_dim else None,
        image_mask=mask if image_dim else None,
        category=category_codes,
        brand=brand_codes,
        category_names=category_names,
        brand_names=brand_names,
    )
    return CatalogFeatures(pks, [i[1] for i in items], features)


def training_dataset() -> tuple[Dataset, CatalogFeatures]:
    """Every positive interaction on an encoded item, in time order, with the item features."""
    catalog = catalog_features()
    if not catalog.item_ids:
        raise TrainingError(
            "No item has a text vector yet: encode the catalogue first "
            "(python manage.py recs_encode)."
        )
    by_pk = dict(zip(catalog.item_ids, catalog.external_ids, strict=True))

    def events() -> Iterable[tuple[str, str, str, float, float]]:
        rows = (
            Interaction.objects.filter(item_id__in=catalog.item_ids)
            .order_by("occurred_at", "id")
            .values_list(
                "customer__external_id", "session_id", "item_id", "event", "value", "occurred_at"
            )
        )
        for customer, session, item_id, event, value, when in rows.iterator(chunk_size=5000):
            user = user_key(customer_external_id=customer, session_id=session)
            if user is not None:
                yield user, by_pk[item_id], event, float(value), when.timestamp()

    dataset = Dataset.from_events(
        events(),
        item_ids=catalog.external_ids,
        item_features=catalog.features,
        weights=recs_settings.EVENT_WEIGHTS,
    )
    return dataset, catalog
