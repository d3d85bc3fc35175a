"""In-project baselines: the yardsticks the hybrid model must beat, with the common interface.

- :class:`RandomRecommender`: the floor; any model must beat it by a wide margin.
- :class:`PopularityRecommender`: most (weighted) positives in training. Strong on warm data,
  useless for cold items (they have no events) and the fallback for anonymous shoppers.
- :class:`ContentKNNRecommender`: similarity of the frozen content vectors (text + image fused)
  to the shopper's recent items, recency-weighted. Needs no training events, so it is the
  cold-start baseline: new items and shoppers with a few views.
- :class:`MatrixFactorizationRecommender`: ID-only collaborative filtering (torch, sampled
  softmax or BPR, mini-batches). Strong on warm data, blind to items without events.

Each saves to the artefact layout of DESIGN.md: a directory with ``config.json`` (class,
format, hyper-parameters), ``weights.safetensors`` (numpy arrays) and ``user_ids.json`` /
``item_ids.json`` (the id maps), and loads back to an equivalent model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from . import __version__
from .base import Dataset, ItemFeatures, Recommender, top_k
from .encoders import fuse_content, l2_normalise
from .idmap import IdMap

ARTEFACT_FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
USER_IDS_FILE = "user_ids.json"
ITEM_IDS_FILE = "item_ids.json"

R = TypeVar("R", bound="_ArtefactMixin")


class _ArtefactMixin:
    """Save/load of (config, numpy arrays, id maps) in the DESIGN.md artefact layout."""

    kind: ClassVar[str]
    item_map: IdMap
    user_map: IdMap

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Write the artefact directory (created if needed; files are overwritten)."""
        from safetensors.numpy import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "class": self.kind,
            "format": ARTEFACT_FORMAT,
            "recsys_version": __version__,
            "params": self._config(),
        }
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(
            {k: np.ascontiguousarray(v) for k, v in self._arrays().items()}, out / WEIGHTS_FILE
        )
        self.user_map.save(out / USER_IDS_FILE)
        self.item_map.save(out / ITEM_IDS_FILE)

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """Read an artefact written by :meth:`save` of this class."""
        from safetensors.numpy import load_file

        src = Path(path)
        config = json.loads((src / CONFIG_FILE).read_text())
        if config.get("class") != cls.kind:
            raise ValueError(f"{src} holds a {config.get('class')!r} model, not {cls.kind!r}")
        if config.get("format") != ARTEFACT_FORMAT:
            raise ValueError(
                f"{src} has artefact format {config.get('format')}, expected {ARTEFACT_FORMAT}"
            )
        model = cls(**config["params"])
        model.user_map = IdMap.load(src / USER_IDS_FILE)
        model.item_map = IdMap.load(src / ITEM_IDS_FILE)
        model._restore(load_file(src / WEIGHTS_FILE))
        return model


