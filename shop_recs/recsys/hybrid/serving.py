"""The hybrid model's user tower in numpy: what a web process needs to serve, without torch.

At request time the app turns the stored ``hybrid`` vectors of a shopper's recent items (and,
for a known shopper, their ID embedding) into a query vector: :meth:`HybridServingModel.
user_vector`, the same computation as :class:`~shop_recs.recsys.hybrid.network.UserTower`
in eval mode (checked against the torch model in ``tests/test_lean_web.py``). Importing torch
alone costs a web process ~700 MB of memory; this module needs numpy and safetensors only.

Only the user tower's few small tensors are read into memory. The per-user ID embeddings, the
item vectors and the stored training histories are read row by row from the memory-mapped
artefact when a request needs them (a known shopper, a shopper without recent items), so a
model of millions of users costs a web process almost nothing until it serves them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from ..idmap import IdMap
from .config import HybridConfig

FORMAT = "shop_recs.hybrid"  # the artefact format this reads (model.FORMAT, without torch)
FORMAT_VERSION = 2


class HybridServingModel:
    """The serving side of a saved :class:`~shop_recs.recsys.hybrid.HybridRecommender`:
    ``user_vector``, ``user_map``, ``vector_dim``, ``dim``, ``version`` and ``feature_dims``
    (the members the app calls when serving). Item vectors are not computed here: they are
    written by the full model when a version is activated or an item is encoded."""

    def __init__(
        self,
        *,
        config: HybridConfig,
        dims: dict[str, int],
        user_map: IdMap,
        weights: dict[str, np.ndarray],
        tensors: Any,
        version: str | None,
    ) -> None:
        self.config = config
        self._dims = dims
        self.user_map = user_map
        self.version = version
        self._query = weights["user.query"]
        self._recency = float(weights["user.recency"])
        self._bias = weights["user.bias"]
        self._out_weight = weights.get("user.out.weight")
        self._out_bias = weights.get("user.out.bias")
        self._hist_indptr = weights["history.indptr"]
        self._tensors = tensors  # the open artefact: rows are read on demand

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def vector_dim(self) -> int:
        return self.config.dim + self.config.input_dim

    @property
    def feature_dims(self) -> dict[str, int]:
        return {
            "text_dim": int(self._dims.get("text_dim") or 0),
            "image_dim": int(self._dims.get("image_dim") or 0),
        }

    @classmethod
    def load(cls, path: str | Path, **_: Any) -> HybridServingModel:
        """Read the serving part of an artefact written by ``HybridRecommender.save``."""
        src = Path(path)
        meta = json.loads((src / "config.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{src} is not a {FORMAT} v{FORMAT_VERSION} artefact "
                f"({meta.get('format')} v{meta.get('format_version')})"
            )
        tensors = safe_open(str(src / "model.safetensors"), framework="numpy")
        names = set(tensors.keys())
        small = ["user.query", "user.recency", "user.bias", "history.indptr"]
        small += [n for n in ("user.out.weight", "user.out.bias") if n in names]
        weights = {name: tensors.get_tensor(name) for name in small}
        version = (src / "version.txt").read_text(encoding="utf-8").strip() or None
        return cls(
            config=HybridConfig.from_dict(meta["config"]),
            dims={k: int(v) for k, v in meta["dims"].items()},
            user_map=IdMap.load(src / "user_ids.json"),
            weights=weights,
            tensors=tensors,
            version=version,
        )

    # ------------------------------------------------------------------ rows on demand
    def _rows(self, name: str, rows: Sequence[int]) -> np.ndarray:
        table = self._tensors.get_slice(name)
        if not len(rows):
            return np.zeros((0, *table.get_shape()[1:]), dtype=np.float32)
        return np.concatenate([table[int(r) : int(r) + 1] for r in rows])

    def _stored_history(self, user: int) -> np.ndarray:
        if user + 1 >= len(self._hist_indptr):
            return np.zeros(0, dtype=np.int64)
        start, stop = int(self._hist_indptr[user]), int(self._hist_indptr[user + 1])
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._tensors.get_slice("history.items")[start:stop], dtype=np.int64)

    # ------------------------------------------------------------------ serving
    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """As ``HybridRecommender.user_vector``: a ``vector_dim`` vector whose history part is
        zero, from the stored vectors of the shopper's recent items (oldest first)."""
        hv = np.asarray(history_vectors, dtype=np.float32).reshape(-1, self.vector_dim)
        index = self.user_map.index(user) if user is not None and user in self.user_map else None
        if not len(hv) and index is not None:
            hv = self._rows("item_vectors", self._stored_history(index).tolist())
            history_weights = None
        w = (
            np.ones(len(hv), np.float32)
            if history_weights is None
            else np.asarray(history_weights, np.float32).reshape(-1)
        )
        out = np.zeros(self.vector_dim, dtype=np.float32)
        out[: self.dim] = self._tower(hv, w, index)
        return out

    def _tower(self, hv: np.ndarray, w: np.ndarray, user: int | None) -> np.ndarray:
        """``UserTower.forward`` for one shopper in eval mode (no dropout)."""
        limit = self.config.max_history
        hv, w = hv[-limit:], w[-limit:]  # pad_histories keeps the newest max_history items
        parts = hv[:, self.dim :].astype(np.float32, copy=False)
        valid = w > 0
        n_valid = int(valid.sum())
        if n_valid:
            # positions are those of the left-aligned padded row; the age counts back from the
            # newest valid entry, as the torch tower does
            age = np.clip(n_valid - 1 - np.arange(len(w)), 0, None).astype(np.float32)
            age /= np.float32(limit)
            with np.errstate(divide="ignore"):
                logits = np.log(np.clip(w, 1e-12, None)) + parts @ self._query
            logits = logits + np.float32(self._recency) * age
            logits = np.where(valid, logits, -np.inf).astype(np.float32)
            attn = np.exp(logits - logits[valid].max())
            attn = np.where(valid, attn / attn[valid].sum(), 0.0).astype(np.float32)
            attn /= max(float(np.linalg.norm(attn)), 1e-12)
            pooled = attn @ parts
        else:
            pooled = np.zeros(self.config.input_dim, dtype=np.float32)
        hidden = np.tanh(pooled + self._bias)
        if self._out_weight is not None:
            hidden = hidden @ self._out_weight.T + self._out_bias
        if self.config.user_ids and user is not None:
            hidden = hidden + self._rows("user.users.weight", [user])[0]
        return hidden.astype(np.float32)


def load(path: str | Path) -> HybridServingModel:
    """The serving loader of the hybrid model (``shop_recs.ranking.registry.SERVING_LOADERS``)."""
    return HybridServingModel.load(path)
