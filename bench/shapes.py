"""Shop-like shapes derived from a bundle's dataset, for ``bench/quality.py --shape``.

Real shops rarely look like MovieLens: most products have no good picture, most items have a
handful of positives, and a few shoppers have thousands of events. Each shape is a seeded
transformation of the base :class:`~shop_recs.recsys.base.Dataset` (same item map, so the
peers' item records still line up):

- ``base``: the dataset as read;
- ``no-images``: the image vector removed from a random 70% of the items (``image_mask``
  False, zero rows), so the text (and category) must carry them;
- ``long-tail``: the items outside the 20% most popular keep a random 25% of their positive
  pairs (at least one): most items end up with 1-3 positives;
- ``heavy-users``: 40 groups of 8 random shoppers are merged into one shopper each (a family
  account; the events keep their times), so some users have 500-1,000+ positives of mixed
  taste next to the ordinary ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shop_recs.recsys.base import Dataset
from shop_recs.recsys.idmap import IdMap

SHAPES = ("base", "no-images", "long-tail", "heavy-users")


def derive(dataset: Dataset, shape: str, seed: int = 0) -> Dataset:
    """The dataset reshaped as ``shape`` (module docstring); ``base`` returns it unchanged."""
    rng = np.random.default_rng(10_000 + seed)
    if shape == "base":
        return dataset
    if shape == "no-images":
        feats = dataset.item_features
        if feats is None or feats.image is None:
            return dataset
        n = len(feats)
        mask = np.ones(n, bool) if feats.image_mask is None else feats.image_mask.copy()
        drop = rng.choice(n, size=round(0.7 * n), replace=False)
        mask[drop] = False
        image = feats.image.copy()
        image[~mask] = 0.0
        return dataclasses.replace(
            dataset, item_features=dataclasses.replace(feats, image=image, image_mask=mask)
        )
    if shape == "long-tail":
        n_items = max(dataset.n_items, 1)
        keys = dataset.users * np.int64(n_items) + dataset.items
        unique, inverse = np.unique(keys, return_inverse=True)
        pair_items = unique % n_items
        counts = np.bincount(pair_items, minlength=n_items)
        head = np.argsort(-counts, kind="stable")[: round(0.2 * n_items)]
        is_head = np.zeros(n_items, bool)
        is_head[head] = True
        keep_pair = is_head[pair_items] | (rng.random(len(unique)) < 0.25)
        # every item with a positive keeps at least one
        first = np.unique(pair_items, return_index=True)[1]
        keep_pair[first] = True
        return dataset.subset(np.flatnonzero(keep_pair[inverse]))
    if shape == "heavy-users":
        users = np.unique(dataset.users)
        picked = rng.choice(users, size=min(len(users) // 2, 40 * 8), replace=False)
        mapping = np.arange(dataset.n_users)
        ids = dataset.user_map.to_list()
        for g in range(len(picked) // 8):
            group = picked[g * 8 : (g + 1) * 8]
            mapping[group] = group[0]
            ids[group[0]] = f"heavy-{g}"
        used = np.unique(mapping[dataset.users])
        renumber = np.full(dataset.n_users, -1, np.int64)
        renumber[used] = np.arange(len(used))
        return Dataset(
            user_map=IdMap([ids[u] for u in used]),
            item_map=dataset.item_map,
            users=renumber[mapping[dataset.users]],
            items=dataset.items,
            weights=dataset.weights,
            times=dataset.times,
            item_features=dataset.item_features,
        )
    raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")


def describe(dataset: Dataset) -> str:
    """One line: users, items, positives, items by positives, the heaviest user, images."""
    n_items = max(dataset.n_items, 1)
    pairs = np.unique(dataset.users * np.int64(n_items) + dataset.items)
    per_item = np.bincount(pairs % n_items, minlength=n_items)
    per_user = np.bincount(pairs // n_items, minlength=dataset.n_users)
    feats = dataset.item_features
    if feats is None or feats.image is None:
        with_image = "n/a"
    else:
        mask = feats.image_mask if feats.image_mask is not None else np.ones(n_items, bool)
        with_image = f"{mask.mean():.0%}"
    return (
        f"{dataset.n_users:,} users, {dataset.n_items:,} items, {len(pairs):,} positive pairs; "
        f"items with 1-3 positives {np.mean((per_item >= 1) & (per_item <= 3)):.0%}, "
        f"max positives per user {per_user.max(initial=0):,}, items with an image {with_image}"
    )
