"""A validation-weighted blend of vector families, itself served as one vector per item.

Every component is a :class:`~shop_recs.recsys.base.VectorRecommender` whose vectors are
``[scoring part | history part]`` and whose user vector reads only the history part of the
stored item vectors and is zero over it (the hybrid model and EASE both are). The blend stores,
per item::

    [ w_1(seg) * scoring_1 | ... | w_F(seg) * scoring_F | history_1 | ... | history_F | pop ]

and a user vector ``[m_1 * u_1 | ... | m_F * u_F | 0 ... 0 | β]``, so the inner product is
exactly ``Σ_f m_f * w_f(seg) * score_f + β * pop``: the weighted sum of the family scores plus
a popularity prior (``pop = log1p(positives) / log1p(max)``, 0 for items without events).
``seg`` is ``warm`` for items with training events and ``cold`` for the others (new items get
the cold weights), because the mix that ranks items with a history well is not the one that
ranks content-only vectors well. ``m`` and ``β`` are 1 and ``popularity`` for shoppers the
model was trained on and ``new`` / ``new_popularity`` for the others (anonymous sessions and
new customers with a few events). All are chosen on validation
(:mod:`shop_recs.recsys.selection`).

Loading is torch-free: components are read back through :func:`load_vectors`, which serves a
hybrid component with the numpy towers of :mod:`shop_recs.recsys.hybrid_numpy`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors.numpy import load_file, save_file

from .base import Dataset, ItemFeatures, VectorRecommender, top_k
from .idmap import IdMap
from .vector_utils import read_meta, write_maps, write_meta

FORMAT = "shop_recs.blend"
FORMAT_VERSION = 1
CLASS_PATH = "shop_recs.recsys.blend.BlendRecommender"


def scoring_dim(model: VectorRecommender) -> int:
    """Width of the scoring part of a component's vectors."""
    value = getattr(model, "scoring_dim", None)
    if value is None:
        value = getattr(model, "dim", None)  # HybridRecommender
    if value is None:
        raise TypeError(f"{type(model).__name__} does not say its scoring width")
    return int(value)


def load_vectors(path: str | Path, *, device: str | None = None) -> VectorRecommender:
    """Load any vector-family artefact by its ``config.json`` format, without torch.

    A hybrid artefact comes back as :class:`~shop_recs.recsys.hybrid_numpy.HybridVectors`
    (numpy towers); use ``HybridRecommender.load`` to keep training it.
    """
    meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    fmt = meta.get("format")
    if fmt == "shop_recs.hybrid":
        from .hybrid_numpy import HybridVectors

        return HybridVectors.load(path)
    if fmt == "shop_recs.ease":
        from .ease import EASERecommender

        return EASERecommender.load(path)
    if fmt == FORMAT:
        return BlendRecommender.load(path)
    raise ValueError(f"{path}: unknown model artefact format {fmt!r}")


