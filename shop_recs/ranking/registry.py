"""Where model artefacts live, which class loads them, and the active model of this process.

Serving asks :func:`active_model` for the active version and its loaded model; a model is
loaded once per process and replaced when another version becomes active.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
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
            cls = import_string(version.kind) if "." in version.kind else model_class()
            _cache.update(key=key, model=cls.load(version.artefact, device="cpu"))
        return _cache["model"]


#: Loaded models of versions that are not active (arms of experiments serve them), newest use
#: last; at most :data:`VERSIONS_KEPT` per process.
VERSIONS_KEPT = 3
_versions: OrderedDict[str, Any] = OrderedDict()


def version_model(version: ModelVersion) -> Any:
    """The model of any ready ``version``, loaded once per process: the active one through
    :func:`load_model`, others kept in a small LRU (experiments' arms)."""
    if version.is_active:
        return load_model(version)
    key = f"{version.pk}:{version.artefact}"
    with _cache_lock:
        if key in _versions:
            _versions.move_to_end(key)
            return _versions[key]
    if not version.artefact or not Path(version.artefact, "config.json").is_file():
        raise FileNotFoundError(
            f"The artefact of model {version.pk} is missing ({version.artefact!r})."
        )
    cls = import_string(version.kind) if "." in version.kind else model_class()
    model = cls.load(version.artefact, device="cpu")
    with _cache_lock:
        _versions[key] = model
        _versions.move_to_end(key)
        while len(_versions) > VERSIONS_KEPT:
            _versions.popitem(last=False)
    return model


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
