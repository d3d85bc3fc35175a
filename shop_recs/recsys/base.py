"""The interface every recommender in ``recsys`` shares, and the data it is trained on.

Modelled on implicit's ``RecommenderBase`` and LightFM's ``Dataset``: a :class:`Dataset` holds
the id maps (external id <-> dense index), the interactions as parallel index arrays and the
item side features aligned with the item map; a :class:`Recommender` is fitted on it and then
answers in external ids.

Everything here is plain numpy; models convert to torch internally. Nothing imports Django.

Event weights (implicit feedback): purchase > cart > like > click > view; a rating counts as
positive only when ``value >= 4`` (DATA.md). :func:`event_weight` is the single place that
decides, so the app, the evaluation and the benchmarks agree.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .idmap import IdMap

#: Weight of one event of each kind in training (higher = stronger preference).
#: The app's default too (``SHOP_RECS["EVENT_WEIGHTS"]`` starts from this table), so the app,
#: the evaluation and the benchmarks train with the same weights unless a shop overrides them.
EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "like": 3.0,
    "rating": 3.0,  # only ratings >= 4 reach here, see event_weight
    "cart": 4.0,
    "purchase": 8.0,
}

#: Ratings below this are not positives (DATA.md: "rating with value >= 4").
POSITIVE_RATING = 4.0


def event_weight(
    event: str, value: float = 1.0, weights: Mapping[str, float] | None = None
) -> float:
    """Training weight of one event, 0.0 when it is not a positive (a rating below 4).

    ``weights`` overrides :data:`EVENT_WEIGHTS` (the app passes its configured weights).
    """
    table = EVENT_WEIGHTS if weights is None else weights
    if event == "rating":
        return float(table.get("rating", 1.0)) if value >= POSITIVE_RATING else 0.0
    return float(table.get(event, 1.0))


@dataclass
class ItemFeatures:
    """Side features of every item in a dataset's item map, row i = item index i.

    ``text``/``image`` are frozen, L2-normalised content embeddings (float32, n x d) or ``None``
    when the modality is not used at all; ``image_mask[i]`` is False where item i has no image
    (its row is then zeros). ``category``/``brand`` are small integer codes, 0 = unknown;
    ``category_names``/``brand_names`` map code -> name (index 0 is "").
    """

    text: np.ndarray | None = None
    image: np.ndarray | None = None
    image_mask: np.ndarray | None = None
    category: np.ndarray | None = None
    brand: np.ndarray | None = None
    category_names: list[str] = field(default_factory=lambda: [""])
    brand_names: list[str] = field(default_factory=lambda: [""])

    def __len__(self) -> int:
        for array in (self.text, self.image, self.category, self.brand):
            if array is not None:
                return int(array.shape[0])
        return 0

    def take(self, rows: np.ndarray) -> ItemFeatures:
        """The features of the given item rows (same code tables)."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return ItemFeatures(
            text=pick(self.text),
            image=pick(self.image),
            image_mask=pick(self.image_mask),
            category=pick(self.category),
            brand=pick(self.brand),
            category_names=list(self.category_names),
            brand_names=list(self.brand_names),
        )