class BlendRecommender(VectorRecommender):
    """Weighted sum of fitted components (+ popularity prior) as one inner product.

    ``BlendRecommender(parts, warm=[...], cold=[...], popularity=β)`` with fitted ``parts``;
    or with ``factories`` (one callable per component returning an unfitted model) and then
    :meth:`fit`, which fits each component on the dataset and keeps the weights.
    """

    family = "blend"

    def __init__(
        self,
        parts: Sequence[VectorRecommender] = (),
        *,
        warm: Sequence[float],
        cold: Sequence[float] | None = None,
        popularity: float = 0.0,
        new: Sequence[float] | None = None,
        new_popularity: float | None = None,
        factories: Sequence[Callable[[], VectorRecommender]] = (),
        names: Sequence[str] = (),
    ) -> None:
        self.parts = list(parts)
        self.factories = list(factories)
        n = len(self.parts) or len(self.factories) or len(warm)
        if len(warm) != n or (cold is not None and len(cold) != n):
            raise ValueError(f"need one warm (and cold) weight per component ({n})")
        self.warm = [float(w) for w in warm]
        self.cold = [float(w) for w in (cold if cold is not None else warm)]
        self.popularity = float(popularity)
        # Shoppers the model never saw (anonymous sessions, new customers) get their own mix:
        # a few revealed items favour other families than a long history does.
        self.new = [float(w) for w in (new if new is not None else [1.0] * n)]
        if len(self.new) != n:
            raise ValueError(f"need one new-shopper weight per component ({n})")
        self.new_popularity = float(popularity if new_popularity is None else new_popularity)
        self.names = list(names) or [getattr(p, "family", type(p).__name__) for p in self.parts]
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.category_names: list[str] = [""]
        self.brand_names: list[str] = [""]
        self.training_history_: list[dict[str, Any]] = []
        self.version: str | None = None
        self._vectors = np.zeros((0, 0), np.float32)
        self._has_events = np.zeros(0, bool)
        self._pop = np.zeros(0, np.float32)
        if self.parts:
            self._assemble_from_parts(None)

    # ------------------------------------------------------------------ layout
    def _widths(self) -> tuple[list[int], list[int]]:
        scoring = [scoring_dim(p) for p in self.parts]
        history = [p.vector_dim - s for p, s in zip(self.parts, scoring, strict=True)]
        return scoring, history

    @property
    def vector_dim(self) -> int:
        scoring, history = self._widths()
        return sum(scoring) + sum(history) + 1

    @property
    def scoring_dim(self) -> int:
        return sum(self._widths()[0])

    @property
    def feature_dims(self) -> dict[str, int]:
        dims = {"text_dim": 0, "image_dim": 0}
        for part in self.parts:
            for key, value in part.feature_dims.items():
                dims[key] = max(dims[key], int(value))
        return dims

    def _compose(
        self, component_vectors: list[np.ndarray], cold_rows: np.ndarray, pop: np.ndarray
    ) -> np.ndarray:
        """Blend item vectors from each component's own vectors of the same items."""
        n = len(pop)
        scoring, history = self._widths()
        out = np.zeros((n, self.vector_dim), np.float32)
        at = 0
        for f, vecs in enumerate(component_vectors):
            w = np.where(cold_rows, self.cold[f], self.warm[f]).astype(np.float32)
            out[:, at : at + scoring[f]] = w[:, None] * vecs[:, : scoring[f]]
            at += scoring[f]
        for f, vecs in enumerate(component_vectors):
            out[:, at : at + history[f]] = vecs[:, scoring[f] :]
            at += history[f]
        out[:, -1] = pop
        return out

    def _split(self, vectors: np.ndarray) -> list[np.ndarray]:
        """Each component's view of blend vectors: zero scoring part + its history part (what
        a component's user tower reads)."""
        scoring, history = self._widths()
        at = sum(scoring)
        out = []
        for f, part in enumerate(self.parts):
            view = np.zeros((len(vectors), part.vector_dim), np.float32)
            view[:, scoring[f] :] = vectors[:, at : at + history[f]]
            out.append(view)
            at += history[f]
        return out

    def _assemble_from_parts(self, dataset: Dataset | None) -> None:
        if len(self.parts) != len(self.warm):
            raise ValueError(f"{len(self.parts)} components for {len(self.warm)} weights")
        self.names = [getattr(p, "family", type(p).__name__) for p in self.parts]
        first = self.parts[0]
        self.user_map = IdMap(first.user_map.to_list())
        self.item_map = IdMap(first.item_map.to_list())
        self.category_names = list(first.category_names)
        self.brand_names = list(first.brand_names)
        for part in self.parts[1:]:
            if part.item_map.to_list() != self.item_map.to_list():
                raise ValueError("blend components must share one item map")
        if dataset is not None:
            keys = np.unique(dataset.users * np.int64(max(dataset.n_items, 1)) + dataset.items)
            counts = np.bincount(keys % max(dataset.n_items, 1), minlength=dataset.n_items)
            self._has_events = counts > 0
            self._pop = (np.log1p(counts) / np.log1p(max(int(counts.max(initial=0)), 1))).astype(
                np.float32
            )
        elif len(self._has_events) != len(self.item_map):
            self._has_events = np.ones(len(self.item_map), bool)
            self._pop = np.zeros(len(self.item_map), np.float32)
        vecs = [p.all_item_vectors() for p in self.parts]
        self._vectors = self._compose(vecs, ~self._has_events, self._pop)
        digest = hashlib.sha256(self._vectors.tobytes()).hexdigest()[:12]
        self.version = f"blend-{FORMAT_VERSION}-{digest}"

    # ------------------------------------------------------------------ fit
    def fit(self, dataset: Dataset, *, progress: bool = False, **kwargs: Any) -> BlendRecommender:
        """Fit every component (from ``factories``) on ``dataset``; weights stay as given."""
        if not self.factories:
            raise RuntimeError("BlendRecommender.fit needs component factories")
        self.parts = []
        for make in self.factories:
            part = make()
            try:
                part.fit(dataset, progress=progress, **kwargs)
            except TypeError:
                part.fit(dataset)
            self.parts.append(part)
        self.names = [getattr(p, "family", type(p).__name__) for p in self.parts]
        self.training_history_ = [
            {**h, "component": name}
            for name, p in zip(self.names, self.parts, strict=True)
            for h in (getattr(p, "training_history_", None) or [])
        ]
        self._assemble_from_parts(dataset)
        return self

    def with_parts(self, parts: Sequence[VectorRecommender], dataset: Dataset) -> BlendRecommender:
        """Use already fitted components (fitted on ``dataset``)."""
        self.parts = list(parts)
        self._assemble_from_parts(dataset)
        return self

    # ------------------------------------------------------------------ serving
    def all_item_vectors(self) -> np.ndarray:
        return self._vectors.copy()

    def item_vectors(
        self, features: ItemFeatures, item_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Known ids: their stored vectors; others: each component from content, cold mix."""
        n = len(features) if item_ids is None else len(item_ids)
        if item_ids is not None and len(features) not in (0, n):
            raise ValueError(f"{len(item_ids)} ids for {len(features)} feature rows")
        known = np.array(
            [item_ids is not None and item_ids[r] in self.item_map for r in range(n)], dtype=bool
        )
        out = np.zeros((n, self.vector_dim), np.float32)
        if known.any():
            rows = [self.item_map.index(item_ids[r]) for r in np.flatnonzero(known)]
            out[known] = self._vectors[rows]
        new = np.flatnonzero(~known)
        if len(new):
            feats = features if len(new) == n else features.take(new)
            out[new] = self._compose(
                [p.item_vectors(feats, None) for p in self.parts],
                np.ones(len(new), bool),
                np.zeros(len(new), np.float32),
            )
        return out

    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        hv = np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim)
        scoring, _ = self._widths()
        known = user is not None and user in self.user_map
        mix = [1.0] * len(self.parts) if known else self.new
        out = np.zeros(self.vector_dim, np.float32)
        at = 0
        for f, (part, view) in enumerate(zip(self.parts, self._split(hv), strict=True)):
            u = part.user_vector(user, view, history_weights)[: scoring[f]]
            out[at : at + scoring[f]] = mix[f] * u
            at += scoring[f]
        out[-1] = self.popularity if known else self.new_popularity
        return out

    def contributions(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None,
        item_vectors: np.ndarray,
    ) -> np.ndarray:
        """Sum of the components' contributions on the blend's weighted scoring parts."""
        hv = np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim)
        items = np.asarray(item_vectors, np.float32).reshape(-1, self.vector_dim)
        total = np.zeros((len(items), len(hv)), np.float32)
        scoring, _ = self._widths()
        known = user is not None and user in self.user_map
        mix = [1.0] * len(self.parts) if known else self.new
        at = 0
        for f, (part, hview, iview) in enumerate(
            zip(self.parts, self._split(hv), self._split(items), strict=True)
        ):
            # the item view needs the (weighted) scoring part, which _split leaves zero
            iview[:, : scoring[f]] = items[:, at : at + scoring[f]]
            total += mix[f] * part.contributions(user, hview, history_weights, iview)
            at += scoring[f]
        return total

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        ids = self.user_map.to_list()
        out = np.zeros((len(users), len(self._vectors)), np.float32)
        for row, (user, history) in enumerate(zip(users, histories, strict=True)):
            h = np.asarray(history, np.int64)
            name = None if user is None else ids[int(user)]
            out[row] = self._vectors @ self.user_vector(name, self._vectors[h])
        return out

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        index = self.item_map.index(item)
        scores = self.score_items([None], [[index]])[0]
        mask = np.ones(len(scores), bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def codes(self, kind: Literal["category", "brand"], names: Sequence[str]) -> np.ndarray:
        return self.parts[0].codes(kind, names)

    # ------------------------------------------------------------------ artefact
    def save(self, path: str | Path) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        for f, part in enumerate(self.parts):
            part.save(out / f"part{f}")
        save_file(
            {
                "vectors": np.ascontiguousarray(self._vectors),
                "has_events": self._has_events.astype(np.uint8),
                "popularity": self._pop,
            },
            str(out / "model.safetensors"),
            metadata={"version": self.version or ""},
        )
        write_meta(
            out,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "class": CLASS_PATH,
                "family": self.family,
                "version": self.version,
                "components": [
                    {"dir": f"part{f}", "family": name} for f, name in enumerate(self.names)
                ],
                "warm": self.warm,
                "cold": self.cold,
                "popularity": self.popularity,
                "new": self.new,
                "new_popularity": self.new_popularity,
                "history": self.training_history_,
            },
        )
        write_maps(out, user_map=self.user_map, item_map=self.item_map, version=self.version)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> BlendRecommender:
        src = Path(path)
        meta = read_meta(src, FORMAT, FORMAT_VERSION)
        parts = [load_vectors(src / c["dir"]) for c in meta["components"]]
        arrays = load_file(str(src / "model.safetensors"))
        model = cls(
            warm=meta["warm"],
            cold=meta["cold"],
            popularity=meta["popularity"],
            new=meta["new"],
            new_popularity=meta["new_popularity"],
            names=[c["family"] for c in meta["components"]],
        )
        model.parts = parts
        first = parts[0]
        model.user_map = IdMap.load(src / "user_ids.json")
        model.item_map = IdMap.load(src / "item_ids.json")
        model.category_names = list(first.category_names)
        model.brand_names = list(first.brand_names)
        model._vectors = arrays["vectors"].astype(np.float32)
        model._has_events = arrays["has_events"].astype(bool)
        model._pop = arrays["popularity"].astype(np.float32)
        model.training_history_ = list(meta.get("history") or [])
        model.version = meta.get("version")
        return model
