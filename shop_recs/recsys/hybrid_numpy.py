"""The hybrid model's serving half in numpy: reads a ``shop_recs.hybrid`` artefact without torch.

:class:`~shop_recs.recsys.hybrid.HybridRecommender` trains with torch; serving needs only its
item tower (content MLP for new items) and user tower (attention pooling over stored item
vectors), both a few matrix products. Web processes that serve a blend (or the hybrid itself
through :class:`HybridVectors`) load this module instead, so they never import torch. The
maths mirrors ``hybrid/network.py`` line by line; a test checks both agree (allclose).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf

from .base import Dataset, ItemFeatures, VectorRecommender, top_k
from .idmap import IdMap
from .vector_utils import names_to_codes, remap_codes

HYBRID_FORMAT = "shop_recs.hybrid"
HYBRID_FORMAT_VERSION = 2
CLASS_PATH = "shop_recs.recsys.hybrid_numpy.HybridVectors"


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class HybridVectors(VectorRecommender):
    """A fitted hybrid model for serving only (no ``fit``): numpy item and user towers."""

    family = "hybrid"

    def __init__(self) -> None:
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.category_names: list[str] = [""]
        self.brand_names: list[str] = [""]
        self.training_history_: list[dict[str, Any]] = []
        self.version: str | None = None
        self.config: dict[str, Any] = {}
        self._t: dict[str, np.ndarray] = {}
        self._dims: dict[str, int] = {}
        self._hist_indptr = np.zeros(1, np.int64)
        self._hist_items = np.zeros(0, np.int64)

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    @property
    def scoring_dim(self) -> int:
        return self.dim

    @property
    def vector_dim(self) -> int:
        return int(self.config["dim"]) + int(self.config["input_dim"])

    @property
    def feature_dims(self) -> dict[str, int]:
        return {
            "text_dim": int(self._dims.get("text_dim") or 0),
            "image_dim": int(self._dims.get("image_dim") or 0),
        }

    def fit(self, dataset: Dataset) -> HybridVectors:
        raise NotImplementedError("HybridVectors serves a trained hybrid; fit HybridRecommender")

    # ------------------------------------------------------------------ item tower
    def _content(self, features: ItemFeatures, n: int) -> np.ndarray:
        t, d = self._t, self._dims
        if "items.content.0.weight" not in t:
            return np.zeros((n, self.vector_dim), np.float32)
        parts: list[np.ndarray] = []
        if d["text_dim"]:
            k = t["items.text_basis"].shape[1]
            if features.text is None:
                parts.append(np.zeros((n, k), np.float32))
            else:
                text = np.asarray(features.text, np.float32)
                if text.shape[1] != d["text_dim"]:
                    raise ValueError(
                        f"text features have {text.shape[1]} dims, model expects {d['text_dim']}"
                    )
                parts.append((text - t["items.text_mean"]) @ t["items.text_basis"])
        if d["image_dim"]:
            k = t["items.image_basis"].shape[1]
            if features.image is None:
                parts += [np.zeros((n, k), np.float32), np.zeros((n, 1), np.float32)]
            else:
                image = np.asarray(features.image, np.float32)
                if image.shape[1] != d["image_dim"]:
                    raise ValueError(
                        f"image features have {image.shape[1]} dims, model expects {d['image_dim']}"
                    )
                flag = (
                    np.ones(n, np.float32)
                    if features.image_mask is None
                    else np.asarray(features.image_mask, np.float32)
                )
                reduced = (image - t["items.image_mean"]) @ t["items.image_basis"]
                # a missing image may hold anything (zeros, NaN): it is masked out entirely
                reduced = np.where(flag[:, None] > 0, np.nan_to_num(reduced), 0.0)
                parts += [reduced, flag[:, None]]
        if "items.category.weight" in t:
            codes = remap_codes(features.category, features.category_names, self.category_names, n)
            parts.append(t["items.category.weight"][codes])
        if "items.brand.weight" in t:
            codes = remap_codes(features.brand, features.brand_names, self.brand_names, n)
            parts.append(t["items.brand.weight"][codes])
        x = np.concatenate(parts, axis=1).astype(np.float32)
        h = _gelu(x @ t["items.content.0.weight"].T + t["items.content.0.bias"])
        return (h @ t["items.content.3.weight"].T + t["items.content.3.bias"]).astype(np.float32)

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

    # ------------------------------------------------------------------ user tower
    def _pool(self, parts: np.ndarray, weights: np.ndarray) -> np.ndarray:
        t = self._t
        max_history = int(self.config["max_history"])
        parts, weights = parts[-max_history:], weights[-max_history:]
        valid = weights > 0
        n = len(parts)
        if not valid.any():
            pooled = np.zeros(parts.shape[1] if n else int(self.config["input_dim"]), np.float32)
        else:
            age = np.clip(valid.sum() - 1 - np.arange(n), 0, None) / max_history
            logits = (
                np.log(np.clip(weights, 1e-12, None))
                + parts @ t["user.query"]
                + float(t["user.recency"]) * age
            )
            logits = np.where(valid, logits, -np.inf)
            attn = np.exp(logits - logits.max())
            attn = attn / attn.sum()
            attn = attn / max(float(np.linalg.norm(attn)), 1e-12)
            pooled = attn @ parts
        hidden = np.tanh(pooled + t["user.bias"])
        if "user.out.weight" in t:
            hidden = hidden @ t["user.out.weight"].T + t["user.out.bias"]
        return hidden.astype(np.float32)

    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        hv = np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim)
        index = self.user_map.index(user) if user is not None and user in self.user_map else None
        if not len(hv) and index is not None:
            hv = self._t["item_vectors"][self._stored_history(index)]
            history_weights = None
        w = (
            np.ones(len(hv), np.float32)
            if history_weights is None
            else np.asarray(history_weights, np.float32).reshape(-1)
        )
        u = self._pool(hv[:, self.dim :], w)
        if self.config.get("user_ids", True) and index is not None:
            u = u + self._t["user.users.weight"][index]
        out = np.zeros(self.vector_dim, np.float32)
        out[: self.dim] = u
        return out

    def _stored_history(self, user: int) -> np.ndarray:
        if user + 1 >= len(self._hist_indptr):
            return np.zeros(0, np.int64)
        return self._hist_items[self._hist_indptr[user] : self._hist_indptr[user + 1]]

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        vectors = self._t["item_vectors"]
        ids = self.user_map.to_list()
        out = np.zeros((len(users), len(vectors)), np.float32)
        for row, (user, history) in enumerate(zip(users, histories, strict=True)):
            h = np.asarray(history, np.int64)
            name = None if user is None else ids[int(user)]
            out[row] = vectors[:, : self.dim] @ self.user_vector(name, vectors[h])[: self.dim]
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
        raise NotImplementedError("HybridVectors is read-only; save the HybridRecommender")

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> HybridVectors:
        src = Path(path)
        meta = json.loads((src / "config.json").read_text(encoding="utf-8"))
        if (
            meta.get("format") != HYBRID_FORMAT
            or meta.get("format_version") != HYBRID_FORMAT_VERSION
        ):
            raise ValueError(f"{src} is not a {HYBRID_FORMAT} v{HYBRID_FORMAT_VERSION} artefact")
        model = cls()
        model.config = dict(meta["config"])
        model._dims = {k: int(v) for k, v in meta["dims"].items()}
        model.user_map = IdMap.load(src / "user_ids.json")
        model.item_map = IdMap.load(src / "item_ids.json")
        vocab = json.loads((src / "vocab.json").read_text(encoding="utf-8"))
        model.category_names, model.brand_names = list(vocab["category"]), list(vocab["brand"])
        training = json.loads((src / "training.json").read_text(encoding="utf-8"))
        model.training_history_ = list(training.get("history", []))
        model.version = (src / "version.txt").read_text(encoding="utf-8").strip() or None
        tensors = load_file(str(src / "model.safetensors"))
        model._hist_indptr = tensors.pop("history.indptr").astype(np.int64)
        model._hist_items = tensors.pop("history.items").astype(np.int64)
        model._t = {
            k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in tensors.items()
        }
        return model
