"""shop_recs.recsys.evaluation: metrics on hand-computed cases, split properties, the scoring loop.

Pure numpy, no database: a synthetic dataset whose numbers are easy to reason about.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shop_recs.recsys.base import Dataset, ItemFeatures
from shop_recs.recsys.baselines import RandomRecommender
from shop_recs.recsys.evaluation import (
    average_precision_at_k,
    catalog_coverage,
    cold_items_split,
    cold_users_split,
    evaluate,
    hit_rate_at_k,
    holdout,
    make_split,
    ndcg_at_k,
    rank_split,
    recall_at_k,
    validation_split,
    warm_split,
)

# ---------------------------------------------------------------- metrics


def test_metrics_hand_computed_k3() -> None:
    ranked, relevant = [1, 2, 3, 4, 5], {2, 5, 9}
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)
    assert hit_rate_at_k(ranked, relevant, 3) == 1.0
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx((1 / math.log2(3)) / idcg)
    # one hit, at rank 2: precision 1/2, divided by min(k, |relevant|) = 3
    assert average_precision_at_k(ranked, relevant, 3) == pytest.approx(0.5 / 3)


def test_metrics_hand_computed_k5() -> None:
    ranked, relevant = np.array([1, 2, 3, 4, 5]), np.array([9, 5, 2])
    # Recall divides by ALL relevant items (3), not by min(k, |relevant|).
    assert recall_at_k(ranked, relevant, 5) == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 5) == pytest.approx(dcg / idcg)
    assert average_precision_at_k(ranked, relevant, 5) == pytest.approx((1 / 2 + 2 / 5) / 3)


def test_recall_is_bounded_by_k_over_relevant() -> None:
    relevant = set(range(50))
    assert recall_at_k(list(range(10)), relevant, 10) == pytest.approx(10 / 50)
    # NDCG and AP of a perfect top-k are 1 even with more relevant items than k.
    assert ndcg_at_k(list(range(10)), relevant, 10) == pytest.approx(1.0)
    assert average_precision_at_k(list(range(10)), relevant, 10) == pytest.approx(1.0)


def test_metrics_misses_and_empty() -> None:
    for fn in (recall_at_k, ndcg_at_k, average_precision_at_k, hit_rate_at_k):
        assert fn([1, 2, 3], {7}, 3) == 0.0
        assert fn([1, 2, 3], set(), 3) == 0.0
        assert fn([], {1}, 3) == 0.0
        with pytest.raises(ValueError):
            fn([1], {1}, 0)


def test_metrics_accept_external_ids() -> None:
    assert recall_at_k(["a", "b"], ["b", "z"], 2) == 0.5


def test_catalog_coverage() -> None:
    lists = [[1, 2, 3], [2, 4, 5]]
    assert catalog_coverage(lists, 10, 1) == pytest.approx(2 / 10)
    assert catalog_coverage(lists, 10, 2) == pytest.approx(3 / 10)
    assert catalog_coverage(lists, 10, 3) == pytest.approx(5 / 10)
    assert catalog_coverage([], 10, 3) == 0.0


# ---------------------------------------------------------------- splits


def synthetic(n_users: int = 60, n_items: int = 50, per_user: int = 15, seed: int = 7) -> Dataset:
    """Random distinct positives with strictly increasing times, plus some repeated pairs."""
    rng = np.random.default_rng(seed)
    events = []
    t = 0.0
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        for i in items:
            t += 1.0
            events.append((f"u{u}", f"i{i}", "view", 1.0, float(rng.integers(0, 10_000)) + t))
        # a later purchase of an item already viewed: one pair, two events
        events.append((f"u{u}", f"i{items[0]}", "purchase", 1.0, 1e9 + t))
    features = ItemFeatures(text=rng.normal(size=(n_items, 4)).astype(np.float32))
    return Dataset.from_events(
        events, item_ids=[f"i{i}" for i in range(n_items)], item_features=features
    )


def pairs(ds: Dataset) -> set[tuple[int, int]]:
    return set(zip(ds.users.tolist(), ds.items.tolist(), strict=True))


def test_warm_split_is_a_disjoint_20_percent_of_pairs() -> None:
    ds = synthetic()
    split = warm_split(ds, seed=0)
    assert split.protocol == "warm"
    assert split.train.user_map is ds.user_map and split.train.item_map is ds.item_map
    assert split.train.item_features is ds.item_features
    n_pairs = len(pairs(ds))
    assert split.n_test_positives == round(0.2 * n_pairs)
    assert split.n_train_positives == n_pairs - split.n_test_positives
    train_pairs = pairs(split.train)
    for user, rel, excl, hist in zip(
        split.test_users, split.relevant, split.exclude, split.histories, strict=True
    ):
        assert not ({(int(user), int(i)) for i in rel} & train_pairs)
        assert set(excl.tolist()) == {i for u, i in train_pairs if u == user}
        assert set(hist.tolist()) == set(excl.tolist())
        assert len(rel) > 0
    assert split.known_user.all()
    assert split.candidates is None


def test_warm_split_history_is_in_time_order() -> None:
    ds = synthetic()
    split = warm_split(ds, seed=1)
    first: dict[tuple[int, int], float] = {}
    for u, i, t in zip(ds.users.tolist(), ds.items.tolist(), ds.times.tolist(), strict=True):
        first[(u, i)] = min(t, first.get((u, i), t))
    for user, hist in zip(split.test_users, split.histories, strict=True):
        seen = [first[(int(user), int(item))] for item in hist]
        assert seen == sorted(seen)


def test_splits_are_deterministic_by_seed() -> None:
    ds = synthetic()
    for protocol in ("warm", "cold-items", "cold-users"):
        a, b, c = (
            make_split(ds, protocol, 3),
            make_split(ds, protocol, 3),
            make_split(ds, protocol, 4),
        )
        assert np.array_equal(a.train.users, b.train.users)
        assert np.array_equal(a.train.items, b.train.items)
        assert all(np.array_equal(x, y) for x, y in zip(a.relevant, b.relevant, strict=True))
        assert not (
            np.array_equal(a.test_users, c.test_users)
            and all(np.array_equal(x, y) for x, y in zip(a.relevant, c.relevant, strict=False))
        )


def test_cold_items_split_holds_out_items_with_all_their_events() -> None:
    ds = synthetic()
    split = cold_items_split(ds, seed=0)
    held = set(split.candidates.tolist())
    assert len(held) == round(0.2 * ds.n_items)
    assert not (set(split.train.items.tolist()) & held)
    # every positive on a held-out item is a test positive
    expected = {(u, i) for u, i in pairs(ds) if i in held}
    got = {
        (int(u), int(i))
        for u, rel in zip(split.test_users, split.relevant, strict=True)
        for i in rel
    }
    assert got == expected
    assert split.n_train_positives + split.n_test_positives == len(pairs(ds))


def test_cold_users_split_reveals_first_five_by_time() -> None:
    ds = synthetic()
    split = cold_users_split(ds, seed=0)
    assert split.n_test_users == round(0.2 * ds.n_users)
    assert not split.known_user.any()
    train_users = set(split.train.users.tolist())
    full = ds.histories()
    for user, hist, rel, excl in zip(
        split.test_users, split.histories, split.relevant, split.exclude, strict=True
    ):
        assert int(user) not in train_users
        order = list(dict.fromkeys(full[user].tolist()))  # distinct items by first time
        assert hist.tolist() == order[:5]
        assert sorted(rel.tolist()) == sorted(order[5:])
        assert sorted(excl.tolist()) == sorted(order[:5])
    held_rows = np.isin(ds.users, split.test_users)
    assert len(split.train) == int((~held_rows).sum())


def test_cold_users_split_drops_users_with_nothing_left() -> None:
    events = [("a", "x", "view", 1.0, 1.0), ("a", "y", "view", 1.0, 2.0)]
    events += [("b", f"i{j}", "view", 1.0, float(j)) for j in range(8)]
    ds = Dataset.from_events(events)
    split = cold_users_split(ds, seed=0, frac=0.99)  # both users held out
    assert split.test_users.tolist() == [ds.user_map.index("b")]
    assert len(split.relevant[0]) == 3


def test_holdout_and_validation_split() -> None:
    ds = synthetic()
    train, split = holdout(ds, seed=5, frac=0.1)
    assert split.train is train and split.protocol == "holdout"
    assert split.n_test_positives == round(0.1 * len(pairs(ds)))
    outer = cold_items_split(ds, seed=0)
    inner = validation_split(outer.train, "cold-items", seed=1)
    # validation never "holds out" an item that is already cold in the outer split
    assert not (set(inner.candidates.tolist()) & set(outer.candidates.tolist()))
    assert validation_split(outer.train, "cold-users", seed=1).n_test_users > 0
    with pytest.raises(ValueError):
        make_split(ds, "lukewarm", 0)


# ---------------------------------------------------------------- evaluate


class Oracle:
    """Scores a split's relevant items 2, excluded items 3 (they must be masked), rest 0."""

    def __init__(self, split) -> None:
        self.split = split
        self.by_user = {
            int(u): (rel, ex)
            for u, rel, ex in zip(split.test_users, split.relevant, split.exclude, strict=True)
        }
        self.order = list(self.by_user)
        self.calls: list[list[int | None]] = []

    def score_items(self, users, histories) -> np.ndarray:
        self.calls.append(list(users))
        out = np.zeros((len(users), self.split.train.n_items))
        start = sum(len(c) for c in self.calls[:-1])
        for row, user in enumerate(self.order[start : start + len(users)]):
            rel, ex = self.by_user[user]
            out[row, rel] = 2.0
            out[row, ex] = 3.0
        return out


