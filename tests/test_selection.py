"""Model selection and the vector families (EASE, blend, numpy hybrid) on planted shops.

No database; each test fits small models in a few seconds on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shop_recs.recsys.base import ItemFeatures
from shop_recs.recsys.blend import BlendRecommender, load_vectors
from shop_recs.recsys.ease import EASERecommender
from shop_recs.recsys.evaluation import make_split, next_split
from shop_recs.recsys.hybrid import HybridRecommender
from shop_recs.recsys.selection import Selection, ease_plan, select_model, validation_set

from .planted import FAST_HYBRID, cluster_precision, planted_shop

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shop():
    return planted_shop(cold_items=8)


@pytest.fixture(scope="module")
def fitted(shop):
    dataset, _, _ = shop
    hybrid = HybridRecommender(**{**FAST_HYBRID, "validation_fraction": 0.0, "max_epochs": 10})
    hybrid.fit(dataset, progress=False)
    ease = EASERecommender(l2=20.0).fit(dataset)
    blend = BlendRecommender(
        warm=[0.5, 20.0], cold=[1.0, 5.0], popularity=0.3, new=[2.0, 0.5], new_popularity=0.1
    )
    blend.with_parts([hybrid, ease], dataset)
    return hybrid, ease, blend


def known_scores(model, dataset) -> np.ndarray:
    users = list(range(dataset.n_users))
    return model.score_items(users, [[] for _ in users])


def one_epoch_seconds(dataset) -> float:
    """Wall time of one tiny hybrid epoch here and now: the unit the budget tests allow as
    overrun (a fit always trains one epoch; the machine may be shared and slow)."""
    tick = time.monotonic()
    HybridRecommender(**{**FAST_HYBRID, "max_epochs": 1, "validation_fraction": 0.0}).fit(
        dataset, progress=False
    )
    return time.monotonic() - tick


def test_selection_respects_a_tiny_budget_and_returns_a_working_model(shop, fitted) -> None:
    # (fitted: torch and its optimiser are imported and warm, as in a worker process)
    dataset, _, _ = shop
    unit = one_epoch_seconds(dataset)
    tick = time.monotonic()
    selection = select_model(dataset, budget_seconds=1.0, base_params=FAST_HYBRID, progress=False)
    elapsed = time.monotonic() - tick
    assert isinstance(selection, Selection)
    # the fallback trains one epoch past the budget, plus validation and bookkeeping
    assert elapsed < 1.0 + 6 * unit + 2.0, (elapsed, unit)
    # what fits in the budget depends on the machine's speed (on a fast one EASE and a few
    # hybrid epochs do, on a loaded one only the fallback's first epoch): whatever was chosen
    # is a candidate of the table, and it serves
    assert selection.chosen["family"] in {r["family"] for r in selection.table}
    assert selection.table and all(r.get("status") for r in selection.table)
    vectors = selection.model.all_item_vectors()
    assert vectors.shape == (dataset.n_items, selection.model.vector_dim)
    assert np.isfinite(vectors).all()
    json.dumps(selection.table)  # storable as JSON by the app


def test_no_time_fallback_stays_within_the_allowed_families(shop) -> None:
    """With no budget left for any candidate, the fallback is still a family the shop allowed
    (``MODEL_FAMILIES``), not the hybrid by default."""
    dataset, _, _ = shop
    for families, expected in (
        (("ease",), "ease"),
        (("hybrid",), "hybrid"),
        (("sequence",), "sequence"),
    ):
        selection = select_model(
            dataset,
            budget_seconds=0.0,
            families=families,
            base_params=FAST_HYBRID,
            progress=False,
        )
        assert selection.chosen["family"] == expected, selection.table
        assert [r["family"] for r in selection.table if r.get("chosen")] == [expected]
        scores = known_scores(selection.model, dataset)
        assert np.isfinite(scores).all() and np.ptp(scores) > 0


def test_selection_searches_families_and_picks_by_validation(shop, tmp_path) -> None:
    dataset, item_cluster, user_cluster = shop
    unit = one_epoch_seconds(dataset)
    selection = select_model(dataset, budget_seconds=30.0, base_params=FAST_HYBRID, progress=False)
    families = {r["family"] for r in selection.table if r["status"] in ("ok", "timeout")}
    assert {"ease", "hybrid", "blend"} <= families
    # within budget, give or take a few epochs (fits end after the epoch that passes it)
    assert selection.seconds < 30.0 + 10 * unit + 5.0, (selection.seconds, unit)
    best = max((r for r in selection.table if "objective" in r), key=lambda r: r["objective"])
    assert best["family"] == selection.chosen["family"]
    # popularity on the same validation split, weighted like the candidates: below the winner
    ref = selection.reference
    assert {"recall@10", "ndcg@10", "warm/recall@10", "cold-users/recall@10"} <= set(ref)
    assert 0.0 <= ref["recall@10"] < selection.chosen["validation"]["recall@10"]
    assert set(r["status"] for r in selection.table) <= {"ok", "timeout"} | {
        r["status"] for r in selection.table if r["status"].startswith("skipped")
    }
    model = selection.model
    assert len(model.item_map) == dataset.n_items and len(model.user_map) == dataset.n_users
    precision = cluster_precision(
        known_scores(model, dataset)[:, :80], item_cluster[:80], user_cluster
    )
    assert precision > 0.8
    json.dumps({"table": selection.table, "chosen": selection.chosen})
    model.save(tmp_path / "chosen")
    assert (tmp_path / "chosen" / "config.json").is_file()


def test_validation_set_has_every_protocol_and_no_leak(shop) -> None:
    dataset, _, _ = shop
    val = validation_set(dataset, seed=3)
    assert set(val.splits) == {"warm", "next", "cold-items", "cold-users"}
    train_pairs = set(zip(val.train.users.tolist(), val.train.items.tolist(), strict=True))
    for split in val.splits.values():
        assert split.train is val.train
        for user, relevant in zip(split.test_users, split.relevant, strict=True):
            assert not any((int(user), int(i)) in train_pairs for i in relevant)
    held = set(val.splits["cold-items"].candidates.tolist())
    assert not held & set(val.train.items.tolist())
    cold_users = set(val.splits["cold-users"].test_users.tolist())
    assert not cold_users & set(val.train.users.tolist())


def test_validation_set_scores_at_most_max_users_per_protocol(shop) -> None:
    """A shop with many shoppers: each protocol samples ``max_users`` of them; the others'
    events (except those on held-out items) stay in training, and a cap above the shop's size
    changes nothing."""
    dataset, _, _ = shop
    full = validation_set(dataset, seed=3)
    assert validation_set(dataset, seed=3, max_users=10**6).splits.keys() == full.splits.keys()
    for name, split in full.splits.items():
        same = validation_set(dataset, seed=3, max_users=10**6).splits[name]
        assert split.test_users.tolist() == same.test_users.tolist()
    capped = validation_set(dataset, seed=3, max_users=8)
    assert set(capped.splits) == set(full.splits)
    for split in capped.splits.values():
        assert 0 < split.n_test_users <= 8
    assert len(capped.train) > len(full.train)  # fewer held-out pairs
    held = set(capped.splits["cold-items"].candidates.tolist())
    assert not held & set(capped.train.items.tolist())


def test_validation_users_shrink_with_the_catalogue(shop, monkeypatch) -> None:
    """By default a protocol scores about VALIDATION_CELLS_MAX shopper x item scores, within
    [VALIDATION_USERS_MIN, VALIDATION_USERS_MAX] shoppers."""
    from shop_recs.recsys import selection

    dataset, _, _ = shop
    monkeypatch.setattr(selection, "VALIDATION_CELLS_MAX", 12 * dataset.n_items)
    monkeypatch.setattr(selection, "VALIDATION_USERS_MIN", 3)
    assert max(s.n_test_users for s in validation_set(dataset, seed=3).splits.values()) == 12
    monkeypatch.setattr(selection, "VALIDATION_USERS_MIN", 20)
    assert max(s.n_test_users for s in validation_set(dataset, seed=3).splits.values()) == 20


def test_next_split_holds_out_each_users_latest_items() -> None:
    dataset, _, _ = planted_shop(users=30, events=10)
    split = next_split(dataset, seed=0)
    first_time: dict[tuple[int, int], float] = {}
    for u, i, t in zip(dataset.users, dataset.items, dataset.times, strict=True):
        first_time.setdefault((int(u), int(i)), float(t))
    for user, relevant, history in zip(
        split.test_users, split.relevant, split.histories, strict=True
    ):
        latest_train = max(first_time[(int(user), int(i))] for i in history)
        earliest_test = min(first_time[(int(user), int(i))] for i in relevant)
        assert earliest_test > latest_train
        assert len(relevant) == round(0.2 * (len(relevant) + len(history)))
    assert make_split(dataset, "next", 0).n_test_users == split.n_test_users


def test_ease_ranks_a_planted_item_item_structure() -> None:
    dataset, _, _ = planted_shop(pairs=True, users=150)
    model = EASERecommender(l2=5.0).fit(dataset)
    hits = 0
    for first in range(0, 60, 2):
        scores = model.score_items([None], [[first]])[0]
        scores[first] = -np.inf
        hits += int(np.argmax(scores) == first + 1)
    assert hits >= 27  # the follower is the top item for (nearly) every leader
    assert model.rank_ <= model.config.max_rank and model.vector_dim == 2 * model.rank_
    assert min(model.rank_agreement_.values()) >= 0 and max(model.rank_agreement_.values()) >= 0.9


def test_ease_skipped_when_the_gram_matrix_cannot_fit() -> None:
    one_million = np.ones(1_000_000, dtype=np.int64)
    params, why = ease_plan(one_million, budget=180.0, calib=1e-9)
    assert params is None and why.startswith("skipped:") and "1,000,000" in why
    params, why = ease_plan(np.r_[np.ones(500), np.zeros(10)], budget=180.0, calib=1e-9)
    assert params == {} and why == ""


def test_cold_items_are_served_from_content_by_every_family(shop, fitted) -> None:
    dataset, item_cluster, _user_cluster = shop
    cold = np.arange(80, 88)
    feats = dataset.item_features.take(cold)
    for model in fitted:
        new = model.item_vectors(feats, None)
        assert new.shape == (len(cold), model.vector_dim)
        stored = model.all_item_vectors()[cold]
        assert np.allclose(new, stored, atol=1e-4), type(model).__name__
        # a shopper of cluster c ranks the cold items of cluster c first
        precision = []
        for c in range(4):
            history = np.flatnonzero(item_cluster[:80] == c)[:5]
            user = model.user_vector(None, model.all_item_vectors()[history])
            scores = new @ user
            best = cold[np.argsort(-scores)[:2]]
            precision.append(np.mean(item_cluster[best] == c))
        assert np.mean(precision) >= 0.75, type(model).__name__


def test_every_family_serves_anonymous_sessions_and_explains(shop, fitted) -> None:
    _dataset, item_cluster, _ = shop
    for model in fitted:
        vectors = model.all_item_vectors()
        history = [3, 5, 61]  # two of cluster 0, one of cluster 3
        user = model.user_vector(None, vectors[history], np.array([1.0, 1.0, 8.0]))
        assert user.shape == (model.vector_dim,)
        scores = vectors @ user
        contributions = model.contributions(
            None, vectors[history], np.array([1.0, 1.0, 8.0]), vectors[[0, 70]]
        )
        assert contributions.shape == (2, 3)
        because = model.because(None, vectors[history], np.array([1.0, 1.0, 8.0]), vectors[[0, 70]])
        assert item_cluster[history][because[0]] == 0, type(model).__name__
        assert item_cluster[history][because[1]] == 3, type(model).__name__
        assert np.isfinite(scores).all()


def test_ease_contributions_add_up_to_the_score(fitted) -> None:
    _, ease, _ = fitted
    vectors = ease.all_item_vectors()
    history, weights = vectors[[1, 2, 30]], np.array([1.0, 4.0, 2.0])
    user = ease.user_vector(None, history, weights)
    c = ease.contributions(None, history, weights, vectors[:10])
    assert np.allclose(c.sum(axis=1), vectors[:10] @ user, rtol=1e-4, atol=1e-5)


def test_blend_inner_product_is_the_weighted_sum_of_family_scores(shop, fitted) -> None:
    _dataset, _, _ = shop
    hybrid, ease, blend = fitted
    users = [0, 5, None]
    histories = [[], [], [1, 2, 3]]
    sh, se = hybrid.score_items(users, histories), ease.score_items(users, histories)
    cold = ~blend._has_events
    item_h = np.where(cold, 1.0, 0.5)[None, :]
    item_e = np.where(cold, 5.0, 20.0)[None, :]
    user_h = np.array([1.0, 1.0, 2.0])[:, None]  # the anonymous session gets the "new" mix
    user_e = np.array([1.0, 1.0, 0.5])[:, None]
    prior = np.array([0.3, 0.3, 0.1])[:, None] * blend._pop[None, :]
    expected = user_h * item_h * sh + user_e * item_e * se + prior
    assert np.allclose(blend.score_items(users, histories), expected, rtol=1e-4, atol=1e-4)
    assert blend.vector_dim <= 2000


def test_blend_round_trip_loads_without_torch(fitted, tmp_path) -> None:
    _, _, blend = fitted
    blend.save(tmp_path / "blend")
    loaded = BlendRecommender.load(tmp_path / "blend")
    assert np.allclose(loaded.all_item_vectors(), blend.all_item_vectors())
    hv = blend.all_item_vectors()[[4, 9, 70]]
    for user in (None, "u3"):
        assert np.allclose(loaded.user_vector(user, hv), blend.user_vector(user, hv), atol=1e-5)
    assert np.allclose(loaded.user_vector("u3", hv[:0]), blend.user_vector("u3", hv[:0]), atol=1e-5)
    feats = ItemFeatures(
        text=np.random.default_rng(1).normal(size=(2, 12)).astype(np.float32),
        category=np.array([1, 0]),
        category_names=["", "cluster-0"],
    )
    assert np.allclose(loaded.item_vectors(feats), blend.item_vectors(feats), atol=1e-5)
    assert loaded.version == blend.version
    assert isinstance(load_vectors(tmp_path / "blend"), BlendRecommender)
    code = (
        "import sys, numpy as np\n"
        "from shop_recs.recsys.blend import BlendRecommender\n"
        f"m = BlendRecommender.load({str(tmp_path / 'blend')!r})\n"
        "v = m.all_item_vectors()\n"
        "u = m.user_vector(None, v[[4, 9, 70]])\n"
        "assert np.isfinite(v @ u).all()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok', v.shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_numpy_hybrid_serving_matches_torch(shop, fitted, tmp_path) -> None:
    dataset, _, _ = shop
    hybrid = fitted[0]
    hybrid.save(tmp_path / "hybrid")
    served = load_vectors(tmp_path / "hybrid")
    assert type(served).__name__ == "HybridVectors"
    assert np.allclose(served.all_item_vectors(), hybrid.all_item_vectors())
    feats = dataset.item_features.take(np.arange(70, 88))
    ids = [f"i{i}" for i in range(70, 88)]
    assert np.allclose(served.item_vectors(feats, ids), hybrid.item_vectors(feats, ids), atol=1e-4)
    assert np.allclose(served.item_vectors(feats), hybrid.item_vectors(feats), atol=1e-4)
    hv = hybrid.all_item_vectors()[[1, 2, 40, 41]]
    w = np.array([1.0, 3.0, 1.0, 8.0])
    for user in (None, "u7"):
        assert np.allclose(
            served.user_vector(user, hv, w), hybrid.user_vector(user, hv, w), atol=1e-4
        )
    assert np.allclose(
        served.user_vector("u7", hv[:0]), hybrid.user_vector("u7", hv[:0]), atol=1e-4
    )


def test_every_family_serves_an_empty_history(shop, fitted, tmp_path) -> None:
    """A request with no recent items (an anonymous first page view, or a known shopper whose
    events were all filtered out) gets a finite user vector from every family, in training
    and in the torch-free server (it used to index an empty batch in the hybrid tower)."""
    dataset, _, _ = shop
    _hybrid, _ease, blend = fitted
    blend.save(tmp_path / "blend")
    served = load_vectors(tmp_path / "blend")
    known = dataset.user_map.to_list()[0]
    for model in (*fitted, served):
        empty = np.zeros((0, model.vector_dim), np.float32)
        for user in (known, None):
            vector = model.user_vector(user, empty, np.zeros(0, np.float32))
            assert vector.shape == (model.vector_dim,), type(model).__name__
            assert np.isfinite(vector).all(), type(model).__name__
    # the known shopper falls back to the history kept from training: not the empty one
    scores = blend.all_item_vectors() @ blend.user_vector(known, np.zeros((0, blend.vector_dim)))
    assert np.ptp(scores) > 0


def test_blend_grid_ties_go_to_the_simplest_point() -> None:
    """Blend weights within BLEND_TIE of the best validation recall are a tie: the smallest
    popularity prior wins, then the share nearest the centre; a clearly better point wins."""
    from shop_recs.recsys.selection import BLEND_TIE, _simplest

    best = 0.300
    just_below = best * (1 - BLEND_TIE / 2)
    grid = [(best, 0.55, 1.0), (just_below, 0.45, 0.0), (just_below, 0.95, 0.0), (0.25, 0.5, 0.0)]
    assert _simplest(grid) == (just_below, 0.45, 0.0)
    assert _simplest(grid, centre=0.9) == (just_below, 0.95, 0.0)
    far_below = best * (1 - 2 * BLEND_TIE)
    assert _simplest([(best, 0.55, 1.0), (far_below, 0.45, 0.0)]) == (best, 0.55, 1.0)
