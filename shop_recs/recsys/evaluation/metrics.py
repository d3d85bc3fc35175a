"""Ranking metrics: plain functions of (ranked ids, relevant ids, k).

``ranked`` is the model's list, best first, with the user's training positives already removed
(the protocol masks them before ranking), so a metric never rewards re-recommending what the
shopper already has. Ids may be anything hashable (indices or external ids).

Conventions, chosen to match the peer numbers in ``PEERS.md``:

- Recall@K divides by *all* of the user's relevant items, not by ``min(k, |relevant|)``: a user
  with 50 test positives can reach at most 10/50 at K=10. This is the LightFM/implicit-style
  recall and is what the peer table reports.
- NDCG@K uses binary gains and the ideal DCG of ``min(k, |relevant|)`` hits.
- AP@K (the mean over users is MAP@K) divides by ``min(k, |relevant|)`` so a perfect top-k is 1.
- A user with no relevant items scores 0 everywhere; the protocol never evaluates such a user.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np


def _hits(ranked: Sequence[Any] | np.ndarray, relevant: Collection[Any], k: int) -> np.ndarray:
    """Boolean array: is ranked[i] relevant, for the first k entries."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = relevant if isinstance(relevant, set | frozenset) else set(np.asarray(relevant).tolist())
    top = np.asarray(ranked)[:k].tolist()
    return np.fromiter((r in rel for r in top), dtype=bool, count=len(top))


def _n_relevant(relevant: Collection[Any]) -> int:
    return (
        len(relevant)
        if isinstance(relevant, set | frozenset)
        else len(set(np.asarray(relevant).tolist()))
    )


def recall_at_k(ranked: Sequence[Any] | np.ndarray, relevant: Collection[Any], k: int) -> float:
    """Share of all the user's relevant items found in the top k."""
    n = _n_relevant(relevant)
    if n == 0:
        return 0.0
    return float(_hits(ranked, relevant, k).sum()) / n


def hit_rate_at_k(ranked: Sequence[Any] | np.ndarray, relevant: Collection[Any], k: int) -> float:
    """1.0 if at least one relevant item is in the top k, else 0.0."""
    if _n_relevant(relevant) == 0:
        return 0.0
    return float(_hits(ranked, relevant, k).any())


def ndcg_at_k(ranked: Sequence[Any] | np.ndarray, relevant: Collection[Any], k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance."""
    n = _n_relevant(relevant)
    if n == 0:
        return 0.0
    hits = _hits(ranked, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((hits * discounts[: len(hits)]).sum())
    idcg = float(discounts[: min(k, n)].sum())
    return dcg / idcg


def average_precision_at_k(
    ranked: Sequence[Any] | np.ndarray, relevant: Collection[Any], k: int
) -> float:
    """Average of precision@i over the ranks i <= k that hold a relevant item, / min(k, |rel|)."""
    n = _n_relevant(relevant)
    if n == 0:
        return 0.0
    hits = _hits(ranked, relevant, k)
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum()) / min(k, n)


def catalog_coverage(
    ranked_lists: Iterable[Sequence[Any] | np.ndarray], n_items: int, k: int
) -> float:
    """Share of the ``n_items`` rankable items that appear in at least one user's top k.

    Low coverage means every shopper sees the same few items (popularity's 2.5% on ml100k).
    """
    if n_items <= 0:
        return 0.0
    shown: set[Any] = set()
    for ranked in ranked_lists:
        shown.update(np.asarray(ranked)[:k].tolist())
    return len(shown) / n_items


def mrr_at_k(ranked: Sequence[Any] | np.ndarray, relevant: Collection[Any], k: int) -> float:
    """Reciprocal rank of the first relevant item in the top k (0.0 when none is)."""
    hits = _hits(ranked, relevant, k)
    first = np.flatnonzero(hits)
    return 1.0 / (int(first[0]) + 1) if len(first) else 0.0