def test_evaluate_masks_exclusions_and_ranks_candidates_only() -> None:
    ds = synthetic()
    for protocol in ("warm", "cold-items", "cold-users"):
        split = make_split(ds, protocol, 0)
        oracle = Oracle(split)
        result = evaluate(oracle, split, ks=(5, 50), batch_size=7)
        assert result["ndcg@5"] == pytest.approx(1.0)
        assert result["hit_rate@5"] == 1.0
        assert result["recall@50"] == pytest.approx(1.0)
        assert result["test_users"] == split.n_test_users
        assert result["candidates"] == split.n_candidates
        # cold users come in as None, known users by index
        flat = [u for call in oracle.calls for u in call]
        assert (None in flat) == (protocol == "cold-users")
        assert max(len(c) for c in oracle.calls) <= 7
        ranked = rank_split(Oracle(split), split, 50)
        for lst, excl in zip(ranked, split.exclude, strict=True):
            assert not (set(lst.tolist()) & set(excl.tolist()))
            if split.candidates is not None:
                assert set(lst.tolist()) <= set(split.candidates.tolist())


def test_random_scores_near_k_over_candidates() -> None:
    ds = synthetic(n_users=200, n_items=60, per_user=20)
    split = cold_items_split(ds, seed=0)
    result = evaluate(RandomRecommender(seed=0).fit(split.train), split, ks=(3,))
    assert result["recall@3"] == pytest.approx(3 / split.n_candidates, rel=0.35)


