"""Search query text as vectors: encoded by an encode worker, or in this process.

``SHOP_RECS["SEARCH_ENCODER"]``:

- ``"worker"``: a Celery worker on the encode queue encodes the text and the web process waits
  for the result (``SEARCH_ENCODE_TIMEOUT`` seconds, then 503 naming the queue to start). Web
  processes then never load an encoder, nor torch (~700 MB each);
- ``"local"``: the text encoder loads in this process on the first search;
- ``"auto"`` (default): worker when the Celery app has a broker and a result backend, else
  local.

The image encoder is never loaded for a search: a text query is compared in the image space
only when the configured encoder is joint (``IMAGE_ENCODER = "joint"``, e.g. CLIP), whose text
vectors are image vectors already. Encoded queries are kept per process in an LRU cache of
``SEARCH_CACHE_SIZE`` entries (a shop's searches repeat a lot: "boots", "red dress").

This layer knows no Celery: it asks with :data:`query_encoding_requested`, which the workers
layer answers (``shop_recs.workers.receivers``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from django.dispatch import Signal

from shop_recs.catalog.models import Space
from shop_recs.conf import recs_settings

MODES = ("auto", "worker", "local")

#: Sent with ``text`` and ``required`` (True in "worker" mode): a receiver that can have a
#: worker encode the text returns ``{space: list of floats}``; one that cannot returns None
#: (``required`` False) or raises :class:`EncoderUnavailable`.
query_encoding_requested = Signal()


class EncoderUnavailable(Exception):
    """The query cannot be encoded now: no encoder here, or no encode worker answering."""


_lock = threading.Lock()
_cache: OrderedDict[tuple[str, ...], dict[str, np.ndarray]] = OrderedDict()


def _joint() -> bool:
    return recs_settings.raw("IMAGE_ENCODER") == "joint"


def _cache_key(text: str) -> tuple[str, ...]:
    encoder = recs_settings.raw("TEXT_ENCODER")
    name = encoder if isinstance(encoder, str) else f"{encoder.__module__}.{encoder.__qualname__}"
    options = json.dumps(recs_settings.TEXT_ENCODER_OPTIONS, sort_keys=True, default=str)
    return (name, options, str(_joint()), text)


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def local_query_vectors(text: str) -> dict[str, np.ndarray]:
    """The query encoded in this process by the text encoder (loaded on first use)."""
    from shop_recs.encoding import encoders

    try:
        encoder = encoders.text_encoder()
    except Exception as exc:  # a misconfigured or missing model must not become a 500
        raise EncoderUnavailable(f"The text encoder cannot be loaded: {exc}") from exc
    if _joint() and "image" not in encoder.modalities:
        raise EncoderUnavailable(
            "SHOP_RECS['IMAGE_ENCODER'] is 'joint' but the text encoder "
            f"{encoder.name} reads no images: configure a CLIP model or an image encoder."
        )
    vec = encoder.encode_texts([text])[0]
    spaces = {Space.TEXT.value: vec}
    if _joint():  # joint space (e.g. CLIP): text queries find images directly
        spaces[Space.IMAGE.value] = vec
    return spaces


def _worker_query_vectors(text: str, *, required: bool) -> dict[str, np.ndarray] | None:
    for _, answer in query_encoding_requested.send(sender=None, text=text, required=required):
        if answer is not None:
            return {space: np.asarray(vec, dtype=np.float32) for space, vec in answer.items()}
    if required:
        raise EncoderUnavailable(
            "SHOP_RECS['SEARCH_ENCODER'] is 'worker', but nothing hands queries to workers: "
            "add 'shop_recs.workers' to INSTALLED_APPS, or set SEARCH_ENCODER to 'local'."
        )
    return None


def search_query_vectors(text: str) -> dict[str, np.ndarray]:
    """The query in every space it can be compared in: text, plus image for a joint encoder.
    Raises :class:`EncoderUnavailable` when it cannot be encoded now (the API answers 503)."""
    key = _cache_key(text)
    size = int(recs_settings.SEARCH_CACHE_SIZE or 0)
    if size > 0:
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    mode = recs_settings.SEARCH_ENCODER
    if mode not in MODES:
        raise EncoderUnavailable(
            f"SHOP_RECS['SEARCH_ENCODER'] is {mode!r}; use one of {', '.join(MODES)}."
        )
    found: dict[str, Any] | None = None
    if mode != "local":
        found = _worker_query_vectors(text, required=mode == "worker")
    if found is None:
        found = local_query_vectors(text)
    if size > 0:
        with _lock:
            _cache[key] = found
            while len(_cache) > size:
                _cache.popitem(last=False)
    return found
