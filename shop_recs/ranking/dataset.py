"""The model's training data from the catalogue: stored content vectors as item features, positive
interactions as a :class:`~shop_recs.recsys.base.Dataset`.

Shoppers are keyed by the customer's external id, or ``session:<id>`` for anonymous sessions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction

from shop_recs.catalog.models import Customer, Interaction, Item, ItemEmbedding, Space
from shop_recs.conf import recs_settings
from shop_recs.recsys.base import POSITIVE_RATING, Dataset, ItemFeatures, event_weight
from shop_recs.recsys.idmap import IdMap

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


#: Interaction rows fetched per round trip of the server-side cursor.
CHUNK_ROWS = 50_000


def _weights_of(events: np.ndarray, values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    """:func:`~shop_recs.recsys.base.event_weight` of every row, vectorised per event kind."""
    out = np.zeros(len(events), dtype=np.float32)
    for event in np.unique(events):
        rows = events == event
        out[rows] = event_weight(str(event), POSITIVE_RATING, table)
        if event == "rating":
            out[rows & (values < POSITIVE_RATING)] = 0.0
    return out


def interaction_arrays(
    *, item_pks: Sequence[int], weights: dict[str, float], chunk_rows: int = CHUNK_ROWS
) -> tuple[IdMap, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every positive interaction on these items in time order, streamed from a server-side
    cursor ``chunk_rows`` at a time into numpy arrays: the user map (first appearance order)
    and per row the user index, the row of the item in ``item_pks``, weight and time. Memory is
    the arrays (28 bytes a row) and one chunk: never a model object per row."""
    pks = np.asarray(item_pks, dtype=np.int64)
    order = np.argsort(pks, kind="stable")
    sorted_pks = pks[order]
    user_map = IdMap()
    known: dict[str, int] = {}
    parts: dict[str, list[np.ndarray]] = {"users": [], "items": [], "weights": [], "times": []}
    inter = connection.ops.quote_name(Interaction._meta.db_table)
    customers = connection.ops.quote_name(Customer._meta.db_table)
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(c.external_id, ''), x.session_id, x.item_id, x.event, x.value, "
            f"extract(epoch FROM x.occurred_at)::float8 FROM {inter} x "
            f"LEFT JOIN {customers} c ON c.id = x.customer_id ORDER BY x.occurred_at, x.id"
        )
        while rows := cursor.fetchmany(chunk_rows):
            customer, session, item, event, value, when = (
                np.asarray(c) for c in zip(*rows, strict=True)
            )
            item = item.astype(np.int64)
            at = np.searchsorted(sorted_pks, item)
            at = np.minimum(at, max(len(sorted_pks) - 1, 0))
            keep = (sorted_pks[at] == item) if len(sorted_pks) else np.zeros(len(item), bool)
            weight = _weights_of(event, value.astype(np.float64), weights)
            keys = np.where(
                customer != "",
                customer,
                np.char.add(SESSION_PREFIX, session.astype(str)),
            )
            keep &= weight > 0
            keep &= (customer != "") | (session != "")
            if not keep.any():
                continue
            keys = keys[keep].astype(str)
            # new users in order of first appearance, as Dataset.from_events numbers them
            unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            codes = np.empty(len(unique), dtype=np.int64)
            for n in np.argsort(first, kind="stable"):
                key = str(unique[n])
                code = known.get(key)
                if code is None:
                    code = known[key] = len(known)
                    user_map.extend([key])
                codes[n] = code
            parts["users"].append(codes[inverse.ravel()])
            parts["items"].append(order[at[keep]])
            parts["weights"].append(weight[keep])
            parts["times"].append(when[keep].astype(np.float64))
    dtypes = {"users": np.int64, "items": np.int64, "weights": np.float32, "times": np.float64}
    arrays = {
        name: np.concatenate(chunks) if chunks else np.zeros(0, dtypes[name])
        for name, chunks in parts.items()
    }
    return user_map, arrays["users"], arrays["items"], arrays["weights"], arrays["times"]


def training_dataset(*, chunk_rows: int = CHUNK_ROWS) -> tuple[Dataset, CatalogFeatures]:
    """Every positive interaction on an encoded item, in time order, with the item features;
    streamed from PostgreSQL in chunks (:func:`interaction_arrays`)."""
    catalog = catalog_features()
    if not catalog.item_ids:
        raise TrainingError(
            "No item has a text vector yet: encode the catalogue first "
            "(python manage.py recs_encode)."
        )
    user_map, users, items, weights, times = interaction_arrays(
        item_pks=catalog.item_ids,
        weights=dict(recs_settings.EVENT_WEIGHTS),
        chunk_rows=chunk_rows,
    )
    dataset = Dataset(
        user_map=user_map,
        item_map=IdMap(catalog.external_ids),
        users=users,
        items=items,
        weights=weights,
        times=times,
        item_features=catalog.features,
    )
    return dataset, catalog