@dataclass
class Dataset:
    """Interactions in index space plus the maps and item features they refer to.

    ``users``/``items``/``weights``/``times`` are parallel arrays, one row per (positive)
    event: user index, item index, training weight (> 0) and a sortable time (e.g. unix
    seconds). ``item_features`` covers *every* item of ``item_map``, including items without
    any interaction (cold items), which is how content-only items get vectors.
    """

    user_map: IdMap
    item_map: IdMap
    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    item_features: ItemFeatures | None = None

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        n = len(self.users)
        if not (len(self.items) == len(self.weights) == len(self.times) == n):
            raise ValueError("users, items, weights and times must have the same length")
        if n and (self.users.min() < 0 or self.users.max() >= len(self.user_map)):
            raise ValueError("a user index is outside the user map")
        if n and (self.items.min() < 0 or self.items.max() >= len(self.item_map)):
            raise ValueError("an item index is outside the item map")
        if self.item_features is not None and len(self.item_features) not in (
            0,
            len(self.item_map),
        ):
            raise ValueError(
                f"item features have {len(self.item_features)} rows for {len(self.item_map)} items"
            )

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, rows: np.ndarray) -> Dataset:
        """The same maps and features with only the given interaction rows."""
        return Dataset(
            user_map=self.user_map,
            item_map=self.item_map,
            users=self.users[rows],
            items=self.items[rows],
            weights=self.weights[rows],
            times=self.times[rows],
            item_features=self.item_features,
        )

    def histories(self) -> list[np.ndarray]:
        """Per user index: item indices in time order (ties keep input order)."""
        order = np.lexsort((np.arange(len(self.users)), self.times, self.users))
        users, items = self.users[order], self.items[order]
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    @classmethod
    def from_events(
        cls,
        events: Iterable[tuple[str, str, str, float, float]],
        *,
        item_ids: Sequence[str] | None = None,
        item_features: ItemFeatures | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> Dataset:
        """Build from ``(user_id, item_id, event, value, time)`` rows.

        Non-positive events (ratings below 4) are dropped. ``item_ids`` fixes the item map
        (and the row order of ``item_features``); events on unknown items are skipped.
        ``weights`` overrides the event weights (see :func:`event_weight`).
        """
        user_map = IdMap()
        item_map = IdMap(item_ids or ())
        fixed = item_ids is not None
        users, items, row_weights, times = [], [], [], []
        for user_id, item_id, event, value, when in events:
            weight = event_weight(event, value, weights)
            if weight <= 0:
                continue
            if item_id not in item_map:
                if fixed:
                    continue
                item_map.extend([item_id])
            user_map.extend([user_id])
            users.append(user_map.index(user_id))
            items.append(item_map.index(item_id))
            row_weights.append(weight)
            times.append(when)
        return cls(user_map, item_map, users, items, row_weights, times, item_features)


class Recommender(abc.ABC):
    """What every recommender in ``recsys`` offers (implicit's ``RecommenderBase``).

    ``recommend`` and ``similar_items`` speak external ids. ``user`` may be unknown or None (an
    anonymous session); ``history`` is the shopper's recent items, oldest first, which models
    that can use it (the hybrid model, content-kNN) fold in at request time without refitting.
    """

    item_map: IdMap
    user_map: IdMap

    @abc.abstractmethod
    def fit(self, dataset: Dataset) -> Recommender: ...

    @abc.abstractmethod
    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """Scores (len(users) x n_items) in index space; ``None`` = a user unseen in training.

        The batch entry point used by evaluation; ``recommend`` is built on it.
        """

    def recommend(
        self,
        user: str | None,
        history: Sequence[str] = (),
        k: int = 10,
        exclude: Iterable[str] = (),
        *,
        candidates: Iterable[str] | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Top-k external item ids and their scores, best first."""
        user_index = (
            self.user_map.index(user) if user is not None and user in self.user_map else None
        )
        hist = [self.item_map.index(i) for i in history if i in self.item_map]
        scores = self.score_items([user_index], [hist])[0].astype(np.float64)
        mask = (
            np.ones(len(scores), dtype=bool) if candidates is None else np.zeros(len(scores), bool)
        )
        if candidates is not None:
            mask[[self.item_map.index(i) for i in candidates if i in self.item_map]] = True
        for item in exclude:
            if item in self.item_map:
                mask[self.item_map.index(item)] = False
        return top_k(scores, mask, k, self.item_map)

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        """Items most like ``item`` (never ``item`` itself)."""
        raise NotImplementedError(f"{type(self).__name__} has no item-to-item similarity")

    def save(self, path: str | Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        raise NotImplementedError(f"{cls.__name__} cannot be loaded")


class VectorRecommender(Recommender):
    """A recommender the app can serve from vectors in pgvector: what ``SHOP_RECS["MODEL_CLASS"]``
    must be (the app calls exactly these members; ``shop_recs.ranking``).

    Item vectors and user vectors share one space of :attr:`vector_dim` dimensions and score by
    inner product, so the app stores every item's vector once and ranks a shopper's list with
    one k-NN query. Serving never calls :meth:`score_items`:

    - after training, :meth:`all_item_vectors` (rows in ``item_map`` order) are written to
      pgvector; an item encoded later gets :meth:`item_vectors` from its content features alone
      (``item_ids`` unknown to the model) — that is how new items are served without retraining;
    - at request time :meth:`user_vector` turns the *stored* vectors of the shopper's recent
      items (oldest first, with event weights) and, for a known shopper, their id into the
      query vector; ``user`` None is an anonymous session;
    - :meth:`codes` maps category/brand names into the model's vocabulary
      (:attr:`category_names`, :attr:`brand_names`) when the app builds features of new items,
      and :attr:`feature_dims` says which content vectors the model reads (``text_dim``,
      ``image_dim``; 0 = not read);
    - the artefact is a directory: :meth:`save` / :meth:`load` (``device="cpu"`` in web
      processes), :attr:`version` names it, ``training_history_`` (per-epoch metrics, may be
      empty) is charted in the admin.
    """

    version: str | None = None
    category_names: list[str]
    brand_names: list[str]
    training_history_: list[dict[str, Any]]

    @property
    @abc.abstractmethod
    def vector_dim(self) -> int:
        """Width of the item and user vectors."""

    @property
    @abc.abstractmethod
    def feature_dims(self) -> dict[str, int]:
        """``{"text_dim": d, "image_dim": d}`` of the content vectors the model reads."""

    @abc.abstractmethod
    def all_item_vectors(self) -> np.ndarray:
        """Vectors of every item of ``item_map`` (n_items x :attr:`vector_dim`)."""

    @abc.abstractmethod
    def item_vectors(
        self, features: ItemFeatures, item_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Vectors of items described by ``features`` (row i = ``item_ids[i]``); ids the model
        was not trained on, or ``item_ids=None``, give content-only vectors."""

    @abc.abstractmethod
    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """The query vector of a shopper from the stored vectors of their recent items."""

    def contributions(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None,
        item_vectors: np.ndarray,
    ) -> np.ndarray:
        """How much each history item adds to each item's score: ``(n_items, n_history)``.

        The explanation of a recommendation ("because you viewed X") is the history item with
        the largest contribution. The default is leave-one-out: score with the full history
        minus score without item j (exact for models linear in the history, such as EASE and
        blends of linear parts, which override this with a closed form).
        """
        hv = np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim)
        items = np.asarray(item_vectors, np.float32).reshape(-1, self.vector_dim)
        out = np.zeros((len(items), len(hv)), np.float32)
        if not len(hv):
            return out
        w = None if history_weights is None else np.asarray(history_weights, np.float32)
        full = items @ self.user_vector(user, hv, w)
        for j in range(len(hv)):
            keep = np.arange(len(hv)) != j
            if keep.any():
                rest = self.user_vector(user, hv[keep], None if w is None else w[keep])
            else:
                rest = np.zeros(self.vector_dim, np.float32)
            out[:, j] = full - items @ rest
        return out

    def because(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None,
        item_vectors: np.ndarray,
    ) -> np.ndarray:
        """Per item: the index of the history item that explains it best, -1 when none adds
        anything positive (or there is no history)."""
        c = self.contributions(user, history_vectors, history_weights, item_vectors)
        if not c.shape[1]:
            return np.full(c.shape[0], -1, np.int64)
        best = c.argmax(axis=1)
        return np.where(c[np.arange(len(c)), best] > 0, best, -1).astype(np.int64)

    @abc.abstractmethod
    def codes(self, kind: str, names: Sequence[str]) -> np.ndarray:
        """Codes of category (``kind="category"``) or brand names; unknown names give 0."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> VectorRecommender:
        """Read an artefact written by :meth:`save`."""


def top_k(
    scores: np.ndarray, mask: np.ndarray, k: int, item_map: IdMap
) -> tuple[list[str], np.ndarray]:
    """The k best allowed entries of ``scores`` as (external ids, scores), best first."""
    allowed = np.flatnonzero(mask)
    if not len(allowed) or k <= 0:
        return [], np.zeros(0, dtype=np.float32)
    k = min(k, len(allowed))
    sub = scores[allowed]
    part = np.argpartition(-sub, k - 1)[:k]
    best = allowed[part[np.argsort(-sub[part], kind="stable")]]
    return item_map.ids(best.tolist()), scores[best].astype(np.float32)
