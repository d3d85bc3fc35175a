"""The encoder interface shared by every text and image encoder, plus small array helpers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

TEXT = "text"
IMAGE = "image"


class Encoder:
    """A pretrained model that maps texts and/or images into one fixed vector space.

    Subclasses set the four attributes in ``__init__`` (after loading their model once) and
    override the ``encode_*`` method of each modality they support; the other one keeps raising
    ``NotImplementedError``, so callers can ask ``modality in encoder.modalities`` up front.

    ``version`` is what stored vectors are keyed by: it changes whenever the same input could give
    a different vector (model id, weights or package version, preprocessing version), so vectors
    written under an old version are known to need re-encoding.
    """

    name: str
    version: str
    dim: int
    modalities: frozenset[str]

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Encode texts to a float32 ``(len(texts), dim)`` array of L2-normalised rows."""
        raise NotImplementedError(f"{self.name} does not encode texts (modalities: {self._mods})")

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Encode PIL images to a float32 ``(len(images), dim)`` array of L2-normalised rows."""
        raise NotImplementedError(f"{self.name} does not encode images (modalities: {self._mods})")

    @property
    def _mods(self) -> str:
        return ", ".join(sorted(self.modalities)) or "none"

    def empty(self) -> np.ndarray:
        """The result for empty input: no model call, but the right width for stacking."""
        return np.zeros((0, self.dim), dtype=np.float32)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.version!r} dim={self.dim}>"


def l2_normalise(x: Any) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm, as float32; all-zero rows stay zero (no NaN).

    Cosine similarity then is a plain dot product, which is what pgvector's inner-product index and
    the fusion maths rely on. A 1-D input is treated as one row and returned 1-D.
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        return l2_normalise(arr[None, :])[0]
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out = np.zeros_like(arr)
    np.divide(arr, norms, out=out, where=norms > 0)
    return out


def batches(items: Sequence[Any], batch_size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``batch_size`` items, so memory stays bounded."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]
