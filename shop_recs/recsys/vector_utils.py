"""Small numpy helpers shared by the vector families (EASE, blend, the numpy hybrid server).

Torch-free on purpose: web processes load artefacts through these modules and must not pay
for (or fork with) torch. Only numpy, scipy and safetensors.numpy are imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import ItemFeatures
from .encoders.fusion import fuse_content


def l2_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def remap_codes(
    codes: np.ndarray | None, names: Sequence[str], vocab: Sequence[str], n: int
) -> np.ndarray:
    """Codes under ``names`` re-expressed in ``vocab`` (matching by name); unknown -> 0."""
    if codes is None:
        return np.zeros(n, dtype=np.int64)
    lookup = {name: i for i, name in enumerate(vocab)}
    table = np.array([lookup.get(name, 0) for name in names] or [0], dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    valid = (codes >= 0) & (codes < len(table))
    return np.where(valid, table[np.clip(codes, 0, len(table) - 1)], 0)


def names_to_codes(vocab: Sequence[str], names: Sequence[str]) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(vocab)}
    return np.array([lookup.get(name, 0) if name else 0 for name in names], dtype=np.int64)


def content_matrix(
    features: ItemFeatures | None,
    n: int,
    *,
    category_vocab: Sequence[str],
    text_dim: int,
    image_dim: int,
    text_weight: float = 0.5,
    category_weight: float = 0.1,
) -> np.ndarray:
    """Unit content vectors (fused text+image, plus a one-hot category block) for ``n`` items.

    The layout is fixed by the model's vocabulary and feature widths (not by the rows given),
    so vectors of items encoded after training are comparable with the stored ones. Items with
    no content at all get zero rows (similar to nothing).
    """
    f = features or ItemFeatures()
    text = f.text if text_dim and f.text is not None else None
    image = f.image if image_dim and f.image is not None else None
    if text is not None and text.shape[1] != text_dim:
        raise ValueError(f"text features have {text.shape[1]} dims, model expects {text_dim}")
    if image is not None and image.shape[1] != image_dim:
        raise ValueError(f"image features have {image.shape[1]} dims, model expects {image_dim}")
    parts = []
    if text_dim or image_dim:
        t = np.zeros((n, text_dim), np.float32) if text is None else np.asarray(text, np.float32)
        if image_dim:
            img = np.zeros((n, image_dim), np.float32) if image is None else image
            mask = (
                np.zeros(n, bool)
                if image is None
                else (np.ones(n, bool) if f.image_mask is None else np.asarray(f.image_mask, bool))
            )
            if text_dim:
                base = fuse_content(
                    t, np.asarray(img, np.float32), text_weight=text_weight, has_image=mask
                )
            else:
                base = l2_rows(np.where(mask[:, None], img, 0.0))
        else:
            base = l2_rows(t)
        base = np.nan_to_num(np.asarray(base, np.float32))
        parts.append(np.sqrt(1.0 - category_weight) * base if len(category_vocab) > 1 else base)
    if len(category_vocab) > 1 and category_weight > 0:
        codes = remap_codes(f.category, f.category_names, category_vocab, n)
        onehot = np.zeros((n, len(category_vocab)), np.float32)
        known = codes > 0
        onehot[np.flatnonzero(known), codes[known]] = 1.0
        parts.append(np.sqrt(category_weight) * onehot[:, 1:])
    if not parts:
        return np.zeros((n, 0), np.float32)
    return np.concatenate(parts, axis=1).astype(np.float32)


def knn_mix(
    query: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    *,
    k: int,
    temperature: float,
    chunk: int = 4096,
) -> np.ndarray:
    """Softmax(cos/temperature)-weighted mean of the ``values`` rows of the k nearest ``keys``.

    Rows of ``query`` with no content (all zero) get zero rows: nothing is known about them.
    """
    out = np.zeros((len(query), values.shape[1]), np.float32)
    if not len(keys) or not query.shape[1]:
        return out
    k = max(1, min(k, len(keys)))
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        sims = q @ keys.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        logits = (top_sims - top_sims.max(axis=1, keepdims=True)) / max(temperature, 1e-6)
        w = np.exp(logits)
        w /= w.sum(axis=1, keepdims=True)
        mixed = np.einsum("qk,qkd->qd", w, values[top])
        empty = ~np.any(q != 0, axis=1)
        mixed[empty] = 0.0
        out[start : start + len(q)] = mixed
    return out


def pack_histories(histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(h) for h in histories])
    items = np.concatenate(histories).astype(np.int64) if len(histories) else np.zeros(0, np.int64)
    return indptr, items


def recent_histories(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int, cap: int
) -> list[np.ndarray]:
    """Per user: distinct items in time order of their last event, the ``cap`` most recent."""
    order = np.lexsort((np.arange(len(users)), times, users))
    u, i = users[order], items[order]
    bounds = np.searchsorted(u, np.arange(n_users + 1))
    out = []
    for user in range(n_users):
        seq = i[bounds[user] : bounds[user + 1]]
        if len(seq):
            # keep the last occurrence of each item, in time order
            _, last = np.unique(seq[::-1], return_index=True)
            seq = seq[::-1][np.sort(last)][::-1]
        out.append(seq[-cap:] if cap > 0 else seq)
    return out


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    (path / "config.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def write_maps(path: Path, *, user_map: Any, item_map: Any, version: str) -> None:
    """The id maps and version file every numpy artefact stores beside its config."""
    user_map.save(path / "user_ids.json")
    item_map.save(path / "item_ids.json")
    (path / "version.txt").write_text(f"{version}\n", encoding="utf-8")


def read_meta(path: Path, fmt: str, version: int) -> dict[str, Any]:
    meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if meta.get("format") != fmt or meta.get("format_version") != version:
        raise ValueError(
            f"{path} is not a {fmt} v{version} artefact "
            f"({meta.get('format')} v{meta.get('format_version')})"
        )
    return meta
