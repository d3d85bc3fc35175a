"""Encoding of query text for semantic search (web processes load the text encoder lazily)."""

from __future__ import annotations

import numpy as np

from shop_recs.catalog.models import Space
from shop_recs.encoding import encoders


class EncoderUnavailable(Exception):
    """The configured encoder cannot be loaded in this process."""


def search_query_vectors(text: str) -> dict[str, np.ndarray]:
    """The query in every space it can be compared in: text, plus image for a joint encoder."""

    try:
        encoder = encoders.text_encoder()
        image = encoders.image_encoder()
    except Exception as exc:  # a misconfigured or missing model must not become a 500
        raise EncoderUnavailable(f"The text encoder cannot be loaded: {exc}") from exc
    vec = encoder.encode_texts([text])[0]
    spaces = {Space.TEXT.value: vec}
    if image is encoder:  # joint space (e.g. CLIP): text queries find images directly
        spaces[Space.IMAGE.value] = vec
    return spaces
