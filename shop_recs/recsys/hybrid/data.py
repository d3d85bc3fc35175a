"""Interactions as per-user, time-ordered CSR arrays, and the minibatches built from them.

Everything is vectorised numpy over the interaction rows of a batch, so the cost of an epoch is
linear in the number of interactions (no dense user x item matrix is ever built).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import Dataset


@dataclass
class Interactions:
    """Deduplicated positives per user: ``items[indptr[u]:indptr[u+1]]`` oldest first.

    Repeated events on one (user, item) add their weights (a purchase after a view is a
    stronger signal than either) and take the time of the last one.
    """

    indptr: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def __len__(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def user_items(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> Interactions:
        n_users, n_items = dataset.n_users, dataset.n_items
        if not len(dataset):
            return cls(np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64), np.zeros(0), n_items)
        keys = dataset.users * n_items + dataset.items
        order = np.lexsort((dataset.times, keys))
        keys, times = keys[order], dataset.times[order]
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        weights = np.bincount(inverse, weights=dataset.weights[order]).astype(np.float32)
        last = np.r_[first[1:], len(keys)] - 1
        last_time = times[last]
        users, items = unique // n_items, unique % n_items
        # Time order within each user; ties broken by item index so the order is deterministic.
        order = np.lexsort((items, last_time, users))
        users, items, weights = users[order], items[order], weights[order]
        indptr = np.searchsorted(users, np.arange(n_users + 1)).astype(np.int64)
        return cls(indptr, items.astype(np.int64), weights, n_items)

    def _rows_of(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interaction rows of ``users`` (in the given user order) and the batch row of each."""
        starts, lens = self.indptr[users], self.lengths()[users]
        owner = np.repeat(np.arange(len(users)), lens)
        offsets = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        return np.repeat(starts, lens) + offsets, owner

    def select(self, keep: np.ndarray) -> Interactions:
        """Only the rows where ``keep`` is True (same users and order)."""
        owner = np.repeat(np.arange(self.n_users), self.lengths())
        per_user = np.bincount(owner[keep], minlength=self.n_users)
        indptr = np.r_[0, np.cumsum(per_user)].astype(np.int64)
        return Interactions(indptr, self.items[keep], self.weights[keep], self.n_items)

    def holdout(
        self, fraction: float, rng: np.random.Generator
    ) -> tuple[Interactions, Interactions]:
        """Random ``fraction`` of each user's items as a validation slice.

        Users with fewer than 3 items keep them all in training (they would otherwise lose
        their whole history).
        """
        lens = self.lengths()
        owner = np.repeat(np.arange(self.n_users), lens)
        held = rng.random(len(self.items)) < fraction
        held &= lens[owner] >= 3
        # Never hold out a user's every item.
        held_count = np.bincount(owner[held], minlength=self.n_users)
        all_held = held_count >= lens
        if all_held.any():
            first_rows = self.indptr[:-1][all_held & (lens > 0)]
            held[first_rows] = False
        return self.select(~held), self.select(held)


def pad_histories(
    histories: list[np.ndarray], weights: list[np.ndarray], max_history: int
) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned B x L index and weight arrays of the last ``max_history`` items of each."""
    trimmed = [
        (h[-max_history:], w[-max_history:]) for h, w in zip(histories, weights, strict=True)
    ]
    width = max([len(h) for h, _ in trimmed] + [1])
    idx = np.zeros((len(trimmed), width), dtype=np.int64)
    wts = np.zeros((len(trimmed), width), dtype=np.float32)
    for row, (h, w) in enumerate(trimmed):
        idx[row, : len(h)] = h
        wts[row, : len(h)] = w
    return idx, wts


@dataclass
class Batch:
    """A training minibatch: a random subset of each user's items as history, all as targets."""

    users: np.ndarray  # B user indices
    history: np.ndarray  # B x L item indices, left-aligned, oldest first
    history_weights: np.ndarray  # B x L, 0 = padding
    target_rows: np.ndarray  # T batch rows
    target_items: np.ndarray  # T item indices
    target_weights: np.ndarray  # T, mean 1 within each batch row
    keep_share: np.ndarray  # B, the probability each history item was kept with


def make_batch(
    data: Interactions,
    users: np.ndarray,
    rng: np.random.Generator,
    *,
    keep_min: float,
    keep_max: float,
    max_history: int,
) -> Batch:
    """Denoising batch (Mult-DAE): keep each item in the history with a per-user probability.

    Targets are all of the user's items, weighted by event weight relative to the user's mean
    (so a user with more positives weighs more, as in Mult-DAE). The history keeps at least
    one item and, as at serving time, only the most recent ``max_history`` kept items.
    """
    rows, owner = data._rows_of(users)
    b = len(users)
    share = rng.uniform(keep_min, keep_max, size=b)
    draw = rng.random(len(rows))
    is_input = draw < share[owner]
    # Force one input per user (its lowest draw).
    order = np.lexsort((draw, owner))
    starts = np.searchsorted(owner[order], np.arange(b))
    is_input[order[starts[starts < len(order)]]] = True

    in_rows, in_owner = rows[is_input], owner[is_input]
    count = np.bincount(in_owner, minlength=b)
    # Position from the end within each user's inputs (0 = most recent).
    pos = np.arange(len(in_rows)) - np.repeat(np.cumsum(count) - count, count)
    from_end = np.repeat(count, count) - 1 - pos
    keep = from_end < max_history
    in_rows, in_owner = in_rows[keep], in_owner[keep]
    width = max(int(min(count.max(initial=1), max_history)), 1)
    used = np.minimum(count, max_history)
    col = np.arange(len(in_rows)) - np.repeat(np.cumsum(used) - used, used)
    history = np.zeros((b, width), dtype=np.int64)
    history_weights = np.zeros((b, width), dtype=np.float32)
    history[in_owner, col] = data.items[in_rows]
    history_weights[in_owner, col] = data.weights[in_rows]

    t_w = data.weights[rows].astype(np.float64)
    per_user = np.bincount(owner, weights=t_w, minlength=b) / np.maximum(
        np.bincount(owner, minlength=b), 1
    )
    return Batch(
        users=np.asarray(users, dtype=np.int64),
        history=history,
        history_weights=history_weights,
        target_rows=owner,
        target_items=data.items[rows],
        target_weights=(t_w / per_user[owner]).astype(np.float32),
        keep_share=share.astype(np.float32),
    )
