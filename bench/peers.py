"""Peer recommenders for ``bench/quality.py``: implicit (ALS, BPR) and LightFM (WARP).

Benchmark-only wrappers (the product never imports them) that adapt each library to the
``score_items(users, histories)`` interface, so :func:`recsys.evaluation.evaluate` ranks them
with exactly the same masks and metrics as our own models. Each peer tunes itself the way
``PEERS.md`` did, on a validation split carved out of the training positives with the same
protocol (never on the test set), then refits on all training positives; the reported training
time includes that search:

- implicit ALS: alpha {1, 20} x regularisation {0.1, 1, 10, 100}, 15 iterations; cold users are
  folded in with ``recalculate_user`` (one least-squares solve on the revealed items).
- implicit BPR: library defaults (no cold users: it has no fold-in).
- LightFM WARP: epochs chosen from [10, 20, 30, 50]; without item features (warm only), with
  genre features, and with genres + TF-IDF of the title and description (these two also score
  cold items through their features). No cold users (LightFM needs a trained user row).
- EASE (Steck 2019), the textbook dense closed form ``B = I - P / diag(P)``,
  ``P = (XᵀX + λI)⁻¹`` on the binary matrix, λ chosen from {50, 100, 200, 500, 1000, 2000};
  cold users score their revealed items through ``B`` (no refit). No cold items (an item
  without events has an all-zero column). numpy only, always available.

Every peer also runs the time-ordered ``next`` protocol where it runs ``warm``.

All use 64 factors and 2 threads. Install: see ``requirements-bench.txt``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from shop_recs.recsys.base import Dataset
from shop_recs.recsys.evaluation import Split, evaluate, validation_split

FACTORS = 64
THREADS = 2
ALS_ALPHAS = (1.0, 20.0)
ALS_REGS = (0.1, 1.0, 10.0, 100.0)
EASE_L2 = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
LIGHTFM_EPOCHS = (10, 20, 30, 50)
#: Validation seeds are offset from the split seed so the two draws are independent.
VALIDATION_SEED_OFFSET = 1000

_GENRES = re.compile(r"Genres?:\s*([^.]*)\.", re.IGNORECASE)


def implicit_available() -> str | None:
    """None when implicit imports, else the reason (printed by the benchmark)."""
    try:
        import implicit  # noqa: F401
    except ImportError as exc:
        return f"implicit not installed ({exc}); see requirements-bench.txt"
    return None


def lightfm_available() -> str | None:
    try:
        import lightfm  # noqa: F401
    except ImportError as exc:
        return f"lightfm not installed ({exc}); see requirements-bench.txt"
    return None


def _user_items(train: Dataset) -> sparse.csr_matrix:
    """Binary users x items matrix of the distinct training pairs."""
    data = np.ones(len(train), dtype=np.float32)
    mat = sparse.csr_matrix(
        (data, (train.users, train.items)), shape=(train.n_users, train.n_items)
    )
    mat.data[:] = 1.0  # duplicates of a pair were summed: a positive is a positive
    return mat


def _history_rows(histories: Sequence[Sequence[int]], n_items: int) -> sparse.csr_matrix:
    rows = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return sparse.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(rows), n_items)
    )


def _blas_one_thread() -> Any:
    """implicit warns (and slows down) when BLAS runs its own threads inside its own."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


class Peer:
    """A tuned-on-validation peer: ``fit(train)`` then ``score_items`` (index space)."""

    name: str = "peer"
    protocols: frozenset[str] = frozenset()

    def __init__(self, protocol: str, seed: int) -> None:
        self.protocol = protocol
        self.seed = seed
        self.chosen: Any = None
        self.fit_seconds = 0.0

    def fit(self, train: Dataset) -> Peer:
        raise NotImplementedError

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        raise NotImplementedError

    def _validation(self, train: Dataset) -> Split:
        return validation_split(train, self.protocol, self.seed + VALIDATION_SEED_OFFSET)


