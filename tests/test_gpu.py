"""Training on a GPU gives the same model as on the CPU, within floating-point tolerance.
Runs only where torch sees CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shop_recs.recsys.base import Dataset, ItemFeatures
from shop_recs.recsys.hybrid import HybridRecommender

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def dataset(n_users: int = 300, n_items: int = 120, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    groups = rng.integers(4, size=n_items)
    centres = rng.normal(size=(4, 16))
    text = centres[groups] + 0.3 * rng.normal(size=(n_items, 16))
    users, items, times = [], [], []
    for u in range(n_users):
        pool = np.flatnonzero(groups == u % 4)
        for t, i in enumerate(rng.choice(pool, size=5, replace=False)):
            users.append(u), items.append(int(i)), times.append(float(t))
    from shop_recs.recsys.idmap import IdMap

    return Dataset(
        user_map=IdMap([f"u{u}" for u in range(n_users)]),
        item_map=IdMap([f"i{i}" for i in range(n_items)]),
        users=np.array(users),
        items=np.array(items),
        weights=np.ones(len(users), np.float32),
        times=np.array(times),
        item_features=ItemFeatures(
            text=text.astype(np.float32),
            category=groups.astype(np.int64) + 1,
            category_names=["", "a", "b", "c", "d"],
        ),
    )


@pytest.mark.parametrize("sampled", [False, True])
def test_gpu_training_matches_cpu(sampled: bool) -> None:
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    data = dataset()
    params = {
        "dim": 16, "hidden": 32, "input_dim": 16, "code_dim": 4, "text_components": 8,
        "max_epochs": 3, "validation_fraction": 0.0, "refit": False, "seed": 7,
        "text_dropout": 0.0, "image_dropout": 0.0, "id_dropout": 0.0,
        "user_id_dropout": 0.0, "dropout": 0.0, "content_dropout": 0.0,
    }  # fmt: skip
    if sampled:  # sampled softmax with logQ correction (negatives drawn on the CPU)
        params.update(full_softmax_max_items=50, sampled_negatives=40)
    params = {k: v for k, v in params.items() if k in HybridRecommender().config.to_dict()}
    cpu = HybridRecommender(**params, device="cpu").fit(data, progress=False)
    gpu = HybridRecommender(**params, device="cuda").fit(data, progress=False)
    a, b = cpu.all_item_vectors(), gpu.all_item_vectors()
    np.testing.assert_allclose(a, b, atol=2e-3, rtol=1e-3)
    ids_cpu, _ = cpu.recommend("u1", k=10)
    ids_gpu, _ = gpu.recommend("u1", k=10)
    assert len(set(ids_cpu) & set(ids_gpu)) >= 8