class Constant:
    def __init__(self, n: int) -> None:
        self.n = n

    def score_items(self, users, histories) -> np.ndarray:
        return np.zeros((len(users), self.n))


def test_ties_do_not_follow_item_index_order() -> None:
    ds = synthetic()
    split = cold_items_split(ds, seed=0)
    ranked = rank_split(Constant(ds.n_items), split, k=len(split.candidates))
    first = ranked[0]
    assert sorted(first.tolist()) == sorted(split.candidates.tolist())
    assert first.tolist() != sorted(first.tolist())  # ties broken by a seeded shuffle
    again = rank_split(Constant(ds.n_items), split, k=len(split.candidates))
    assert np.array_equal(first, again[0])


def test_evaluate_rejects_bad_scores() -> None:
    ds = synthetic()
    split = warm_split(ds, 0)

    class Wrong:
        def score_items(self, users, histories):
            return np.zeros((len(users), 3))

    class Nan:
        def score_items(self, users, histories):
            return np.full((len(users), ds.n_items), np.nan)

    with pytest.raises(ValueError, match="shape"):
        evaluate(Wrong(), split)
    with pytest.raises(ValueError, match="NaN"):
        evaluate(Nan(), split)


def test_top_k_breaks_ties_like_a_full_sort() -> None:
    """The ranking kept by evaluation equals sorting every finite score by (-score, tiebreak),
    also when many items tie at the k-th score (items without events all score zero)."""
    from shop_recs.recsys.evaluation.protocol import _top

    rng = np.random.default_rng(1)
    for _ in range(300):
        n, k = int(rng.integers(1, 60)), int(rng.integers(1, 15))
        scores = rng.integers(0, 4, size=(5, n)).astype(float)
        scores[rng.random(scores.shape) < 0.3] = -np.inf
        tiebreak = rng.permutation(n)
        expected = []
        for row in scores:
            finite = np.flatnonzero(np.isfinite(row))
            expected.append(finite[np.lexsort((tiebreak[finite], -row[finite]))][:k])
        got = _top(scores, k, tiebreak)
        assert [g.tolist() for g in got] == [e.tolist() for e in expected]