class ImplicitALS(Peer):
    name = "implicit ALS"
    protocols = frozenset({"warm", "cold-users", "next"})

    def _model(self, alpha: float, reg: float) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=FACTORS,
            regularization=reg,
            alpha=alpha,
            iterations=15,
            random_state=self.seed,
            num_threads=THREADS,
        )

    def _fit_one(self, train: Dataset, alpha: float, reg: float) -> Any:
        model = self._model(alpha, reg)
        model.fit(_user_items(train), show_progress=False)
        return model

    def fit(self, train: Dataset) -> ImplicitALS:
        started = time.perf_counter()
        with _blas_one_thread():
            val = self._validation(train)
            best = (-1.0, ALS_ALPHAS[0], ALS_REGS[0])
            for alpha in ALS_ALPHAS:
                for reg in ALS_REGS:
                    self.model = self._fit_one(val.train, alpha, reg)
                    score = evaluate(self, val, ks=(10,))["recall@10"]
                    if score > best[0]:
                        best = (score, alpha, reg)
            self.chosen = (best[1], best[2])
            self.model = self._fit_one(train, best[1], best[2])
        self.fit_seconds = time.perf_counter() - started
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        items = np.asarray(self.model.item_factors)
        vecs = np.zeros((len(users), items.shape[1]), dtype=np.float32)
        known = [j for j, u in enumerate(users) if u is not None]
        if known:
            vecs[known] = np.asarray(self.model.user_factors)[[users[j] for j in known]]
        cold = [j for j, u in enumerate(users) if u is None]
        if cold:
            rows = _history_rows([histories[j] for j in cold], items.shape[0])
            with _blas_one_thread():
                vecs[cold] = self.model.recalculate_user(np.arange(len(cold)), rows)
        return vecs @ items.T


class ImplicitBPR(Peer):
    name = "implicit BPR"
    protocols = frozenset({"warm", "next"})

    def fit(self, train: Dataset) -> ImplicitBPR:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        started = time.perf_counter()
        with _blas_one_thread():
            self.model = BayesianPersonalizedRanking(
                factors=FACTORS, random_state=self.seed, num_threads=THREADS
            )
            self.model.fit(_user_items(train), show_progress=False)
        self.chosen = "defaults"
        self.fit_seconds = time.perf_counter() - started
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        if any(u is None for u in users):
            raise ValueError("implicit BPR cannot score users unseen in training")
        # implicit appends the item bias as an extra factor (and a 1 to every user vector).
        return (
            np.asarray(self.model.user_factors)[list(users)] @ np.asarray(self.model.item_factors).T
        )


def item_genres(record: dict[str, str]) -> list[str]:
    """Genres of a bundle item: the "Genres: a, b." sentence of the description, else category."""
    match = _GENRES.search(record.get("description", ""))
    if match:
        genres = [g.strip() for g in match.group(1).split(",") if g.strip()]
        if genres:
            return genres
    return [record["category"]] if record.get("category") else []


