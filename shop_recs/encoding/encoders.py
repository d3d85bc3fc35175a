"""The configured encoders, loaded once per process, and what they read of an item.

``SHOP_RECS["TEXT_ENCODER"]`` / ``["IMAGE_ENCODER"]`` name the classes (``recsys.encoders``),
with keyword options. Web processes load the text encoder only when a search needs it;
workers load both at start (``shop_recs.workers.receivers``).
"""

from __future__ import annotations

import json
import logging
import threading
from functools import lru_cache
from typing import Any

from shop_recs.catalog.models import Item, Space
from shop_recs.conf import recs_settings
from shop_recs.recsys.encoders import RECIPE_VERSION, content_version, item_text

logger = logging.getLogger(__name__)


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(cls: type, options_json: str) -> Any:
    # the settings object imports the dotted path; one instance per class and options
    logger.info("loading encoder %s %s", cls.__qualname__, options_json)
    return cls(**json.loads(options_json))


def text_encoder() -> Any:
    with _lock:
        return _load(
            recs_settings.TEXT_ENCODER,
            json.dumps(recs_settings.TEXT_ENCODER_OPTIONS, sort_keys=True),
        )


def image_encoder() -> Any | None:
    """The configured image encoder; ``"joint"`` reuses a text encoder that also reads images
    (a CLIP model), so both spaces share one embedding space."""
    cls = recs_settings.IMAGE_ENCODER
    if not cls:
        return None
    if cls == "joint":
        encoder = text_encoder()
        if "image" not in encoder.modalities:
            raise ValueError(
                "SHOP_RECS['IMAGE_ENCODER'] is 'joint' but the text encoder "
                f"{encoder.name} reads no images: configure a CLIP model or an image encoder."
            )
        return encoder
    with _lock:
        return _load(cls, json.dumps(recs_settings.IMAGE_ENCODER_OPTIONS, sort_keys=True))


def warm_up() -> None:
    """Load the encoders now (worker start-up) rather than in the first task."""
    text_encoder()
    image_encoder()


def encoder_versions() -> dict[str, str]:
    text = text_encoder()
    image = image_encoder()
    image_version = image.version if image is not None else "none"
    weight = float(recs_settings.CONTENT_TEXT_WEIGHT)
    return {
        Space.TEXT: f"{text.version};recipe={RECIPE_VERSION}",
        Space.IMAGE: image_version,
        Space.CONTENT: content_version(text.version, image_version, weight),
    }


def item_text_of(item: Item) -> str:
    return item_text(
        title=item.title,
        category=item.category,
        brand=item.brand,
        description=item.description,
        attributes=item.attributes,
        attribute_keys=recs_settings.TEXT_ATTRIBUTE_KEYS,
    )
