"""Shapes real shops have (issue 12, item 4), each on a planted structure: items without
images, a long tail of items with a handful of positives, a shopper with thousands of events,
and a shop that records only views and purchases. No database; seconds per test.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from shop_recs.recsys.baselines import PopularityRecommender
from shop_recs.recsys.ease import EASERecommender
from shop_recs.recsys.hybrid import HybridRecommender
from shop_recs.recsys.selection import select_model

from .planted import FAST_HYBRID, cluster_precision, planted_shop

HYBRID = {**FAST_HYBRID, "validation_fraction": 0.0, "max_epochs": 10}


def families(dataset):
    return (
        EASERecommender(l2=20.0).fit(dataset),
        HybridRecommender(**HYBRID).fit(dataset, progress=False),
    )


def user_precision(model, dataset, item_cluster, user_cluster, n_items: int) -> float:
    users = list(range(dataset.n_users))
    scores = model.score_items(users, [[] for _ in users])[:, :n_items]
    return cluster_precision(scores, item_cluster[:n_items], user_cluster)


def cold_precision(model, dataset, item_cluster, cold: np.ndarray) -> float:
    """For a shopper of each cluster (five views), share of the top-2 cold items in it."""
    vectors = model.item_vectors(dataset.item_features.take(cold), None)
    hits = []
    for c in range(4):
        history = np.flatnonzero(item_cluster[: cold[0]] == c)[:5]
        user = model.user_vector(None, model.all_item_vectors()[history])
        hits.append(np.mean(item_cluster[cold[np.argsort(-(vectors @ user))[:2]]] == c))
    return float(np.mean(hits))


def test_items_without_images_are_placed_by_text_and_category() -> None:
    dataset, item_cluster, user_cluster = planted_shop(cold_items=8, image_share=0.0, seed=1)
    assert not dataset.item_features.image_mask.any()
    cold = np.arange(80, 88)
    for model in families(dataset):
        assert np.isfinite(model.all_item_vectors()).all()
        assert user_precision(model, dataset, item_cluster, user_cluster, 80) > 0.8
        assert cold_precision(model, dataset, item_cluster, cold) >= 0.75, type(model).__name__


def test_long_tail_items_get_vectors_and_are_recommended() -> None:
    dataset, item_cluster, user_cluster = planted_shop(long_tail=2.5, events=10, seed=2)
    keys = np.unique(dataset.users * np.int64(dataset.n_items) + dataset.items)
    positives = np.bincount(keys % dataset.n_items, minlength=dataset.n_items)
    tail = np.flatnonzero((positives >= 1) & (positives <= 3))
    assert len(tail) >= 20  # the planted shape: many items with 1-3 positives
    popularity = PopularityRecommender().fit(dataset)
    users = list(range(dataset.n_users))
    pop_precision = cluster_precision(
        popularity.score_items(users, [[] for _ in users]), item_cluster, user_cluster
    )
    for model in families(dataset):
        vectors = model.all_item_vectors()
        assert np.abs(vectors[tail]).sum(axis=1).min() > 0  # every tail item has a vector
        # the steep tail pulls every list towards the head: well above popularity is the bar
        precision = user_precision(model, dataset, item_cluster, user_cluster, 80)
        assert precision > max(0.45, 1.5 * pop_precision), type(model).__name__
        # a tail item viewed alone brings items of its own cluster
        item = int(tail[0])
        scores = vectors @ model.user_vector(None, vectors[[item]])
        scores[item] = -np.inf
        top = np.argsort(-scores)[:5]
        assert np.mean(item_cluster[top] == item_cluster[item]) >= 0.6, type(model).__name__


def test_a_shopper_with_thousands_of_events() -> None:
    dataset, item_cluster, user_cluster = planted_shop(heavy_user_events=4000, seed=3)
    heavy = dataset.n_users - 1
    assert np.sum(dataset.users == heavy) >= 4000
    for model in families(dataset):
        tick = time.perf_counter()
        history = model.all_item_vectors()[dataset.items[dataset.users == heavy]]
        user = model.user_vector(f"u{heavy}", history)
        assert time.perf_counter() - tick < 5.0
        assert np.isfinite(user).all()
        scores = model.all_item_vectors()[:80] @ user
        top = np.argsort(-scores)[:5]
        assert np.mean(item_cluster[top] == user_cluster[heavy]) >= 0.8, type(model).__name__
        # the others are unaffected: still their own cluster
        assert user_precision(model, dataset, item_cluster, user_cluster, 80) > 0.8


def test_a_shop_with_only_views_and_purchases() -> None:
    dataset, item_cluster, user_cluster = planted_shop(event_kinds=("view", "purchase"), seed=4)
    assert set(np.unique(dataset.weights).tolist()) == {1.0, 8.0}
    selection = select_model(dataset, budget_seconds=20.0, base_params=FAST_HYBRID, progress=False)
    assert selection.chosen["validation"]["recall@10"] > 0
    model = selection.model
    assert user_precision(model, dataset, item_cluster, user_cluster, 80) > 0.8
    # a purchase says more than a view: weights change the anonymous session's vector
    vectors = model.all_item_vectors()
    history = vectors[[0, 20]]  # one item of cluster 0, one of cluster 1
    by_view = vectors[:80] @ model.user_vector(None, history, np.array([8.0, 1.0]))
    by_purchase = vectors[:80] @ model.user_vector(None, history, np.array([1.0, 8.0]))
    assert not np.allclose(by_view, by_purchase)


@pytest.mark.parametrize("kinds", [("view",), ("purchase", "cart")])
def test_ease_on_implicit_only_events(kinds) -> None:
    dataset, item_cluster, user_cluster = planted_shop(event_kinds=kinds, seed=5)
    model = EASERecommender(l2=20.0).fit(dataset)
    assert user_precision(model, dataset, item_cluster, user_cluster, 80) > 0.8
