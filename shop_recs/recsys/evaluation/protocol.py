"""Score a fitted recommender on a :class:`~shop_recs.recsys.evaluation.splits.Split`.

One code path for every model, in-project or peer: ``model.score_items(users, histories)`` in
batches, then the protocol's masks (training positives / revealed items excluded, non-candidates
excluded for cold items) and the plain metric functions of :mod:`.metrics`. A peer wrapper only
has to implement ``score_items`` to be compared on exactly the same ranking rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .metrics import (
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    ndcg_at_k,
    recall_at_k,
)
from .splits import Split


class Scorer(Protocol):
    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray: ...


def rank_split(model: Scorer, split: Split, k: int, batch_size: int = 256) -> list[np.ndarray]:
    """Top-k item indices for every test user of ``split``, best first, after masking.

    Ties break by a random item order drawn from ``split.seed``: breaking them by index would
    leak the catalog's id order (MovieLens numbers popular films first, so a constant scorer
    would look 3x better than random on cold items). Fewer than k entries come back only when
    fewer than k items may be ranked at all.
    """
    n_items = split.train.n_items
    tiebreak = np.random.default_rng(split.seed).permutation(n_items)
    allowed = np.ones(n_items, dtype=bool)
    if split.candidates is not None:
        allowed[:] = False
        allowed[split.candidates] = True
    ranked: list[np.ndarray] = []
    for start in range(0, split.n_test_users, batch_size):
        stop = min(start + batch_size, split.n_test_users)
        users: list[int | None] = [
            int(u) if known else None
            for u, known in zip(
                split.test_users[start:stop], split.known_user[start:stop], strict=True
            )
        ]
        histories = [h.tolist() for h in split.histories[start:stop]]
        scores = np.array(model.score_items(users, histories), dtype=np.float64)
        if scores.shape != (stop - start, n_items):
            raise ValueError(
                f"{type(model).__name__}.score_items returned shape {scores.shape}, "
                f"expected {(stop - start, n_items)}"
            )
        if np.isnan(scores).any():
            raise ValueError(f"{type(model).__name__}.score_items returned NaN scores")
        scores[:, ~allowed] = -np.inf
        for row, excluded in enumerate(split.exclude[start:stop]):
            scores[row, excluded] = -np.inf
        ranked.extend(_top(scores, k, tiebreak))
    return ranked


def _top(scores: np.ndarray, k: int, tiebreak: np.ndarray) -> list[np.ndarray]:
    k_eff = min(k, scores.shape[1])
    # argpartition, then sort the winners by (-score, tiebreak rank).
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    out = []
    for row, cols in zip(scores, part, strict=True):
        # A tie straddling the partition boundary must resolve by tiebreak: the items above the
        # k-th score, then of the items tied at it those first in the tiebreak order. (Thousands
        # of items can tie, e.g. zero scores for items without events: partitioned, not sorted.)
        kth = row[cols].min()
        if np.isfinite(kth):
            above = cols[row[cols] > kth]
            ties = np.flatnonzero(row == kth)
            need = k_eff - len(above)
            if len(ties) > need:
                ties = ties[np.argpartition(tiebreak[ties], need - 1)[:need]]
            cols = np.concatenate([above, ties])
        order = np.lexsort((tiebreak[cols], -row[cols]))
        best = cols[order][:k_eff]
        out.append(best[np.isfinite(row[best])])
    return out


def evaluate(
    model: Scorer, split: Split, ks: Sequence[int] = (10, 20), batch_size: int = 256
) -> dict[str, float]:
    """Mean Recall/NDCG/MAP/HitRate@K over the split's test users, coverage@K and data counts.

    Keys: ``recall@10``, ``ndcg@10``, ``map@10``, ``hit_rate@10``, ``coverage@10`` (for each
    K), ``train_positives``, ``test_users``, ``test_positives``, ``candidates``. Coverage is
    over the rankable items (the candidates for cold items, else the whole catalog).
    """
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    ranked = rank_split(model, split, max(ks), batch_size)
    relevant = [set(r.tolist()) for r in split.relevant]
    result: dict[str, float] = {}
    for k in ks:
        lists = [r[:k] for r in ranked]
        for name, fn in (
            ("recall", recall_at_k),
            ("ndcg", ndcg_at_k),
            ("map", average_precision_at_k),
            ("hit_rate", hit_rate_at_k),
        ):
            values = [fn(lst, rel, k) for lst, rel in zip(lists, relevant, strict=True)]
            result[f"{name}@{k}"] = float(np.mean(values)) if values else 0.0
        result[f"coverage@{k}"] = catalog_coverage(lists, split.n_candidates, k)
    result.update({name: float(v) for name, v in split.counts().items()})
    return result
