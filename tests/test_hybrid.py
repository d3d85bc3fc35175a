"""The hybrid recommender on synthetic catalogues with a known answer (no database, seconds).

Users belong to one of four taste clusters and mostly interact with items of their cluster;
item content (text/image embeddings, category) is noisy evidence of the item's cluster. So a
working model must (a) recommend each user's cluster, beating popularity, (b) place an item
nobody has interacted with by its content, (c) serve an anonymous session from its few views.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shop_recs.recsys.base import Dataset, ItemFeatures
from shop_recs.recsys.baselines import PopularityRecommender
from shop_recs.recsys.hybrid import FORMAT, HybridConfig, HybridRecommender
from shop_recs.recsys.idmap import IdMap

K, PER_CLUSTER, N_USERS, EVENTS = 4, 15, 80, 12
TEXT_DIM, IMAGE_DIM = 12, 6
# Small and quick: a fit takes about a second on 2 cores.
FAST = {
    "dim": 16,
    "input_dim": 16,
    "hidden": 32,
    "code_dim": 4,
    "text_components": 8,
    "image_components": 4,
    "batch_size": 16,
    "max_epochs": 25,
    "patience": 25,
    "lr": 0.01,
    "device": "cpu",
    "num_threads": 2,
}


def make_catalogue(seed: int = 0, cold: int = 0):
    """Dataset with ``K`` planted clusters; the last ``cold`` items have no interactions."""
    rng = np.random.default_rng(seed)
    n_warm = K * PER_CLUSTER
    item_cluster = np.r_[np.repeat(np.arange(K), PER_CLUSTER), np.arange(cold) % K]
    n_items = len(item_cluster)
    centres = rng.normal(size=(K, TEXT_DIM))
    text = centres[item_cluster] + 0.4 * rng.normal(size=(n_items, TEXT_DIM))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    image = centres[item_cluster] @ rng.normal(size=(TEXT_DIM, IMAGE_DIM))
    image += 0.5 * rng.normal(size=image.shape)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    mask = rng.random(n_items) < 0.7
    image[~mask] = 0.0
    popularity = 1.0 / np.arange(1, PER_CLUSTER + 1) ** 0.7
    popularity /= popularity.sum()
    user_cluster = rng.integers(0, K, N_USERS)
    users, items, weights, times = [], [], [], []
    for u in range(N_USERS):
        for e in range(EVENTS):
            if rng.random() < 0.9:
                item = user_cluster[u] * PER_CLUSTER + rng.choice(PER_CLUSTER, p=popularity)
            else:
                item = rng.integers(0, n_warm)
            users.append(u)
            items.append(int(item))
            weights.append(float(rng.choice([1.0, 3.0, 5.0])))
            times.append(float(u * 100 + e))
    features = ItemFeatures(
        text=text.astype(np.float32),
        image=image.astype(np.float32),
        image_mask=mask,
        category=item_cluster + 1,
        category_names=[""] + [f"cluster-{c}" for c in range(K)],
    )
    dataset = Dataset(
        IdMap([f"u{u}" for u in range(N_USERS)]),
        IdMap([f"i{i}" for i in range(n_items)]),
        users,
        items,
        weights,
        times,
        features,
    )
    return dataset, item_cluster, user_cluster


@pytest.fixture(scope="module")
def planted():
    dataset, item_cluster, user_cluster = make_catalogue(cold=4)
    model = HybridRecommender(seed=0, **FAST).fit(dataset, progress=False)
    return model, dataset, item_cluster, user_cluster


def cluster_precision(scores: np.ndarray, item_cluster: np.ndarray, clusters: np.ndarray) -> float:
    top = np.argsort(-scores, axis=1)[:, :10]
    return float(np.mean(item_cluster[top] == clusters[:, None]))


def test_learns_planted_clusters_and_beats_popularity(planted) -> None:
    model, dataset, item_cluster, user_cluster = planted
    histories = dataset.histories()
    users = list(range(N_USERS))
    ours = model.score_items(users, [h.tolist() for h in histories])
    popular = PopularityRecommender().fit(dataset).score_items(users, histories)
    ours_p = cluster_precision(ours, item_cluster, user_cluster)
    pop_p = cluster_precision(np.asarray(popular, float), item_cluster, user_cluster)
    assert ours_p >= 0.8, ours_p
    assert ours_p > pop_p + 0.3, (ours_p, pop_p)


def test_training_history_and_timing_are_recorded(planted) -> None:
    model = planted[0]
    assert model.fit_seconds_ is not None and model.fit_seconds_ > 0
    phases = {r["phase"] for r in model.training_history_}
    assert phases == {"select", "refit"}
    selected = [r for r in model.training_history_ if r["phase"] == "select"]
    assert all({"train_loss", "recall@10", "ndcg@10", "seconds"} <= r.keys() for r in selected)
    assert model.version and model.version.startswith("hybrid-")


def test_cold_item_is_placed_by_its_content(planted) -> None:
    model, dataset, item_cluster, user_cluster = planted
    n_warm = K * PER_CLUSTER
    vectors = model.all_item_vectors()
    content_only = model.item_vectors(dataset.item_features.take(np.arange(len(item_cluster))))
    # Items without training events have content-only vectors in the served table.
    np.testing.assert_allclose(vectors[n_warm:], content_only[n_warm:], rtol=1e-5, atol=1e-6)
    scores = model.score_items(list(range(N_USERS)), dataset.histories())
    for cold in range(n_warm, len(item_cluster)):
        own = user_cluster == item_cluster[cold]
        # Rank among all items: for its cluster's users the cold item beats most other-cluster
        # items (its content says where it belongs), and it scores higher for them than for
        # everyone else.
        ranks = (scores[own] > scores[own, cold : cold + 1]).sum(axis=1)
        assert np.median(ranks) < PER_CLUSTER + 5, (cold, np.median(ranks))
        assert scores[own, cold].mean() > scores[~own, cold].mean()


def test_item_created_after_training_gets_a_vector_from_content(planted) -> None:
    model, dataset, item_cluster, user_cluster = planted
    # A brand-new item of cluster 2: the content of an existing cluster-2 item, no image.
    source = int(np.flatnonzero(item_cluster == 2)[0])
    new = dataset.item_features.take(np.array([source]))
    new.image = None
    new.image_mask = None
    vector = model.item_vectors(new, ["brand-new"])[0]
    assert vector.shape == (model.vector_dim,)
    users = np.arange(N_USERS)
    histories = dataset.histories()
    user_vectors = np.stack(
        [model.user_vector(f"u{u}", model.all_item_vectors()[histories[u]]) for u in users]
    )
    scores = user_vectors @ vector
    assert scores[user_cluster == 2].mean() > scores[user_cluster != 2].mean()
    # A known id keeps its ID embedding; the same content under a new id does not.
    known = model.item_vectors(dataset.item_features.take(np.array([source])), [f"i{source}"])
    np.testing.assert_allclose(known[0], model.all_item_vectors()[source], rtol=1e-5, atol=1e-6)


def test_anonymous_session_with_three_views(planted) -> None:
    model, _, item_cluster, _ = planted
    for cluster in range(K):
        viewed = [f"i{i}" for i in np.flatnonzero(item_cluster[: K * PER_CLUSTER] == cluster)[:3]]
        ids, scores = model.recommend(None, viewed, k=10, exclude=viewed)
        assert len(ids) == 10 and not set(ids) & set(viewed)
        assert np.all(np.diff(scores) <= 1e-6)
        same = [item_cluster[int(i[1:])] == cluster for i in ids]
        assert np.mean(same) >= 0.8, (cluster, ids)


def test_user_vector_from_item_vectors_equals_score_items(planted) -> None:
    model, dataset, _, _ = planted
    vectors = model.all_item_vectors()
    history = dataset.histories()[5][-6:]
    for user, index in (("u5", 5), (None, None)):
        u = model.user_vector(user, vectors[history])
        assert u.shape == (model.vector_dim,)
        np.testing.assert_allclose(u[model.dim :], 0.0)
        expected = model.score_items([index], [history.tolist()])[0]
        np.testing.assert_allclose(vectors @ u, expected, rtol=1e-4, atol=1e-5)
    # A known user without a history falls back to the history kept from training.
    assert np.allclose(
        model.user_vector("u5", np.zeros((0, model.vector_dim))) @ vectors.T,
        model.score_items([5], [[]])[0],
        atol=1e-5,
    )


def test_similar_items_and_codes(planted) -> None:
    model, _, item_cluster, _ = planted
    ids, _ = model.similar_items("i0", k=5)
    assert "i0" not in ids and len(ids) == 5
    assert np.mean([item_cluster[int(i[1:])] == item_cluster[0] for i in ids]) >= 0.8
    codes = model.codes("category", ["cluster-1", "nope", "", "cluster-3"])
    assert codes.tolist() == [2, 0, 0, 4]
    assert model.codes("brand", ["x"]).tolist() == [0]
    with pytest.raises(ValueError):
        model.codes("colour", ["red"])  # type: ignore[arg-type]


def test_save_load_round_trip(planted, tmp_path) -> None:
    model, dataset, _, _ = planted
    model.save(tmp_path / "artefact")
    files = {p.name for p in (tmp_path / "artefact").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "user_ids.json",
        "item_ids.json",
        "vocab.json",
        "training.json",
        "version.txt",
    } <= files
    meta = json.loads((tmp_path / "artefact" / "config.json").read_text())
    assert meta["format"] == FORMAT and meta["config"] == model.config.to_dict()
    again = HybridRecommender.load(tmp_path / "artefact", device="cpu")
    assert torch.allclose(
        torch.as_tensor(again.all_item_vectors()), torch.as_tensor(model.all_item_vectors())
    )
    histories = [h.tolist() for h in dataset.histories()[:10]]
    assert torch.allclose(
        torch.as_tensor(again.score_items(list(range(10)), histories)),
        torch.as_tensor(model.score_items(list(range(10)), histories)),
        atol=1e-6,
    )
    features = dataset.item_features.take(np.arange(5))
    assert torch.allclose(
        torch.as_tensor(again.item_vectors(features)), torch.as_tensor(model.item_vectors(features))
    )
    assert again.version == model.version
    assert again.training_history_ == model.training_history_
    assert again.fit_seconds_ == model.fit_seconds_
    assert again.item_map.to_list() == model.item_map.to_list()
    assert again.codes("category", ["cluster-2"]).tolist() == [3]


def test_reproducible_by_seed() -> None:
    dataset, _, _ = make_catalogue(seed=1)
    config = {**FAST, "max_epochs": 4, "patience": 4}
    a = HybridRecommender(seed=3, **config).fit(dataset, progress=False).all_item_vectors()
    b = HybridRecommender(seed=3, **config).fit(dataset, progress=False).all_item_vectors()
    c = HybridRecommender(seed=4, **config).fit(dataset, progress=False).all_item_vectors()
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    assert not torch.allclose(torch.as_tensor(a), torch.as_tensor(c))


def test_explicit_validation_and_sampled_softmax_path() -> None:
    dataset, item_cluster, user_cluster = make_catalogue(seed=2)
    rng = np.random.default_rng(0)
    held = rng.random(len(dataset)) < 0.1
    train, validation = dataset.subset(np.flatnonzero(~held)), dataset.subset(np.flatnonzero(held))
    model = HybridRecommender(
        seed=0, **{**FAST, "full_softmax_max_items": 10, "sampled_negatives": 20}
    )
    model.fit(train, validation=validation, progress=False)
    assert {r["phase"] for r in model.training_history_} == {"select"}
    scores = model.score_items(list(range(N_USERS)), train.histories())
    assert cluster_precision(scores, item_cluster, user_cluster) >= 0.7


def test_id_only_dataset_without_features() -> None:
    dataset, item_cluster, user_cluster = make_catalogue(seed=3)
    dataset.item_features = None
    model = HybridRecommender(seed=0, **FAST).fit(dataset, progress=False)
    scores = model.score_items(list(range(N_USERS)), dataset.histories())
    assert cluster_precision(scores, item_cluster, user_cluster) >= 0.7
    assert model.item_vectors(ItemFeatures(category=np.zeros(2, dtype=np.int64))).shape == (
        2,
        model.vector_dim,
    )


def test_config_is_json_and_validated() -> None:
    config = HybridConfig(dim=8, seed=5)
    assert HybridConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert HybridRecommender(config, lr=0.5).config.lr == 0.5
    with pytest.raises(ValueError):
        HybridConfig.from_dict({"dimension": 3})
    with pytest.raises(ValueError):
        HybridConfig(id_dropout=1.0)
    with pytest.raises(RuntimeError):
        HybridRecommender().all_item_vectors()
