"""The sequence model's serving half in numpy: reads a ``shop_recs.sequence`` artefact without
torch (web processes never import it). Mirrors :mod:`.network` line by line; a test checks both
agree within float tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors import safe_open

from ..base import Dataset, ItemFeatures, VectorRecommender, top_k
from ..hybrid_numpy import HybridVectors, _gelu
from ..idmap import IdMap
from ..vector_utils import names_to_codes, read_meta
from .data import history_steps, merge_steps

FORMAT = "shop_recs.sequence"
FORMAT_VERSION = 1
LN_EPS = 1e-5


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LN_EPS) * weight + bias


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class SequenceVectors(VectorRecommender):
    """A fitted sequence model for serving only (no ``fit``): numpy item tower and encoder."""

    family = "sequence"

    def __init__(self) -> None:
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.category_names: list[str] = [""]
        self.brand_names: list[str] = [""]
        self.training_history_: list[dict[str, Any]] = []
        self.version: str | None = None
        self.config: dict[str, Any] = {}
        self.default_type = 1
        self._t: dict[str, np.ndarray] = {}
        self._dims: dict[str, int] = {}
        self._hist_indptr = np.zeros(1, np.int64)
        self._hist_items = np.zeros(0, np.int64)
        self._hist_types = np.zeros(0, np.int64)

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    @property
    def scoring_dim(self) -> int:
        return self.dim

    @property
    def vector_dim(self) -> int:
        return 2 * self.dim

    @property
    def feature_dims(self) -> dict[str, int]:
        return {
            "text_dim": int(self._dims.get("text_dim") or 0),
            "image_dim": int(self._dims.get("image_dim") or 0),
        }

    def fit(self, dataset: Dataset) -> SequenceVectors:
        raise NotImplementedError("SequenceVectors serves a trained model; fit SequenceRecommender")

    # ------------------------------------------------------------------ item tower
    # The item tower is the hybrid's (same tensor names under ``items.``): reuse its numpy code.
    _content = HybridVectors._content

    def all_item_vectors(self) -> np.ndarray:
        return self._t["item_vectors"].astype(np.float32).copy()

    def item_vectors(
        self, features: ItemFeatures, item_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        n = len(features)
        if item_ids is not None and len(item_ids) != n:
            raise ValueError(f"{len(item_ids)} ids for {n} feature rows")
        out = self._content(features, n)
        if item_ids is not None:
            gate = self._t["items.content_gate"]
            for row, item in enumerate(item_ids):
                if item in self.item_map:
                    idx = self.item_map.index(item)
                    if self._t["has_id"][idx]:
                        out[row] = (
                            out[row] + self._t["items.ids.weight"][idx] + (gate - 1.0) * out[row]
                        )
        return out

    # ------------------------------------------------------------------ encoder
    def encode(self, inputs: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Encoder output at the last step of one history (``inputs``: L x dim input parts,
        oldest first, L <= max_len; empty = the encoder's empty-history output)."""
        t, d = self._t, self.dim
        heads = int(self.config["heads"])
        hd = d // heads
        if not len(inputs):
            x = np.zeros((1, d), np.float32)
            valid = np.zeros(1, bool)
            types = np.zeros(1, np.int64)
        else:
            valid = np.ones(len(inputs), bool)
            x = (
                inputs
                + t["encoder.positions.weight"][np.arange(len(inputs))]
                + t["encoder.types.weight"][types]
            )
        length = len(x)
        allowed = np.tril(np.ones((length, length), bool)) & valid[None, :]
        allowed |= np.eye(length, dtype=bool)
        layers = int(self.config["layers"])
        for b in range(layers):
            p = f"encoder.blocks.{b}."
            # the last block only needs the last step's output: its query, attention row and
            # feed-forward (keys and values still come from every step)
            rows = slice(length - 1, length) if b == layers - 1 else slice(0, length)
            h = _layer_norm(x, t[p + "ln1.weight"], t[p + "ln1.bias"])
            w, bias = t[p + "qkv.weight"], t[p + "qkv.bias"]
            q = h[rows] @ w[:d].T + bias[:d]
            k = h @ w[d : 2 * d].T + bias[d : 2 * d]
            v = h @ w[2 * d :].T + bias[2 * d :]
            n_q = len(q)
            q = q.reshape(n_q, heads, hd).transpose(1, 0, 2)
            k = k.reshape(length, heads, hd).transpose(1, 0, 2)
            v = v.reshape(length, heads, hd).transpose(1, 0, 2)
            logits = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            logits = np.where(allowed[rows][None], logits, -np.inf)
            out = (_softmax(logits) @ v).transpose(1, 0, 2).reshape(n_q, d)
            x = x[rows] + out @ t[p + "proj.weight"].T + t[p + "proj.bias"]
            h = _layer_norm(x, t[p + "ln2.weight"], t[p + "ln2.bias"])
            f = _gelu(h @ t[p + "ff1.weight"].T + t[p + "ff1.bias"])
            x = x + f @ t[p + "ff2.weight"].T + t[p + "ff2.bias"]
        last = _layer_norm(x[-1], t["encoder.ln.weight"], t["encoder.ln.bias"])
        return (last @ t["encoder.out.weight"].T + t["encoder.out.bias"]).astype(np.float32)

    def _stored(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        if user + 1 >= len(self._hist_indptr):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        s = slice(self._hist_indptr[user], self._hist_indptr[user + 1])
        return self._hist_items[s], self._hist_types[s]

    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        hv, types = history_steps(
            np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim),
            history_weights,
            self.default_type,
        )
        index = self.user_map.index(user) if user is not None and user in self.user_map else None
        if not len(hv) and index is not None:
            items, types = self._stored(index)
            hv = self._t["item_vectors"][items]
        cap = int(self.config["max_len"])
        out = np.zeros(self.vector_dim, np.float32)
        out[: self.dim] = self.encode(hv[-cap:, self.dim :], types[-cap:])
        return out

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        vectors = self._t["item_vectors"]
        cap = int(self.config["max_len"])
        out = np.zeros((len(users), len(vectors)), np.float32)
        for row, (user, history) in enumerate(zip(users, histories, strict=True)):
            h = np.asarray(history, np.int64)
            if len(h) > 1 and self.config.get("merge_repeats", True):
                h, _ = merge_steps(h, np.ones(len(h)))
            types = np.full(len(h), self.default_type, np.int64)
            if not len(h) and user is not None:
                h, types = self._stored(int(user))
            u = self.encode(vectors[h[-cap:], self.dim :], types[-cap:])
            out[row] = vectors[:, : self.dim] @ u
        return out

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        index = self.item_map.index(item)
        scores = self.score_items([None], [[index]])[0]
        mask = np.ones(len(scores), bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def codes(self, kind: Literal["category", "brand"], names: Sequence[str]) -> np.ndarray:
        if kind not in ("category", "brand"):
            raise ValueError(f"kind must be 'category' or 'brand', got {kind!r}")
        return names_to_codes(
            self.category_names if kind == "category" else self.brand_names, names
        )

    def save(self, path: str | Path) -> None:
        raise NotImplementedError("SequenceVectors is read-only; save the SequenceRecommender")

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> SequenceVectors:
        """Read an artefact written by ``SequenceRecommender.save`` (``device`` is ignored:
        numpy runs on the CPU)."""
        src = Path(path)
        meta = read_meta(src, FORMAT, FORMAT_VERSION)
        model = cls()
        model.config = dict(meta["config"])
        model._dims = {k: int(v) for k, v in meta["dims"].items()}
        model.default_type = int(meta["default_type"])
        model.training_history_ = list(meta.get("history") or [])
        model.version = meta.get("version")
        model.user_map = IdMap.load(src / "user_ids.json")
        model.item_map = IdMap.load(src / "item_ids.json")
        vocab = json.loads((src / "vocab.json").read_text(encoding="utf-8"))
        model.category_names, model.brand_names = list(vocab["category"]), list(vocab["brand"])
        tensors: dict[str, np.ndarray] = {}
        with safe_open(str(src / "model.safetensors"), framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensors[key] = f.get_tensor(key)
        model._hist_indptr = tensors.pop("history.indptr").astype(np.int64)
        model._hist_items = tensors.pop("history.items").astype(np.int64)
        model._hist_types = tensors.pop("history.types").astype(np.int64)
        model._t = {
            k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in tensors.items()
        }
        return model
