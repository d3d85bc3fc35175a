"""The three evaluation protocols of the hybrid issue (as in PEERS.md) plus a validation holdout.

All protocols work on positives only (a :class:`~recsys.base.Dataset` already holds nothing
else) and on distinct (user, item) *pairs*: a shopper who viewed and then bought an item has one
positive pair, so the same item can never be both a training positive and a test item.

- ``warm``: a random 20% of the pairs is the test set; every user and item may appear in both.
- ``cold-items``: 20% of the catalog's items are held out with *all* their events; the model
  ranks only the held-out items (it has never seen an interaction with any of them), so only
  content can tell them apart.
- ``cold-users``: 20% of the users are held out with all their events; at request time the model
  is shown each one's first ``reveal`` (5) distinct positives in time order and must rank the
  rest among all items except the revealed ones, without refitting.

Every split keeps the full dataset's id maps and item features in ``train`` (only the
interaction rows shrink), so a model fitted on ``train`` scores in the same index space as the
test items, including items with no training events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import Dataset

PROTOCOLS = ("warm", "cold-items", "cold-users")
#: Every protocol :func:`make_split` knows, including the time-ordered ``next`` (the last
#: ``frac`` of each user's items by time held out). Kept apart from :data:`PROTOCOLS` so callers
#: that iterate the original three keep doing so.
ALL_PROTOCOLS = (*PROTOCOLS, "next")


@dataclass
class Split:
    """One train/test split and everything the protocol needs to rank for each test user.

    Lists are aligned with ``test_users``. ``histories[j]`` is what the model may use for user j
    at request time (item indices, oldest first): their training items for warm/cold-items, the
    revealed items for cold-users. ``known_user[j]`` is False for users the model never saw
    (pass ``None`` as the user to ``score_items``). ``exclude[j]`` are never ranked (training
    positives or revealed items); ``candidates`` restricts ranking to these items (cold-items).
    """

    protocol: str
    seed: int
    train: Dataset
    test_users: np.ndarray
    relevant: list[np.ndarray]
    histories: list[np.ndarray]
    known_user: np.ndarray
    exclude: list[np.ndarray]
    candidates: np.ndarray | None = None

    @property
    def n_test_users(self) -> int:
        return len(self.test_users)

    @property
    def n_test_positives(self) -> int:
        return int(sum(len(r) for r in self.relevant))

    @property
    def n_train_positives(self) -> int:
        """Distinct training (user, item) pairs, the peers' "train positives"."""
        return _n_pairs(self.train)

    @property
    def n_candidates(self) -> int:
        return self.train.n_items if self.candidates is None else len(self.candidates)

    def counts(self) -> dict[str, int]:
        return {
            "train_positives": self.n_train_positives,
            "test_users": self.n_test_users,
            "test_positives": self.n_test_positives,
            "candidates": self.n_candidates,
        }


def _pair_keys(dataset: Dataset) -> np.ndarray:
    return dataset.users * np.int64(max(dataset.n_items, 1)) + dataset.items


def _n_pairs(dataset: Dataset) -> int:
    return len(np.unique(_pair_keys(dataset)))


def _n_take(frac: float, n: int) -> int:
    if not 0.0 < frac < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {frac}")
    return round(frac * n)


