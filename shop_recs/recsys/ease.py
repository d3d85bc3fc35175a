"""EASE (Steck 2019): a closed-form item-item model, served as low-rank vectors, with content
for cold items.

Fit: ``P = (XᵀX + λI)⁻¹``, ``B = I - P / diag(P)`` (so ``diag(B) = 0``) over the binary
user x item matrix ``X`` of distinct positive pairs; a shopper's score for item ``i`` is
``Σ_j g_j B[j, i]`` over their history items ``j`` (``g_j`` = event weight ** ``event_power``
x ``decay`` ** age). To serve it from pgvector by inner product, ``B ≈ H Sᵀ`` is truncated to
rank ``r`` by SVD: an item vector is ``[S_i | H_i]`` (scoring part, history part), a user
vector is ``[Σ_j g_j H_j | 0]``. The rank is the smallest on a ladder whose top-10 lists agree
with the full ``B`` on a sample of training users to ``rank_tolerance`` (recorded in
``rank_agreement_``), never above ``max_rank`` (pgvector indexes at most 2,000 dims).

Cold items (no training events, or beyond the ``max_items`` most popular that the dense Gram
matrix is limited to) get the softmax(cos/τ)-weighted mean of the vectors of their
``content_k`` nearest warm items in content space (fused text + image + category): a new item
is scored as if it were the warm items it looks like. The same mapping serves items encoded
after training (``item_vectors`` with unknown ids).

The Gram matrix is items² (dense): :func:`ease_cost` estimates memory and time so selection
can skip or cap it on large catalogues. Everything here is numpy/scipy (no torch), so the web
process can load the artefact cheaply.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors.numpy import load_file, save_file
from scipy import linalg, sparse

from .base import Dataset, ItemFeatures, VectorRecommender, top_k
from .idmap import IdMap
from .vector_utils import (
    content_matrix,
    knn_mix,
    names_to_codes,
    pack_histories,
    read_meta,
    recent_histories,
    write_maps,
    write_meta,
)

FORMAT = "shop_recs.ease"
FORMAT_VERSION = 1
CLASS_PATH = "shop_recs.recsys.ease.EASERecommender"
RANK_LADDER = (32, 64, 128, 256, 384, 512, 768, 1000)


@dataclass
class EASEConfig:
    """Hyper-parameters of :class:`EASERecommender` (all JSON-serialisable)."""

    #: λ of the ridge penalty (searched on validation by selection).
    l2: float = 200.0
    #: Largest SVD rank of the served vectors (vectors are twice as wide).
    max_rank: int = 512
    #: Mean top-10 overlap with the full B the chosen rank must reach (0..1).
    rank_tolerance: float = 0.99
    #: The dense Gram matrix covers at most this many (most popular) items.
    max_items: int = 20_000
    #: Cold items: neighbours in content space and the softmax temperature over their cosines.
    content_k: int = 20
    content_temperature: float = 0.05
    text_weight: float = 0.5
    category_weight: float = 0.1
    #: User vectors: weight of history item j is event_weight**event_power * decay**age_j
    #: (age 0 = most recent), divided by (sum of weights)**norm_power.
    event_power: float = 0.5
    decay: float = 1.0
    norm_power: float = 0.5
    #: Histories kept per user for a known shopper who comes without one.
    max_history: int = 500
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EASEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown EASEConfig fields: {sorted(unknown)}")
        return cls(**data)

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ValueError("l2 must be > 0")
        if not 1 <= self.max_rank <= 1000:
            raise ValueError("max_rank must be in [1, 1000] (pgvector indexes <= 2000 dims)")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError("decay must be in (0, 1]")


def ease_cost(n_items: int) -> tuple[float, float]:
    """(bytes, relative flops) of one EASE fit over ``n_items`` dense columns.

    About five float64 n x n matrices live at once (Gram, inverse, B, SVD work); the time is
    dominated by the inverse and the truncated SVD, ~ n³.
    """
    return 5.0 * 8.0 * n_items * n_items, float(n_items) ** 3


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """Orthonormal basis of y's columns by Cholesky-QR in float64 (a few GEMMs; Householder QR
    is many times slower on a busy 2-core machine), with a small shift so a rank-deficient
    block stays positive definite; Householder QR when even that fails."""
    y64 = y.astype(np.float64)
    gram = y64.T @ y64
    shift = 1e-8 * max(float(np.trace(gram)), 1e-30) / max(len(gram), 1)
    try:
        r = linalg.cholesky(gram + shift * np.eye(len(gram)), check_finite=False)
    except linalg.LinAlgError:
        return np.linalg.qr(y64)[0].astype(np.float32)
    return linalg.solve_triangular(r, y64.T, trans="T", check_finite=False).T.astype(np.float32)


def _randomized_svd(
    a: np.ndarray, rank: int, rng: np.random.Generator, n_iter: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``rank`` SVD of a dense matrix (Halko et al.): GEMMs, Cholesky-QR and one small
    symmetric eigenproblem; exact up to rounding when ``rank`` reaches the matrix size."""
    n = min(a.shape)
    width = min(n, rank + 16)
    a32 = a.astype(np.float32)
    q = _orthonormal(a32 @ rng.standard_normal((a.shape[1], width)).astype(np.float32))
    for _ in range(n_iter):
        q = _orthonormal(a32 @ _orthonormal(a32.T @ q))
    small = q.T @ a32  # width x n
    evals, evecs = linalg.eigh((small @ small.T).astype(np.float64), check_finite=False)
    order = np.argsort(evals)[::-1][:rank]
    s = np.sqrt(np.clip(evals[order], 0.0, None))
    ub = evecs[:, order]
    vt = (ub.T @ small.astype(np.float64)) / np.where(s > 0, s, 1.0)[:, None]
    return (q.astype(np.float64) @ ub), s, vt


