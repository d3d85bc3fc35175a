"""One "content" vector per item from its text vector and (optional) image vector.

Content space: the L2-normalised concatenation ``[sqrt(w) * t, sqrt(1 - w) * i]`` of the unit text
vector ``t`` and unit image vector ``i``, with ``w = text_weight``. Both halves present, its norm
is already 1 and for two items::

    cos(content_a, content_b) = w * cos(t_a, t_b) + (1 - w) * cos(i_a, i_b)

so a single pgvector cosine/inner-product index answers a weighted text+image similarity. An item
without an image gets zeros in the image half and its full text vector in the text half (still unit
norm): it is found by text alone, and against an item with an image it scores
``sqrt(w) * cos_t``, i.e. it ranks below equally text-similar items whose pictures also match.
"""

from __future__ import annotations

import numpy as np

from .base import l2_normalise

# Bump when the fusion maths changes. A stored content vector is valid only for one
# content_version(...) string: this, the weight and both encoders' versions.
CONTENT_VERSION = "1"


def content_version(text_version: str, image_version: str, text_weight: float) -> str:
    """The version string for content vectors built from these encoders at this weight."""
    return (
        f"content=={CONTENT_VERSION};w={text_weight:g}"
        f";text=[{text_version}];image=[{image_version}]"
    )


def fuse_content(
    text_vec: np.ndarray,
    image_vec: np.ndarray | None,
    *,
    text_weight: float = 0.5,
    has_image: np.ndarray | None = None,
    image_dim: int | None = None,
) -> np.ndarray:
    """Fuse text and image vectors into content vectors (float32, unit rows; see module doc).

    ``text_vec``: ``(d_t,)`` for one item or ``(n, d_t)`` for a batch. ``image_vec``: same
    leading shape with ``d_i`` columns, or ``None`` when no item has an image; then
    ``image_dim`` must say ``d_i`` so every content vector has the same width. ``has_image``: an
    optional boolean ``(n,)`` mask for a batch where only some items have an image (the rows of
    ``image_vec`` where it is False are ignored and may hold anything, e.g. zeros or NaN).
    Inputs need not be normalised: each half is normalised first.
    """
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError(f"text_weight must be in [0, 1], got {text_weight}")
    single = np.ndim(text_vec) == 1
    t = np.atleast_2d(np.asarray(text_vec, dtype=np.float32))
    n = t.shape[0]

    if image_vec is None:
        if image_dim is None:
            raise ValueError("image_dim is required when image_vec is None")
        img = np.zeros((n, image_dim), dtype=np.float32)
        present = np.zeros(n, dtype=bool)
    else:
        img = np.atleast_2d(np.asarray(image_vec, dtype=np.float32))
        if img.shape[0] != n:
            raise ValueError(f"{n} text rows but {img.shape[0]} image rows")
        if image_dim is not None and img.shape[1] != image_dim:
            raise ValueError(f"image vectors have {img.shape[1]} columns, not {image_dim}")
        present = np.ones(n, dtype=bool) if has_image is None else np.asarray(has_image, bool)
        if present.shape != (n,):
            raise ValueError(f"has_image must have shape ({n},), got {present.shape}")
        img = np.where(present[:, None], img, 0.0).astype(np.float32)
        if not np.isfinite(img).all():
            raise ValueError("image vectors marked present contain NaN or inf")

    t = l2_normalise(t)
    img = l2_normalise(img)
    # Rows without an image keep the full text vector: the final normalisation below rescales
    # sqrt(w) * t back to unit length, and leaves rows with both halves unchanged.
    scale_t = np.where(present, np.sqrt(text_weight), 1.0).astype(np.float32)[:, None]
    fused = np.concatenate([scale_t * t, np.float32(np.sqrt(1.0 - text_weight)) * img], axis=1)
    fused = l2_normalise(fused)
    return fused[0] if single else fused


def mean_of_normalised(vectors: np.ndarray) -> np.ndarray:
    """One unit vector for an item with several images: the mean of the unit rows, renormalised.

    Normalising before averaging gives every picture the same say, whatever its raw feature
    magnitude. A 1-D input is one vector and is just normalised. Returns float32 ``(d,)``.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        return l2_normalise(arr)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty (n, d) array, got shape {arr.shape}")
    return l2_normalise(l2_normalise(arr).mean(axis=0))