def _items_by_user(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(users that have any row, sorted unique items of each of them)."""
    if not len(users):
        return np.zeros(0, dtype=np.int64), []
    width = np.int64(int(items.max()) + 1)
    keys = np.unique(users * width + items)
    u, i = keys // width, keys % width
    present, starts = np.unique(u, return_index=True)
    bounds = np.append(starts, len(u))
    return present, [i[bounds[j] : bounds[j + 1]] for j in range(len(present))]


def _unique_in_order(items: np.ndarray) -> np.ndarray:
    """Distinct items keeping the first occurrence's position (time order survives)."""
    _, first = np.unique(items, return_index=True)
    return items[np.sort(first)]


def _train_views(train: Dataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per user index: time-ordered distinct training items, and the sorted set of them."""
    ordered = [_unique_in_order(h) for h in train.histories()]
    return ordered, [np.sort(h) for h in ordered]


def _known_split(
    protocol: str,
    seed: int,
    dataset: Dataset,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    candidates: np.ndarray | None,
) -> Split:
    """A split whose test users are judged with their training items as history (warm-like)."""
    train = dataset.subset(train_rows)
    test_users, relevant = _items_by_user(dataset.users[test_rows], dataset.items[test_rows])
    ordered, sorted_train = _train_views(train)
    # Splits are by pair, so this is a no-op for them; it guards callers passing raw row sets.
    relevant = [
        np.setdiff1d(r, sorted_train[u], assume_unique=True)
        for u, r in zip(test_users, relevant, strict=True)
    ]
    keep = np.array([len(r) > 0 for r in relevant], dtype=bool)
    test_users = test_users[keep]
    relevant = [r for r, k in zip(relevant, keep, strict=True) if k]
    return Split(
        protocol=protocol,
        seed=seed,
        train=train,
        test_users=test_users,
        relevant=relevant,
        histories=[ordered[u] for u in test_users],
        known_user=np.array([len(ordered[u]) > 0 for u in test_users], dtype=bool),
        exclude=[sorted_train[u] for u in test_users],
        candidates=candidates,
    )


def warm_split(dataset: Dataset, seed: int, *, test_frac: float = 0.2) -> Split:
    """Random ``test_frac`` of the distinct positive (user, item) pairs as the test set."""
    keys = _pair_keys(dataset)
    unique, inverse = np.unique(keys, return_inverse=True)
    rng = np.random.default_rng(seed)
    test_pairs = np.zeros(len(unique), dtype=bool)
    test_pairs[rng.permutation(len(unique))[: _n_take(test_frac, len(unique))]] = True
    test_rows = test_pairs[inverse]
    return _known_split(
        "warm", seed, dataset, np.flatnonzero(~test_rows), np.flatnonzero(test_rows), None
    )


def cold_items_split(
    dataset: Dataset,
    seed: int,
    *,
    frac: float = 0.2,
    among: np.ndarray | None = None,
) -> Split:
    """Hold out ``frac`` of the items (default: of the whole catalog) with all their events.

    ``among`` restricts the draw to these item indices; validation inside a training set passes
    the items that have training events, so it never "holds out" an already-cold item.
    """
    pool = np.arange(dataset.n_items) if among is None else np.unique(np.asarray(among))
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(pool, size=_n_take(frac, len(pool)), replace=False))
    test_rows = np.isin(dataset.items, held)
    return _known_split(
        "cold-items",
        seed,
        dataset,
        np.flatnonzero(~test_rows),
        np.flatnonzero(test_rows),
        held.astype(np.int64),
    )


def cold_users_split(
    dataset: Dataset,
    seed: int,
    reveal: int = 5,
    *,
    frac: float = 0.2,
    among: np.ndarray | None = None,
) -> Split:
    """Hold out ``frac`` of the users (with any positive) and reveal their first ``reveal`` items.

    Revealed items are the first ``reveal`` *distinct* items by time (ties keep file order);
    they are not in ``train`` (the model never trains on these shoppers) but are the request-time
    history, and they are excluded from ranking. Users with nothing left after the reveal are not
    test users.
    """
    if reveal < 0:
        raise ValueError(f"reveal must be >= 0, got {reveal}")
    pool = np.unique(dataset.users) if among is None else np.unique(np.asarray(among))
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(pool, size=_n_take(frac, len(pool)), replace=False))
    held_rows = np.isin(dataset.users, held)
    train = dataset.subset(np.flatnonzero(~held_rows))
    full_histories = dataset.subset(np.flatnonzero(held_rows)).histories()

    test_users, relevant, histories = [], [], []
    for user in held:
        ordered = _unique_in_order(full_histories[user])
        shown, rest = ordered[:reveal], np.sort(ordered[reveal:])
        if len(rest):
            test_users.append(user)
            relevant.append(rest)
            histories.append(shown)
    return Split(
        protocol="cold-users",
        seed=seed,
        train=train,
        test_users=np.asarray(test_users, dtype=np.int64),
        relevant=relevant,
        histories=histories,
        known_user=np.zeros(len(test_users), dtype=bool),
        exclude=[np.sort(h) for h in histories],
        candidates=None,
    )


def next_split(
    dataset: Dataset,
    seed: int,
    *,
    frac: float = 0.2,
    among: np.ndarray | None = None,
) -> Split:
    """Time-ordered hold-out: each user's last ``frac`` distinct items (by first event) are the
    test set, everything before them is training; the model must predict what comes *next*.

    A user with ``n`` distinct items holds out ``round(frac * n)`` of them (none when that is
    0, so users with one or two items only train). ``among`` restricts the held-out users to
    these user indices (the others keep all their items in training). Deterministic: ``seed``
    only names the split (it drives the ranking tie-break).
    """
    if not 0.0 < frac < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {frac}")
    keys = _pair_keys(dataset)
    # First event of each pair, in time order (ties keep input order).
    order = np.lexsort((np.arange(len(keys)), dataset.times))
    unique, first = np.unique(keys[order], return_index=True)
    pair_pos = order[first]  # row of each pair's first event
    pair_users = dataset.users[pair_pos]
    pair_order = np.lexsort((np.arange(len(unique)), first, pair_users))
    users_sorted = pair_users[pair_order]
    bounds = np.searchsorted(users_sorted, np.arange(dataset.n_users + 1))
    counts = np.diff(bounds)
    n_test = np.rint(frac * counts).astype(np.int64)
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    if among is not None:
        allowed = np.zeros(dataset.n_users, dtype=bool)
        allowed[np.asarray(among, dtype=np.int64)] = True
        n_test[~allowed] = 0
    rank_in_user = np.arange(len(pair_order)) - np.repeat(bounds[:-1], counts)
    is_test_sorted = rank_in_user >= np.repeat(counts - n_test, counts)
    test_pairs = np.zeros(len(unique), dtype=bool)
    test_pairs[pair_order[is_test_sorted]] = True
    inverse = np.searchsorted(unique, keys)
    test_rows = test_pairs[inverse]
    return _known_split(
        "next", seed, dataset, np.flatnonzero(~test_rows), np.flatnonzero(test_rows), None
    )


def make_split(dataset: Dataset, protocol: str, seed: int) -> Split:
    """The split of one protocol by name (``warm``, ``cold-items``, ``cold-users``, ``next``)."""
    if protocol == "warm":
        return warm_split(dataset, seed)
    if protocol == "cold-items":
        return cold_items_split(dataset, seed)
    if protocol == "cold-users":
        return cold_users_split(dataset, seed)
    if protocol == "next":
        return next_split(dataset, seed)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(ALL_PROTOCOLS)}")


def holdout(dataset: Dataset, seed: int, frac: float = 0.1) -> tuple[Dataset, Split]:
    """A warm-like validation split of a training set, for early stopping and tuning.

    Returns ``(train, split)`` with ``split.train is train``: fit on the first, score with the
    second. Use a seed different from the outer split's so the two draws are independent.
    """
    split = warm_split(dataset, seed, test_frac=frac)
    split.protocol = "holdout"
    return split.train, split


def validation_split(train: Dataset, protocol: str, seed: int, frac: float = 0.1) -> Split:
    """A validation split *inside* ``train`` that mimics ``protocol`` (for tuning peers/models).

    warm: :func:`holdout`; cold-items: ``frac`` of the items that have training events;
    cold-users: ``frac`` of the training users, revealed like the test protocol.
    """
    if protocol == "warm":
        return holdout(train, seed, frac)[1]
    if protocol == "cold-items":
        return cold_items_split(train, seed, frac=frac, among=np.unique(train.items))
    if protocol == "cold-users":
        return cold_users_split(train, seed, frac=frac)
    if protocol == "next":
        return next_split(train, seed, frac=frac)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(ALL_PROTOCOLS)}")
