"""Event sequences for the sequence model, in numpy (shared by training and torch-free serving).

A shopper's positives in time order become a sequence of *steps*: consecutive events on the same
item merge into one step whose event type is the strongest of them (view -> click -> cart of one
product is one step). Event types are not stored in a :class:`~shop_recs.recsys.base.Dataset`,
only their weights, and the app passes weights at request time too, so the type code of a step is
its weight class: the nearest of :data:`~shop_recs.recsys.base.EVENT_WEIGHTS`' distinct values
(on a log scale). Code 0 is padding.
"""

from __future__ import annotations

import numpy as np

from ..base import EVENT_WEIGHTS, Dataset

#: Distinct event weights, ascending: type code i + 1 is the i-th.
TYPE_WEIGHTS = np.array(sorted(set(EVENT_WEIGHTS.values())), dtype=np.float64)
N_TYPES = len(TYPE_WEIGHTS) + 1


def event_types(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Type codes (1..N_TYPES-1) of event weights; ``None`` = all views (code of weight 1)."""
    if weights is None:
        weights = np.ones(n, np.float64)
    w = np.log(np.clip(np.asarray(weights, np.float64).reshape(-1), 1e-6, None))
    return (np.abs(w[:, None] - np.log(TYPE_WEIGHTS)[None, :]).argmin(axis=1) + 1).astype(np.int64)


def merge_steps(
    items: np.ndarray, weights: np.ndarray, merge: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of the same item into one step with the run's largest weight."""
    items = np.asarray(items, np.int64)
    weights = np.asarray(weights, np.float64)
    if not merge or len(items) < 2:
        return items, weights
    starts = np.r_[True, items[1:] != items[:-1]]
    run = np.cumsum(starts) - 1
    out_w = np.zeros(int(run[-1]) + 1)
    np.maximum.at(out_w, run, weights)
    return items[starts], out_w


def user_sequences(
    dataset: Dataset, merge: bool = True
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per user index: step items and step weights, oldest first (ties keep input order)."""
    order = np.lexsort((np.arange(len(dataset)), dataset.times, dataset.users))
    users, items, weights = dataset.users[order], dataset.items[order], dataset.weights[order]
    bounds = np.searchsorted(users, np.arange(dataset.n_users + 1))
    seqs, wts = [], []
    for u in range(dataset.n_users):
        i, w = merge_steps(
            items[bounds[u] : bounds[u + 1]], weights[bounds[u] : bounds[u + 1]], merge
        )
        seqs.append(i)
        wts.append(w.astype(np.float32))
    return seqs, wts


def right_align(
    histories: list[np.ndarray], types: list[np.ndarray], max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """B x L item and type arrays of the last ``max_len`` steps, padded on the *left* (type 0),
    so the most recent step is always the last column."""
    width = max([min(len(h), max_len) for h in histories] + [1])
    idx = np.zeros((len(histories), width), np.int64)
    typ = np.zeros((len(histories), width), np.int64)
    for row, (h, t) in enumerate(zip(histories, types, strict=True)):
        h, t = h[-max_len:], t[-max_len:]
        if len(h):
            idx[row, width - len(h) :] = h
            typ[row, width - len(h) :] = t
    return idx, typ


def training_windows(
    seqs: list[np.ndarray], types: list[np.ndarray], max_len: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut each sequence into windows of at most ``max_len + 1`` steps (consecutive windows
    share one step, so every transition is a training target exactly once)."""
    out_i, out_t = [], []
    for s, t in zip(seqs, types, strict=True):
        n = len(s)
        if n < 2:
            continue
        end = n
        while end > 1:
            start = max(0, end - max_len - 1)
            out_i.append(s[start:end])
            out_t.append(t[start:end])
            end = start + 1
    return out_i, out_t


def history_steps(
    vectors: np.ndarray, weights: np.ndarray | None, default_type: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stored history vectors -> steps: consecutive identical vectors (the same item) merge
    into one step with the largest weight; type codes from the weights."""
    n = len(vectors)
    if weights is None:
        types = np.full(n, default_type, np.int64)
        w = np.ones(n)
    else:
        w = np.asarray(weights, np.float64).reshape(-1)
        types = event_types(w, n)
    if n < 2:
        return vectors, types
    same = np.r_[False, np.all(vectors[1:] == vectors[:-1], axis=1)]
    if not same.any():
        return vectors, types
    run = np.cumsum(~same) - 1
    best = np.zeros(int(run[-1]) + 1)
    np.maximum.at(best, run, w)
    merged_types = (
        np.full(len(best), default_type, np.int64)
        if weights is None
        else event_types(best, len(best))
    )
    return vectors[~same], merged_types
