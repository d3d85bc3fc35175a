"""Small synthetic shops with a planted structure, for the recsys selection and family tests.

Items belong to taste clusters; users mostly interact with one cluster; content (text/image
vectors, category) is noisy evidence of an item's cluster. Options add the shapes real shops
have: items without images, a long tail, a heavy user, event kinds other than ratings, and an
item-item structure (item ``2k+1`` follows item ``2k``) that item-item models must find.
"""

from __future__ import annotations

import numpy as np

from shop_recs.recsys.base import Dataset, ItemFeatures, event_weight
from shop_recs.recsys.idmap import IdMap

TEXT_DIM, IMAGE_DIM = 12, 6

#: Tiny hybrid configs: a fit takes about a second on 2 cores.
FAST_HYBRID = {
    "dim": 16,
    "input_dim": 16,
    "hidden": 32,
    "code_dim": 4,
    "text_components": 8,
    "image_components": 4,
    "batch_size": 32,
    "max_epochs": 15,
    "patience": 5,
    "lr": 0.01,
    "device": "cpu",
    "num_threads": 2,
}


def planted_shop(
    *,
    seed: int = 0,
    clusters: int = 4,
    per_cluster: int = 20,
    users: int = 120,
    events: int = 14,
    cold_items: int = 0,
    image_share: float = 0.7,
    long_tail: float = 0.7,
    heavy_user_events: int = 0,
    event_kinds: tuple[str, ...] = ("rating",),
    pairs: bool = False,
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """(dataset, item cluster per item, user cluster per user).

    The last ``cold_items`` items have content but no events. ``pairs``: each event on an
    even item ``2k`` is followed by one on ``2k+1`` (a planted item-item rule).
    ``heavy_user_events`` > 0 adds one more user (the last) with that many events.
    """
    rng = np.random.default_rng(seed)
    n_warm = clusters * per_cluster
    item_cluster = np.r_[
        np.repeat(np.arange(clusters), per_cluster), np.arange(cold_items) % clusters
    ]
    n_items = len(item_cluster)
    centres = rng.normal(size=(clusters, TEXT_DIM))
    text = centres[item_cluster] + 0.5 * rng.normal(size=(n_items, TEXT_DIM))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    image = centres[item_cluster] @ rng.normal(size=(TEXT_DIM, IMAGE_DIM))
    image += 0.5 * rng.normal(size=image.shape)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    mask = rng.random(n_items) < image_share
    image[~mask] = 0.0
    popularity = 1.0 / np.arange(1, per_cluster + 1) ** (0.3 + long_tail)
    popularity /= popularity.sum()
    n_users = users + (1 if heavy_user_events else 0)
    user_cluster = rng.integers(0, clusters, n_users)
    rows: list[tuple[int, int, str, float, float]] = []
    for u in range(n_users):
        count = heavy_user_events if (heavy_user_events and u == n_users - 1) else events
        t = float(u * 100_000)
        for _ in range(count):
            if rng.random() < 0.9:
                item = int(user_cluster[u] * per_cluster + rng.choice(per_cluster, p=popularity))
            else:
                item = int(rng.integers(0, n_warm))
            if pairs:
                item -= item % 2
            kind = str(rng.choice(event_kinds))
            value = float(rng.choice([4.0, 5.0])) if kind == "rating" else 1.0
            t += 1.0
            rows.append((u, item, kind, value, t))
            if pairs and item + 1 < n_warm:
                t += 1.0
                rows.append((u, item + 1, kind, value, t))
    features = ItemFeatures(
        text=text.astype(np.float32),
        image=image.astype(np.float32),
        image_mask=mask,
        category=(item_cluster + 1).astype(np.int64),
        category_names=[""] + [f"cluster-{c}" for c in range(clusters)],
    )
    dataset = Dataset(
        IdMap([f"u{u}" for u in range(n_users)]),
        IdMap([f"i{i}" for i in range(n_items)]),
        [r[0] for r in rows],
        [r[1] for r in rows],
        [event_weight(r[2], r[3]) for r in rows],
        [r[4] for r in rows],
        features,
    )
    return dataset, item_cluster, user_cluster


def cluster_precision(
    scores: np.ndarray, item_cluster: np.ndarray, clusters: np.ndarray, k: int = 5
) -> float:
    """Share of each row's top-k items that belong to that row's cluster."""
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean(item_cluster[top] == clusters[:, None]))