class EASERecommender(VectorRecommender):
    """EASE served as vectors; see the module docstring."""

    family = "ease"

    def __init__(self, config: EASEConfig | None = None, **overrides: Any) -> None:
        base = config or EASEConfig()
        self.config = EASEConfig.from_dict({**base.to_dict(), **overrides})
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.category_names: list[str] = [""]
        self.brand_names: list[str] = [""]
        self.training_history_: list[dict[str, Any]] = []
        self.version: str | None = None
        self.rank_: int = 0
        self.rank_agreement_: dict[str, float] = {}
        self.fit_seconds_: float | None = None
        self._vectors = np.zeros((0, 0), np.float32)  # n_items x 2r
        self._warm_rows = np.zeros(0, np.int64)  # items whose vectors come from B
        self._warm_content = np.zeros((0, 0), np.float32)  # content of those, for new items
        self._dims = {"text_dim": 0, "image_dim": 0}
        self._hist_indptr = np.zeros(1, np.int64)
        self._hist_items = np.zeros(0, np.int64)

    # ------------------------------------------------------------------ shape
    @property
    def vector_dim(self) -> int:
        return 2 * self.rank_

    @property
    def scoring_dim(self) -> int:
        """Leading columns of an item vector a user vector multiplies (the rest: history)."""
        return self.rank_

    @property
    def feature_dims(self) -> dict[str, int]:
        return dict(self._dims)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        dataset: Dataset,
        *,
        deadline: float | None = None,
        progress: bool = False,
        **_: Any,
    ) -> EASERecommender:
        """Fit on ``dataset``'s positives. ``deadline`` (``time.monotonic()``) aborts with
        :class:`TimeoutError` between the expensive steps when passed."""
        cfg = self.config
        started = time.perf_counter()
        rng = np.random.default_rng(cfg.seed)

        def check(step: str) -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"EASE fit ran out of time before {step}")

        self.user_map = IdMap(dataset.user_map.to_list())
        self.item_map = IdMap(dataset.item_map.to_list())
        feats = dataset.item_features or ItemFeatures()
        self.category_names = list(feats.category_names or [""])
        self.brand_names = list(feats.brand_names or [""])
        self._dims = {
            "text_dim": 0 if feats.text is None else int(feats.text.shape[1]),
            "image_dim": 0 if feats.image is None else int(feats.image.shape[1]),
        }
        n_items = dataset.n_items
        keys = np.unique(dataset.users * np.int64(max(n_items, 1)) + dataset.items)
        pair_users, pair_items = keys // max(n_items, 1), keys % max(n_items, 1)
        counts = np.bincount(pair_items, minlength=n_items)
        warm = np.flatnonzero(counts > 0)
        if len(warm) > cfg.max_items:
            warm = np.sort(warm[np.argsort(-counts[warm], kind="stable")[: cfg.max_items]])
        col = np.full(n_items, -1, np.int64)
        col[warm] = np.arange(len(warm))
        keep = col[pair_items] >= 0
        x = sparse.csr_matrix(
            (np.ones(int(keep.sum()), np.float64), (pair_users[keep], col[pair_items[keep]])),
            shape=(dataset.n_users, len(warm)),
        )
        check("the Gram matrix")
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += cfg.l2
        check("the inverse")
        p = linalg.inv(gram, overwrite_a=True, check_finite=False) if len(warm) else gram
        del gram
        b = p / (-np.diag(p))[None, :] if len(warm) else p
        np.fill_diagonal(b, 0.0)
        del p
        check("the SVD")
        max_rank = max(1, min(cfg.max_rank, len(warm)))
        u, s, vt = _randomized_svd(b, max_rank, rng) if len(warm) else (b, np.zeros(0), b)
        root = np.sqrt(s)
        history_part = u * root[None, :]
        scoring_part = vt.T * root[None, :]
        self.rank_, self.rank_agreement_ = self._choose_rank(x, b, history_part, scoring_part, rng)
        r = self.rank_
        del b
        vectors = np.zeros((n_items, 2 * r), np.float32)
        vectors[warm, :r] = scoring_part[:, :r]
        vectors[warm, r:] = history_part[:, :r]
        content = self._content(feats, n_items)
        cold = np.setdiff1d(np.arange(n_items), warm)
        if len(cold) and content.shape[1]:
            vectors[cold] = knn_mix(
                content[cold],
                content[warm],
                vectors[warm],
                k=cfg.content_k,
                temperature=cfg.content_temperature,
            )
        self._vectors = vectors
        self._warm_rows = warm.astype(np.int64)
        self._warm_content = content[warm] if content.shape[1] else content[:0]
        hist = recent_histories(
            dataset.users, dataset.items, dataset.times, dataset.n_users, cfg.max_history
        )
        self._hist_indptr, self._hist_items = pack_histories(hist)
        self.fit_seconds_ = time.perf_counter() - started
        self.training_history_ = [
            {"phase": "fit", "items": len(warm), "rank": r, "seconds": self.fit_seconds_}
        ]
        self._set_version()
        return self

    def _choose_rank(
        self,
        x: sparse.csr_matrix,
        b: np.ndarray,
        history_part: np.ndarray,
        scoring_part: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[int, dict[str, float]]:
        """Smallest rank on the ladder whose top-10 agrees with full B to the tolerance."""
        full = history_part.shape[1]
        ladder = [r for r in RANK_LADDER if r < full] + [full]
        lengths = np.diff(x.indptr)
        users = np.flatnonzero(lengths > 0)
        if not len(users) or full == 0:
            return max(full, 1), {}
        sample = rng.choice(users, size=min(300, len(users)), replace=False)
        xs = x[sample]
        exact = np.asarray(xs @ b)
        rows, cols = xs.nonzero()
        exact[rows, cols] = -np.inf
        k = min(10, b.shape[0])
        truth = np.argpartition(-exact, k - 1, axis=1)[:, :k]
        projected = np.asarray(xs @ history_part)
        agreement: dict[str, float] = {}
        for r in ladder:
            approx = projected[:, :r] @ scoring_part[:, :r].T
            approx[rows, cols] = -np.inf
            top = np.argpartition(-approx, k - 1, axis=1)[:, :k]
            overlap = np.mean(
                [len(np.intersect1d(a, t)) / k for a, t in zip(top, truth, strict=True)]
            )
            agreement[str(r)] = float(overlap)
            if overlap >= self.config.rank_tolerance:
                return r, agreement
        return full, agreement

    def remap_cold(
        self, features: ItemFeatures | None, *, content_k: int, content_temperature: float
    ) -> EASERecommender:
        """A copy whose items without EASE columns are mapped from content with another
        neighbourhood (``features`` = the item features of the dataset it was fitted on).
        The expensive part of the fit is shared, so selection can tune the cold-item mapping
        for the price of a k-NN."""
        other = copy.copy(self)
        other.config = EASEConfig.from_dict(
            {**self.config.to_dict(), "content_k": content_k,
             "content_temperature": content_temperature}
        )  # fmt: skip
        n = len(self.item_map)
        cold = np.setdiff1d(np.arange(n), self._warm_rows)
        vectors = self._vectors.copy()
        content = other._content(features, n)
        if len(cold) and content.shape[1]:
            vectors[cold] = knn_mix(
                content[cold],
                self._warm_content,
                self._vectors[self._warm_rows],
                k=content_k,
                temperature=content_temperature,
            )
        other._vectors = vectors
        other._set_version()
        return other

    def _content(self, features: ItemFeatures | None, n: int) -> np.ndarray:
        return content_matrix(
            features,
            n,
            category_vocab=self.category_names,
            text_dim=self._dims["text_dim"],
            image_dim=self._dims["image_dim"],
            text_weight=self.config.text_weight,
            category_weight=self.config.category_weight,
        )

    def _set_version(self) -> None:
        digest = hashlib.sha256()
        digest.update(repr(sorted(self.config.to_dict().items())).encode())
        digest.update(self._vectors.tobytes())
        self.version = f"ease-{FORMAT_VERSION}-{digest.hexdigest()[:12]}"

    # ------------------------------------------------------------------ serving
    def all_item_vectors(self) -> np.ndarray:
        return self._vectors.copy()

    def item_vectors(
        self, features: ItemFeatures, item_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Known warm ids: their EASE vectors; anything else: mapped from content alone."""
        n = len(features) if item_ids is None else len(item_ids)
        if item_ids is not None and len(features) not in (0, n):
            raise ValueError(f"{len(item_ids)} ids for {len(features)} feature rows")
        warm = np.zeros(len(self.item_map), bool)
        warm[self._warm_rows] = True
        known = np.array(
            [
                item_ids is not None
                and item_ids[r] in self.item_map
                and bool(warm[self.item_map.index(item_ids[r])])
                for r in range(n)
            ],
            dtype=bool,
        )
        out = np.zeros((n, self.vector_dim), np.float32)
        if known.any():
            out[known] = self._vectors[
                [self.item_map.index(item_ids[r]) for r in np.flatnonzero(known)]
            ]
        new = np.flatnonzero(~known)
        if len(new):
            feats = features if len(new) == n else features.take(new)
            out[new] = knn_mix(
                self._content(feats, len(new)),
                self._warm_content,
                self._vectors[self._warm_rows],
                k=self.config.content_k,
                temperature=self.config.content_temperature,
            )
        return out

    def _weights(self, n: int, weights: np.ndarray | None) -> np.ndarray:
        cfg = self.config
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(-1)
        w = np.power(np.clip(w, 1e-6, None), cfg.event_power)
        if cfg.decay < 1.0:
            w = w * cfg.decay ** np.arange(n - 1, -1, -1)
        return w

    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """``[Σ_j g_j H_j / (Σ g)**norm_power | 0]`` from the stored vectors of the history.

        A known shopper without a history uses the history kept from training.
        """
        r = self.rank_
        hv = np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim)
        if not len(hv) and user is not None and user in self.user_map:
            hv = self._vectors[self._stored_history(self.user_map.index(user))]
            history_weights = None
        out = np.zeros(self.vector_dim, np.float32)
        if len(hv):
            w = self._weights(len(hv), history_weights)
            out[:r] = (w @ hv[:, r:]) / max(float(w.sum()), 1e-12) ** self.config.norm_power
        return out

    def contributions(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None,
        item_vectors: np.ndarray,
    ) -> np.ndarray:
        """Exact share of each history item in each item's score (linear model)."""
        r = self.rank_
        hv = np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim)
        if not len(hv):
            return np.zeros((len(item_vectors), 0), np.float32)
        w = self._weights(len(hv), history_weights)
        w = w / max(float(w.sum()), 1e-12) ** self.config.norm_power
        return (np.asarray(item_vectors)[:, :r] @ hv[:, r:].T) * w[None, :].astype(np.float32)

    def _stored_history(self, user: int) -> np.ndarray:
        if user + 1 >= len(self._hist_indptr):
            return np.zeros(0, np.int64)
        return self._hist_items[self._hist_indptr[user] : self._hist_indptr[user + 1]]

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        r = self.rank_
        vecs = np.zeros((len(users), r), np.float32)
        for row, (user, history) in enumerate(zip(users, histories, strict=True)):
            h = np.asarray(history, np.int64)
            if not len(h) and user is not None:
                h = self._stored_history(int(user))
            if len(h):
                vecs[row] = self.user_vector(None, self._vectors[h])[:r]
        return vecs @ self._vectors[:, :r].T

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        index = self.item_map.index(item)
        scores = self.score_items([None], [[index]])[0]
        mask = np.ones(len(scores), bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def codes(self, kind: Literal["category", "brand"], names: Sequence[str]) -> np.ndarray:
        if kind not in ("category", "brand"):
            raise ValueError(f"kind must be 'category' or 'brand', got {kind!r}")
        return names_to_codes(
            self.category_names if kind == "category" else self.brand_names, names
        )

    # ------------------------------------------------------------------ artefact
    def save(self, path: str | Path) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        save_file(
            {
                "vectors": np.ascontiguousarray(self._vectors),
                "warm_rows": self._warm_rows,
                "warm_content": np.ascontiguousarray(self._warm_content),
                "history_indptr": self._hist_indptr,
                "history_items": self._hist_items,
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
                "config": self.config.to_dict(),
                "rank": self.rank_,
                "rank_agreement": self.rank_agreement_,
                "dims": self._dims,
                "vocab": {"category": self.category_names, "brand": self.brand_names},
                "fit_seconds": self.fit_seconds_,
                "history": self.training_history_,
            },
        )
        write_maps(out, user_map=self.user_map, item_map=self.item_map, version=self.version)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> EASERecommender:
        src = Path(path)
        meta = read_meta(src, FORMAT, FORMAT_VERSION)
        model = cls(EASEConfig.from_dict(meta["config"]))
        model.rank_ = int(meta["rank"])
        model.rank_agreement_ = dict(meta.get("rank_agreement") or {})
        model._dims = {k: int(v) for k, v in meta["dims"].items()}
        model.category_names = list(meta["vocab"]["category"])
        model.brand_names = list(meta["vocab"]["brand"])
        model.fit_seconds_ = meta.get("fit_seconds")
        model.training_history_ = list(meta.get("history") or [])
        model.version = meta.get("version")
        model.user_map = IdMap.load(src / "user_ids.json")
        model.item_map = IdMap.load(src / "item_ids.json")
        arrays = load_file(str(src / "model.safetensors"))
        model._vectors = arrays["vectors"].astype(np.float32)
        model._warm_rows = arrays["warm_rows"].astype(np.int64)
        model._warm_content = arrays["warm_content"].astype(np.float32)
        model._hist_indptr = arrays["history_indptr"].astype(np.int64)
        model._hist_items = arrays["history_items"].astype(np.int64)
        return model
