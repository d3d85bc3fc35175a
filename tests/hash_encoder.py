"""A fast, deterministic text encoder for tests and benchmarks that need many items encoded
on two cores: feature hashing of the words (signed, like scikit-learn's ``HashingVectorizer``),
L2-normalised. Texts sharing words get similar vectors; no model is loaded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from shop_recs.recsys.encoders.base import TEXT, Encoder

_WORD = re.compile(r"\w+")


class HashingTextEncoder(Encoder):
    def __init__(self, dim: int = 16, **_: object) -> None:
        self.dim = int(dim)
        self.name = f"hashing-{self.dim}"
        self.version = f"hashing-{self.dim}-v1"
        self.modalities = frozenset({TEXT})

    def _bucket(self, word: str) -> tuple[int, float]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if (value >> 63) & 1 else -1.0

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                col, sign = self._bucket(word)
                out[row, col] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
