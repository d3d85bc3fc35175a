"""Where model artefacts live, which class loads them, and the active model of this process.

Serving asks :func:`active_model` for the active version and its loaded model; a model is
loaded once per process and replaced when another version becomes active.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from shop_recs.catalog.models import ModelVersion
from shop_recs.conf import recs_settings
from shop_recs.recsys.base import VectorRecommender

logger = logging.getLogger(__name__)


def model_dir() -> Path:
    configured = recs_settings.MODEL_DIR
    if configured:
        return Path(configured)
    base = getattr(settings, "DATA_DIR", None) or Path(settings.BASE_DIR) / ".data"
    return Path(base) / "models"


def model_class() -> type[VectorRecommender]:
    """``SHOP_RECS["MODEL_CLASS"]`` (imported by the settings object): a VectorRecommender."""
    cls = recs_settings.MODEL_CLASS
    if not (isinstance(cls, type) and issubclass(cls, VectorRecommender)):
        raise TypeError(
            f"SHOP_RECS['MODEL_CLASS'] = {cls!r} is not a shop_recs.recsys.base.VectorRecommender "
            "(the serving interface the app calls: all_item_vectors, item_vectors, user_vector, "
            "codes, feature_dims, save/load)."
        )
    return cls


def version_class(version: ModelVersion) -> type[VectorRecommender]:
    """The class that loads ``version``'s artefact: the dotted path in its ``kind`` (model
    selection may choose any family; non-torch families load without torch), else — a
    version recorded before kinds were dotted paths — ``MODEL_CLASS``."""
    if "." not in version.kind:
        return model_class()
    try:
        cls = import_string(version.kind)
    except ImportError as exc:
        raise ImportError(
            f"Model {version.pk} names the class {version.kind!r}, which does not import: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, VectorRecommender)):
        raise TypeError(
            f"Model {version.pk} names {version.kind!r}, which is not a "
            "shop_recs.recsys.base.VectorRecommender: its artefact cannot be served."
        )
    return cls


_cache_lock = threading.Lock()


_cache: dict[str, Any] = {}


def load_model(version: ModelVersion) -> Any:
    """The model of ``version``, loaded once per process."""
    key = f"{version.pk}:{version.artefact}"
    with _cache_lock:
        if _cache.get("key") != key:
            if not version.artefact or not Path(version.artefact, "config.json").is_file():
                raise FileNotFoundError(
                    f"The artefact of model {version.pk} is missing ({version.artefact!r}); "
                    "train again (python manage.py recs_train) or set SHOP_RECS['MODEL_DIR']."
                )
            model = version_class(version).load(version.artefact, device="cpu")
            _cache.update(key=key, model=model)
        return _cache["model"]


def active_model() -> tuple[ModelVersion, Any] | None:
    """The active version and its loaded model; None when there is none or it cannot load
    (serving then falls back to content similarity and popularity)."""
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return None
    try:
        return version, load_model(version)
    except Exception:
        logger.exception("the active model %s cannot be loaded", version.pk)
        return None