def _pack(lists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged int lists -> (indptr, values), the CSR layout that safetensors can store."""
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(x) for x in lists])
    values = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return indptr, values


def _unpack(indptr: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    return [values[indptr[i] : indptr[i + 1]] for i in range(len(indptr) - 1)]


def _recent_histories(dataset: Dataset, max_history: int) -> list[np.ndarray]:
    """Per user: the last ``max_history`` distinct items, oldest first (request-time default)."""
    out = []
    for hist in dataset.histories():
        # Keep each item's latest occurrence: a re-purchase moves it to the front of "recent".
        rev = hist[::-1]
        _, first = np.unique(rev, return_index=True)
        recent = rev[np.sort(first)][:max_history][::-1]
        out.append(recent.astype(np.int64))
    return out


class RandomRecommender(_ArtefactMixin, Recommender):
    """Uniform random scores: the reference floor of every benchmark table."""

    kind = "random"
    supports_cold_items = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.user_map = IdMap()
        self.item_map = IdMap()
        self._rng = np.random.default_rng(seed)

    def fit(self, dataset: Dataset) -> RandomRecommender:
        self.user_map, self.item_map = dataset.user_map, dataset.item_map
        self._rng = np.random.default_rng(self.seed)
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        return self._rng.random((len(users), len(self.item_map))).astype(np.float32)

    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"seed": np.array([self.seed], dtype=np.int64)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._rng = np.random.default_rng(self.seed)


class PopularityRecommender(_ArtefactMixin, Recommender):
    """Items ranked by their number of distinct positive shoppers in training.

    ``weighted=True`` sums event weights instead (a purchase counts more than a view), which is
    what a shop's "trending" shelf usually wants; on rating-only data both are the same.
    """

    kind = "popularity"
    supports_cold_items = False

    def __init__(self, weighted: bool = False) -> None:
        self.weighted = weighted
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, dataset: Dataset) -> PopularityRecommender:
        self.user_map, self.item_map = dataset.user_map, dataset.item_map
        if self.weighted:
            counts = np.bincount(dataset.items, weights=dataset.weights, minlength=dataset.n_items)
        else:
            pairs = np.unique(dataset.users * np.int64(dataset.n_items) + dataset.items)
            counts = np.bincount(pairs % dataset.n_items, minlength=dataset.n_items)
        self.counts = counts.astype(np.float32)
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts))).copy()

    def _config(self) -> dict[str, Any]:
        return {"weighted": self.weighted}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"].astype(np.float32)


def content_vectors(
    features: ItemFeatures | None, *, text_weight: float = 0.5, category_weight: float = 0.0
) -> np.ndarray:
    """One unit content vector per item: fused text+image (or whichever exists), + category.

    ``category_weight`` w appends a one-hot category block so that cos gains ``w`` when two items
    share a known category: a cheap way to make "same aisle" count on catalogs whose texts are
    thin. Items with no content at all get a zero row (they score 0 against everything).
    """
    if features is None or len(features) == 0:
        raise ValueError("content-kNN needs item features (text and/or image vectors)")
    n = len(features)
    parts: list[np.ndarray] = []
    if features.text is not None and features.image is not None:
        base = fuse_content(
            features.text, features.image, text_weight=text_weight, has_image=features.image_mask
        )
    elif features.text is not None:
        base = l2_normalise(features.text)
    elif features.image is not None:
        mask = np.ones(n, bool) if features.image_mask is None else features.image_mask
        base = l2_normalise(np.where(mask[:, None], features.image, 0.0))
    else:
        base = np.zeros((n, 0), dtype=np.float32)
    parts.append(np.sqrt(1.0 - category_weight) * base if category_weight else base)
    if category_weight and features.category is not None:
        n_codes = max(len(features.category_names), int(features.category.max()) + 1)
        onehot = np.zeros((n, n_codes), dtype=np.float32)
        known = features.category > 0
        onehot[np.flatnonzero(known), features.category[known]] = 1.0
        parts.append(np.sqrt(category_weight) * onehot[:, 1:])
    out = np.concatenate(parts, axis=1).astype(np.float32)
    if out.shape[1] == 0:
        raise ValueError("item features hold neither text, image nor category data")
    return out


class ContentKNNRecommender(_ArtefactMixin, Recommender):
    """Score = recency-weighted similarity of an item's content to the shopper's recent items.

    ``score(i) = sum_j decay**age_j * cos(c_i, c_j)`` over the last ``max_history`` items j of
    the history (age 0 = most recent), with ``c`` the fused content vectors of
    :func:`content_vectors`. Being a sum of cosines, it equals one dot product with a
    "profile" vector, so scoring a batch is one matrix product.

    It needs no interactions for the scored items (cold items rank by content) and takes the
    history at request time (cold or anonymous shoppers). A known user with an empty history
    falls back to their last training items; no history at all scores everything 0.
    """

    kind = "content-knn"
    supports_cold_items = True

    def __init__(
        self,
        text_weight: float = 0.5,
        category_weight: float = 0.0,
        decay: float = 0.97,
        max_history: int = 50,
    ) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.text_weight = text_weight
        self.category_weight = category_weight
        self.decay = decay
        self.max_history = max_history
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.user_histories: list[np.ndarray] = []

    def fit(self, dataset: Dataset) -> ContentKNNRecommender:
        self.user_map, self.item_map = dataset.user_map, dataset.item_map
        self.vectors = content_vectors(
            dataset.item_features,
            text_weight=self.text_weight,
            category_weight=self.category_weight,
        )
        self.user_histories = _recent_histories(dataset, self.max_history)
        return self

    def _profile(self, user: int | None, history: Sequence[int]) -> np.ndarray:
        hist = np.asarray(history, dtype=np.int64)
        if not len(hist) and user is not None and user < len(self.user_histories):
            hist = self.user_histories[user]
        hist = hist[-self.max_history :]
        if not len(hist):
            return np.zeros(self.vectors.shape[1], dtype=np.float32)
        weights = self.decay ** np.arange(len(hist) - 1, -1, -1, dtype=np.float32)
        return (weights[:, None] * self.vectors[hist]).sum(axis=0)

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        profiles = (
            np.stack([self._profile(u, h) for u, h in zip(users, histories, strict=True)])
            if len(users)
            else np.zeros((0, self.vectors.shape[1]), np.float32)
        )
        return (profiles @ self.vectors.T).astype(np.float32)

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        index = self.item_map.index(item)
        scores = self.vectors @ self.vectors[index]
        mask = np.ones(len(scores), dtype=bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def _config(self) -> dict[str, Any]:
        return {
            "text_weight": self.text_weight,
            "category_weight": self.category_weight,
            "decay": self.decay,
            "max_history": self.max_history,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        indptr, values = _pack(self.user_histories)
        return {"vectors": self.vectors, "history_indptr": indptr, "history_items": values}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.vectors = arrays["vectors"].astype(np.float32)
        self.user_histories = _unpack(arrays["history_indptr"], arrays["history_items"])


class MatrixFactorizationRecommender(_ArtefactMixin, Recommender):
    """ID-only matrix factorisation trained on positives with mini-batches (torch, seeded).

    ``loss="softmax"``: sampled softmax over the positive and ``negatives`` uniformly sampled
    items shared by the batch (cheap, and it optimises the top of the ranking); ``"bpr"``: one
    sampled negative per positive. Both take memory linear in interactions (no user x item
    matrix). An item bias learns popularity. A shopper unseen in training is folded in as the
    mean of their history's item vectors, so ID-MF can still serve cold users a little; items
    without events have untrained vectors (use content models for them).
    """

    kind = "mf"
    supports_cold_items = False

    def __init__(
        self,
        factors: int = 64,
        epochs: int = 30,
        batch_size: int = 4096,
        lr: float = 0.005,
        reg: float = 1e-4,
        loss: str = "softmax",
        negatives: int = 512,
        seed: int = 0,
        threads: int | None = None,
        progress: bool = False,
    ) -> None:
        if loss not in ("softmax", "bpr"):
            raise ValueError(f"loss must be 'softmax' or 'bpr', got {loss!r}")
        self.factors = factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.loss = loss
        self.negatives = negatives
        self.seed = seed
        self.threads = threads
        self.progress = progress
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.user_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.fit_seconds = 0.0

    def fit(self, dataset: Dataset) -> MatrixFactorizationRecommender:
        import torch

        started = time.perf_counter()
        if self.threads:
            torch.set_num_threads(self.threads)
        self.user_map, self.item_map = dataset.user_map, dataset.item_map
        n_users, n_items = dataset.n_users, dataset.n_items
        # Distinct pairs, each weighted by its strongest event: a view then a purchase is one
        # purchase-strength positive, not two samples.
        keys = dataset.users * np.int64(n_items) + dataset.items
        order = np.lexsort((-dataset.weights, keys))
        keys_sorted = keys[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = keys_sorted[1:] != keys_sorted[:-1]
        pair_keys = keys_sorted[first]
        pair_weights = dataset.weights[order][first]
        users = torch.as_tensor(pair_keys // n_items)
        items = torch.as_tensor(pair_keys % n_items)
        weights = torch.as_tensor(pair_weights / max(float(pair_weights.mean()), 1e-12))

        gen = torch.Generator().manual_seed(self.seed)
        scale = 1.0 / np.sqrt(self.factors)
        user_emb = torch.nn.Parameter(
            torch.randn(n_users, self.factors, generator=gen) * scale * 0.1
        )
        item_emb = torch.nn.Parameter(
            torch.randn(n_items, self.factors, generator=gen) * scale * 0.1
        )
        bias = torch.nn.Parameter(torch.zeros(n_items))
        opt = torch.optim.Adam([user_emb, item_emb, bias], lr=self.lr)
        n = len(users)
        epochs = range(self.epochs)
        if self.progress:
            from tqdm import tqdm

            epochs = tqdm(epochs, desc="mf", unit="epoch", leave=False)
        for _ in epochs:
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch_size):
                idx = perm[start : start + self.batch_size]
                u, i, w = users[idx], items[idx], weights[idx]
                uv = user_emb[u]
                iv = item_emb[i]
                if self.loss == "softmax":
                    neg = torch.randint(0, n_items, (self.negatives,), generator=gen)
                    nv = item_emb[neg]
                    pos_logit = (uv * iv).sum(1) + bias[i]
                    neg_logit = uv @ nv.T + bias[neg]
                    # A sampled "negative" that is the positive itself would push it down.
                    neg_logit = neg_logit.masked_fill(neg[None, :] == i[:, None], -1e9)
                    logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
                    loss = -(torch.log_softmax(logits, dim=1)[:, 0] * w).mean()
                    reg = (uv.pow(2).sum(1) + iv.pow(2).sum(1)).mean() + nv.pow(2).sum(1).mean()
                else:
                    neg = torch.randint(0, n_items, (len(idx),), generator=gen)
                    nv = item_emb[neg]
                    diff = (uv * (iv - nv)).sum(1) + bias[i] - bias[neg]
                    loss = -(torch.nn.functional.logsigmoid(diff) * w).mean()
                    reg = (uv.pow(2).sum(1) + iv.pow(2).sum(1) + nv.pow(2).sum(1)).mean()
                opt.zero_grad()
                (loss + self.reg * reg).backward()
                opt.step()
        self.user_factors = user_emb.detach().numpy().astype(np.float32)
        self.item_factors = item_emb.detach().numpy().astype(np.float32)
        self.item_bias = bias.detach().numpy().astype(np.float32)
        self.fit_seconds = time.perf_counter() - started
        return self

    def _user_vector(self, user: int | None, history: Sequence[int]) -> np.ndarray:
        if user is not None and 0 <= user < len(self.user_factors):
            return self.user_factors[user]
        hist = np.asarray(history, dtype=np.int64)
        if not len(hist):
            return np.zeros(self.factors, dtype=np.float32)
        return self.item_factors[hist].mean(axis=0)

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        if not len(users):
            return np.zeros((0, len(self.item_bias)), dtype=np.float32)
        vecs = np.stack([self._user_vector(u, h) for u, h in zip(users, histories, strict=True)])
        return (vecs @ self.item_factors.T + self.item_bias).astype(np.float32)

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        index = self.item_map.index(item)
        vecs = l2_normalise(self.item_factors)
        scores = vecs @ vecs[index]
        mask = np.ones(len(scores), dtype=bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def _config(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "reg": self.reg,
            "loss": self.loss,
            "negatives": self.negatives,
            "seed": self.seed,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "item_bias": self.item_bias,
        }

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors = arrays["user_factors"].astype(np.float32)
        self.item_factors = arrays["item_factors"].astype(np.float32)
        self.item_bias = arrays["item_bias"].astype(np.float32)