def lightfm_item_features(records: list[dict[str, str]], variant: str) -> sparse.csr_matrix | None:
    """Item feature matrix for LightFM: identity + genres (+ TF-IDF), rows L1-normalised.

    ``variant``: ``"none"`` (None: LightFM's implicit identity), ``"genres"`` or
    ``"genres+tfidf"``. Identity columns are kept, as ``lightfm.data.Dataset`` does by
    default, so warm items still get their own embedding; rows are normalised like
    ``Dataset.build_item_features(normalize=True)``.
    """
    if variant == "none":
        return None
    n = len(records)
    blocks = [sparse.identity(n, dtype=np.float32, format="csr")]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, record in enumerate(records):
        for genre in item_genres(record):
            rows.append(i)
            cols.append(vocab.setdefault(genre, len(vocab)))
    blocks.append(
        sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(n, max(len(vocab), 1))
        )
    )
    if variant == "genres+tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [f"{r['title']} {_GENRES.sub('', r.get('description', ''))}" for r in records]
        tfidf = TfidfVectorizer(min_df=2, stop_words="english").fit_transform(texts)
        blocks.append(tfidf.astype(np.float32))
    elif variant != "genres":
        raise ValueError(f"unknown LightFM feature variant {variant!r}")
    features = sparse.hstack(blocks, format="csr").astype(np.float32)
    sums = np.asarray(features.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sparse.diags(1.0 / sums).dot(features).tocsr().astype(np.float32)


class LightFMWarp(Peer):
    """LightFM with WARP loss; ``variant`` picks the item features."""

    def __init__(
        self, protocol: str, seed: int, *, variant: str, records: list[dict[str, str]]
    ) -> None:
        super().__init__(protocol, seed)
        self.variant = variant
        self.features = lightfm_item_features(records, variant)
        self.name = {
            "none": "LightFM WARP",
            "genres": "LightFM WARP + genres",
            "genres+tfidf": "LightFM WARP + genres + TF-IDF",
        }[variant]
        self.protocols = frozenset(
            {"warm", "next"} if variant == "none" else {"warm", "next", "cold-items"}
        )

    def _new(self) -> Any:
        from lightfm import LightFM

        return LightFM(no_components=FACTORS, loss="warp", random_state=self.seed)

    def _fit_more(self, model: Any, train: Dataset, epochs: int) -> None:
        model.fit_partial(
            sparse.coo_matrix(_user_items(train)),
            item_features=self.features,
            epochs=epochs,
            num_threads=THREADS,
        )

    def _cache_items(self) -> None:
        bias, emb = self.model.get_item_representations(self.features)
        self._item_bias, self._item_emb = np.asarray(bias), np.asarray(emb)
        _, self._user_emb = self.model.get_user_representations()

    def fit(self, train: Dataset) -> LightFMWarp:
        started = time.perf_counter()
        val = self._validation(train)
        self.model = self._new()
        done, best = 0, (-1.0, LIGHTFM_EPOCHS[0])
        for epochs in LIGHTFM_EPOCHS:
            self._fit_more(self.model, val.train, epochs - done)
            done = epochs
            self._cache_items()
            score = evaluate(self, val, ks=(10,))["recall@10"]
            if score > best[0]:
                best = (score, epochs)
        self.chosen = best[1]
        self.model = self._new()
        self._fit_more(self.model, train, best[1])
        self._cache_items()
        self.fit_seconds = time.perf_counter() - started
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        if any(u is None for u in users):
            raise ValueError("LightFM cannot score users unseen in training")
        return self._user_emb[list(users)] @ self._item_emb.T + self._item_bias


class DenseEASE(Peer):
    """EASE as published: dense item-item weights, λ tuned on validation."""

    name = "EASE"
    protocols = frozenset({"warm", "cold-users", "next"})

    @staticmethod
    def _weights(train: Dataset, l2: float) -> np.ndarray:
        x = _user_items(train)
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))[None, :]
        np.fill_diagonal(b, 0.0)
        return b.astype(np.float32)

    def fit(self, train: Dataset) -> DenseEASE:
        started = time.perf_counter()
        val = self._validation(train)
        best = (-1.0, EASE_L2[0])
        for l2 in EASE_L2:
            self.b = self._weights(val.train, l2)
            self._train_rows = _user_items(val.train)
            score = evaluate(self, val, ks=(10,))["recall@10"]
            if score > best[0]:
                best = (score, l2)
        self.chosen = best[1]
        self.b = self._weights(train, best[1])
        self._train_rows = _user_items(train)
        self.fit_seconds = time.perf_counter() - started
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        rows = _history_rows(histories, self.b.shape[0]).toarray()
        known = [j for j, u in enumerate(users) if u is not None]
        if known:
            rows[known] = self._train_rows[[users[j] for j in known]].toarray()
        return rows @ self.b


def peer_factories(
    records: list[dict[str, str]],
) -> tuple[list[tuple[str, frozenset[str], Any]], list[str]]:
    """(name, protocols, factory(protocol, seed)) for every installed peer, and skip notes."""
    out: list[tuple[str, frozenset[str], Any]] = [(DenseEASE.name, DenseEASE.protocols, DenseEASE)]
    notes: list[str] = []
    if (why := implicit_available()) is None:
        out.append((ImplicitALS.name, ImplicitALS.protocols, ImplicitALS))
        out.append((ImplicitBPR.name, ImplicitBPR.protocols, ImplicitBPR))
    else:
        notes.append(f"skipping implicit ALS and BPR: {why}")
    if (why := lightfm_available()) is None:
        for variant in ("none", "genres", "genres+tfidf"):
            probe = LightFMWarp("warm", 0, variant=variant, records=records)
            out.append(
                (
                    probe.name,
                    probe.protocols,
                    lambda protocol, seed, v=variant: LightFMWarp(
                        protocol, seed, variant=v, records=records
                    ),
                )
            )
    else:
        notes.append(f"skipping LightFM: {why}")
    return out, notes
