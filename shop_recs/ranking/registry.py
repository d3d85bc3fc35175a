"""Where model artefacts live, which class loads them, and the active model of this process.

Serving asks :func:`serving_model` for the active version and what serves it: the model
class's serving loader (:data:`SERVING_LOADERS`: the hybrid model's user tower in numpy, so a
web process never imports torch), else the full model. Work that computes item vectors
(activation, encoding) asks :func:`active_model` for the full model. Each is loaded once per
process and replaced when another version becomes active. The active version itself is looked
up at most once per ``ACTIVE_MODEL_CACHE_SECONDS`` (:func:`active_version`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
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


#: Model classes (as ModelVersion.kind names them) -> the dotted path of a loader of what
#: serves them: an object with ``user_vector``, ``user_map``, ``vector_dim`` and ``version``.
SERVING_LOADERS: dict[str, str] = {
    "shop_recs.recsys.hybrid.model.HybridRecommender": ("shop_recs.recsys.hybrid.serving.load"),
    "shop_recs.recsys.hybrid.HybridRecommender": ("shop_recs.recsys.hybrid.serving.load"),
}

_cache_lock = threading.Lock()
_cache: dict[str, Any] = {}
_serving_cache: dict[str, Any] = {}
_version_cache: dict[str, Any] = {}


def _missing(version: ModelVersion) -> bool:
    return not version.artefact or not Path(version.artefact, "config.json").is_file()


def _missing_error(version: ModelVersion) -> FileNotFoundError:
    return FileNotFoundError(
        f"The artefact of model {version.pk} is missing ({version.artefact!r}); "
        "train again (python manage.py recs_train) or set SHOP_RECS['MODEL_DIR']."
    )


def load_model(version: ModelVersion) -> Any:
    """The full model of ``version`` (torch for the hybrid model), loaded once per process."""
    key = f"{version.pk}:{version.artefact}"
    with _cache_lock:
        if _cache.get("key") != key:
            if _missing(version):
                raise _missing_error(version)
            model = version_class(version).load(version.artefact, device="cpu")
            _cache.update(key=key, model=model)
        return _cache["model"]


def load_serving_model(version: ModelVersion) -> Any:
    """What serves ``version`` at request time: its class's serving loader
    (:data:`SERVING_LOADERS`), else the full model; loaded once per process."""
    loader = SERVING_LOADERS.get(version.kind)
    if loader is None:
        return load_model(version)
    key = f"{version.pk}:{version.artefact}"
    with _cache_lock:
        if _serving_cache.get("key") != key:
            if _missing(version):
                raise _missing_error(version)
            _serving_cache.update(key=key, model=import_string(loader)(version.artefact))
        return _serving_cache["model"]


def active_version() -> ModelVersion | None:
    """The active model version, looked up at most once per ``ACTIVE_MODEL_CACHE_SECONDS`` in
    this process (a save or delete of a version in this process clears it at once; other
    processes see an activation within that many seconds)."""
    ttl = float(recs_settings.ACTIVE_MODEL_CACHE_SECONDS or 0)
    now = time.monotonic()
    if ttl > 0:
        cached = _version_cache.get("entry")
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
    version = ModelVersion.objects.filter(is_active=True).first()
    if ttl > 0:
        _version_cache["entry"] = (now, version)
    return version


def clear_active_version(**kwargs: Any) -> None:
    _version_cache.pop("entry", None)


post_save.connect(clear_active_version, sender=ModelVersion, dispatch_uid="shop_recs.active_v")
post_delete.connect(clear_active_version, sender=ModelVersion, dispatch_uid="shop_recs.active_d")


def active_model() -> tuple[ModelVersion, Any] | None:
    """The active version and its full model (for computing item vectors); None when there is
    none or it cannot load."""
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return None
    try:
        return version, load_model(version)
    except Exception:
        logger.exception("the active model %s cannot be loaded", version.pk)
        return None


def serving_model() -> tuple[ModelVersion, Any] | None:
    """The active version and what serves it (:func:`load_serving_model`); None when there is
    none or it cannot load (serving then falls back to content similarity and popularity)."""
    version = active_version()
    if version is None:
        return None
    try:
        return version, load_serving_model(version)
    except Exception:
        logger.exception("the active model %s cannot be loaded", version.pk)
        return None
