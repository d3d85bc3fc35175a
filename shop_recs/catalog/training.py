"""Training, activation and the hybrid item vectors of the active model (services).

The model lives in ``recsys`` (pure torch). This module turns catalogue rows into its
:class:`~recsys.base.Dataset`, trains and evaluates it, stores a :class:`ModelVersion` with its
artefact, writes the active model's item vectors to pgvector (space ``hybrid``, inner product)
and keeps them current for items encoded after training, without retraining.

Shoppers are keyed by the customer's external id, or ``session:<id>`` for anonymous sessions.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from shop_recs.catalog.conf import recs_settings
from shop_recs.catalog.models import Interaction, Item, ItemEmbedding, ModelVersion, Space
from shop_recs.catalog.vectors import ensure_index
from shop_recs.recsys.base import Dataset, ItemFeatures

logger = logging.getLogger(__name__)

SESSION_PREFIX = "session:"
HYBRID_ENCODER = "hybrid"


class TrainingError(Exception):
    """Training cannot run (too little data, nothing encoded); the message says what to do."""


def user_key(*, customer_external_id: str | None, session_id: str = "") -> str | None:
    """The model's id of a shopper: the customer's external id, else ``session:<id>``."""
    if customer_external_id:
        return customer_external_id
    return f"{SESSION_PREFIX}{session_id}" if session_id else None


def model_dir() -> Path:
    configured = recs_settings.MODEL_DIR
    if configured:
        return Path(configured)
    base = getattr(settings, "DATA_DIR", None) or Path(settings.BASE_DIR) / ".data"
    return Path(base) / "models"


def model_class() -> Any:
    return import_string(recs_settings.MODEL_CLASS)


# --------------------------------------------------------------------------- features


def _stored_vectors(space: str, item_ids: Sequence[int] | None) -> dict[int, np.ndarray]:
    qs = ItemEmbedding.objects.filter(space=space)
    if item_ids is not None:
        qs = qs.filter(item_id__in=list(item_ids))
    return {
        item_id: np.asarray(vector, dtype=np.float32)
        for item_id, vector in qs.values_list("item_id", "vector").iterator(chunk_size=2000)
    }


def _majority_dim(vectors: dict[int, np.ndarray]) -> int | None:
    dims = Counter(len(v) for v in vectors.values())
    return dims.most_common(1)[0][0] if dims else None


@dataclass
class CatalogFeatures:
    """Features of the items that have a usable text vector, row i = ``item_ids[i]``."""

    item_ids: list[int]
    external_ids: list[str]
    features: ItemFeatures


def catalog_features(
    *,
    item_ids: Sequence[int] | None = None,
    text_dim: int | None = None,
    image_dim: int | None = None,
    model: Any = None,
) -> CatalogFeatures:
    """Content features of items from their stored text and image vectors.

    Items without a text vector (of ``text_dim``, default the most common) are left out: they
    are not encoded yet. With ``model``, category/brand codes follow its vocabulary (new names
    get 0); without, the vocabulary is built from these items (training).
    """
    text = _stored_vectors(Space.TEXT, item_ids)
    text_dim = text_dim or _majority_dim(text)
    rows = Item.objects.order_by("pk")
    if item_ids is not None:
        rows = rows.filter(pk__in=list(item_ids))
    items = [
        (pk, ext, category, brand)
        for pk, ext, category, brand in rows.values_list("pk", "external_id", "category", "brand")
        if pk in text and len(text[pk]) == text_dim
    ]
    pks = [i[0] for i in items]
    image = _stored_vectors(Space.IMAGE, pks) if pks else {}
    image_dim = image_dim if image_dim is not None else (_majority_dim(image) or 0)
    n = len(items)
    text_m = np.zeros((n, text_dim or 0), dtype=np.float32)
    image_m = np.zeros((n, image_dim), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    for row, pk in enumerate(pks):
        text_m[row] = text[pk]
        vec = image.get(pk)
        if image_dim and vec is not None and len(vec) == image_dim:
            image_m[row], mask[row] = vec, True
    categories = [i[2] for i in items]
    brands = [i[3] for i in items]
    if model is not None:
        category_names, brand_names = list(model.category_names), list(model.brand_names)
        category_codes = model.codes("category", categories)
        brand_codes = model.codes("brand", brands)
    else:
        category_names = ["", *sorted({c for c in categories if c})]
        brand_names = ["", *sorted({b for b in brands if b})]
        cat_index = {name: i for i, name in enumerate(category_names)}
        brand_index = {name: i for i, name in enumerate(brand_names)}
        category_codes = np.array([cat_index.get(c, 0) for c in categories], dtype=np.int64)
        brand_codes = np.array([brand_index.get(b, 0) for b in brands], dtype=np.int64)
    features = ItemFeatures(
        text=text_m,
        image=image_m if image_dim else None,
        image_mask=mask if image_dim else None,
        category=category_codes,
        brand=brand_codes,
        category_names=category_names,
        brand_names=brand_names,
    )
    return CatalogFeatures(pks, [i[1] for i in items], features)


def training_dataset() -> tuple[Dataset, CatalogFeatures]:
    """Every positive interaction on an encoded item, in time order, with the item features."""
    catalog = catalog_features()
    if not catalog.item_ids:
        raise TrainingError(
            "No item has a text vector yet: encode the catalogue first "
            "(python manage.py recs_encode)."
        )
    by_pk = dict(zip(catalog.item_ids, catalog.external_ids, strict=True))

    def events() -> Iterable[tuple[str, str, str, float, float]]:
        rows = (
            Interaction.objects.filter(item_id__in=catalog.item_ids)
            .order_by("occurred_at", "id")
            .values_list(
                "customer__external_id", "session_id", "item_id", "event", "value", "occurred_at"
            )
        )
        for customer, session, item_id, event, value, when in rows.iterator(chunk_size=5000):
            user = user_key(customer_external_id=customer, session_id=session)
            if user is not None:
                yield user, by_pk[item_id], event, float(value), when.timestamp()

    dataset = Dataset.from_events(
        events(),
        item_ids=catalog.external_ids,
        item_features=catalog.features,
        weights=recs_settings.EVENT_WEIGHTS,
    )
    return dataset, catalog


# --------------------------------------------------------------------------- training


def _counts(dataset: Dataset, catalog: CatalogFeatures) -> dict[str, int]:
    return {
        "users": len(np.unique(dataset.users)),
        "items": dataset.n_items,
        "items_with_events": len(np.unique(dataset.items)),
        "items_with_image": int(catalog.features.image_mask.sum())
        if catalog.features.image_mask is not None
        else 0,
        "positives": len(dataset),
        "interactions": Interaction.objects.count(),
    }


def _evaluate(
    model_cls: type, params: dict[str, Any], dataset: Dataset, progress: bool
) -> tuple[Any, dict[str, Any]]:
    """Fit on all but a held-out slice of the positives and score that slice (with popularity
    on the same slice for reference)."""
    from shop_recs.recsys.baselines import PopularityRecommender
    from shop_recs.recsys.evaluation import evaluate, holdout

    train, split = holdout(
        dataset, int(recs_settings.TRAIN_SEED), float(recs_settings.TRAIN_EVAL_FRACTION)
    )
    if recs_settings.TRAIN_REFIT_ALL and _supports(model_cls, params, "refit"):
        # the final fit on everything reuses this run's epoch choice: no second refit here
        params = {**params, "refit": False}
    model = model_cls(**params).fit(train, progress=progress)
    if not len(split.test_users):
        return model, {}
    metrics: dict[str, Any] = evaluate(model, split, ks=(10, 20))
    popular = evaluate(PopularityRecommender().fit(train), split, ks=(10, 20))
    metrics["popularity"] = {k: popular[k] for k in ("recall@10", "ndcg@10", "recall@20")}
    return model, metrics


def training_request(*, force: bool = False, note: str = "") -> None:
    """Ask for a training run in the background (workers subscribe), after commit."""
    from shop_recs.catalog import signals

    transaction.on_commit(
        lambda: signals.training_requested.send(sender=ModelVersion, force=force, note=note)
    )


class _TrainingLock:
    """One training at a time across processes: a PostgreSQL advisory lock (session level)."""

    KEY = 0x5EC5_7A11

    def __enter__(self) -> _TrainingLock:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.KEY])
            if not cursor.fetchone()[0]:
                raise TrainingError("Another training run is in progress; wait for it to finish.")
        return self

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [self.KEY])


def model_train(
    *,
    force: bool = False,
    params: dict[str, Any] | None = None,
    progress: bool = False,
    note: str = "",
    activate: bool = True,
    on_progress: Callable[[float, str], Any] | None = None,
) -> ModelVersion:
    """Train a new model version from the interactions and stored embeddings, evaluate it on a
    held-out slice, save its artefact, and activate it when it is not worse than the active
    version (``ACTIVATION_METRIC`` within ``ACTIVATION_TOLERANCE``) or when ``force``.

    The version row exists from the start (status ``training``), so the admin sees the run;
    a failure is recorded on it (status ``failed`` + error) and re-raised. ``on_progress``
    (share done 0..1, what runs now) hears of each stage (background jobs show it).
    """
    with _TrainingLock():
        return _model_train(
            force=force,
            params=params,
            progress=progress,
            note=note,
            activate=activate,
            on_progress=on_progress or (lambda share, message: None),
        )


def _model_train(
    *,
    force: bool,
    params: dict[str, Any] | None,
    progress: bool,
    note: str,
    activate: bool,
    on_progress: Callable[[float, str], Any],
) -> ModelVersion:
    params = {**dict(recs_settings.MODEL_PARAMS), **(params or {})}
    params.setdefault("seed", int(recs_settings.TRAIN_SEED))
    version = ModelVersion.objects.create(
        kind=recs_settings.MODEL_CLASS, params=params, note=note[:500]
    )
    started = time.perf_counter()
    try:
        on_progress(0.02, f"model {version.pk}: reading interactions and item vectors")
        dataset, catalog = training_dataset()
        minimum = int(recs_settings.TRAIN_MIN_INTERACTIONS)
        if len(dataset) < minimum:
            raise TrainingError(
                f"Only {len(dataset)} positive events on encoded items; at least {minimum} are "
                "needed to train. Record more events (POST /api/v1/events/) or import a bundle."
            )
        model_cls = model_class()
        on_progress(0.1, f"model {version.pk}: training and evaluating on a held-out slice")
        model, metrics = _evaluate(model_cls, params, dataset, progress)
        # the evaluation run's epochs carry the validation metrics (the admin charts them)
        history = _history_of(model, "evaluation")
        if recs_settings.TRAIN_REFIT_ALL:
            on_progress(0.55, f"model {version.pk}: training on all events")
            model = model_cls(**_refit_params(model, params)).fit(dataset, progress=progress)
            history += _history_of(model, "final")
        on_progress(0.9, f"model {version.pk}: saving")
        path = model_dir() / str(version.pk)
        if path.exists():
            shutil.rmtree(path)
        model.save(path)
        version.status = ModelVersion.Status.READY
        version.metrics = metrics
        version.history = history
        version.data_counts = _counts(dataset, catalog)
        version.artefact = str(path)
        version.model_version = str(getattr(model, "version", "") or "")
        version.dim = int(model.all_item_vectors().shape[1])
        version.params = {**params, **_config_of(model)}
    except Exception as exc:
        version.status = ModelVersion.Status.FAILED
        version.error = f"{type(exc).__name__}: {exc}"[:5000]
        version.duration_seconds = time.perf_counter() - started
        version.finished_at = timezone.now()
        version.save()
        raise
    version.duration_seconds = time.perf_counter() - started
    version.finished_at = timezone.now()
    version.save()
    if activate:
        ok, reason = activation_check(version)
        if ok or force:
            on_progress(0.95, f"model {version.pk}: activating")
            model_activate(version=version, model=model)
        else:
            version.note = (version.note + " " if version.note else "") + reason
            version.save(update_fields=["note"])
    return version


def _history_of(model: Any, run: str) -> list[dict[str, Any]]:
    return [{**h, "run": run} for h in getattr(model, "training_history_", []) or []]


def _supports(model_cls: type, params: dict[str, Any], name: str) -> bool:
    return hasattr(getattr(model_cls(**params), "config", None), name)


def _refit_params(evaluated: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the final fit on all positives: the number of epochs the evaluation
    run's early stopping chose, no validation slice (the hybrid model's own ``refit`` would
    otherwise select epochs a second time)."""
    scored = [h for h in getattr(evaluated, "training_history_", []) or [] if "recall@10" in h]
    if not scored or not _supports(type(evaluated), params, "validation_fraction"):
        return params
    best = max(scored, key=lambda h: (h["recall@10"], -h["epoch"]))
    return {**params, "validation_fraction": 0.0, "refit": False, "max_epochs": best["epoch"]}


def _config_of(model: Any) -> dict[str, Any]:
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}


def activation_check(version: ModelVersion) -> tuple[bool, str]:
    """Whether ``version`` may replace the active one: not worse on the activation metric."""
    active = ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).first()
    if active is None:
        return True, "no active model"
    metric = str(recs_settings.ACTIVATION_METRIC)
    new, old = version.metrics.get(metric), active.metrics.get(metric)
    if old is None:
        return True, f"the active model {active.pk} has no {metric}"
    if new is None:
        return False, f"not activated: no {metric} to compare with model {active.pk}"
    floor = float(old) * (1 - float(recs_settings.ACTIVATION_TOLERANCE))
    if float(new) >= floor:
        return True, f"{metric} {new:.4f} >= {floor:.4f}"
    return False, (
        f"not activated: {metric} {new:.4f} is worse than the active model {active.pk}'s "
        f"{old:.4f} (use --force / the activate action to override)"
    )


# --------------------------------------------------------------------------- activation


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


def hybrid_vectors_write(
    *, model: Any, version: ModelVersion, item_ids: Sequence[int] | None = None
) -> int:
    """Write the item tower's vectors of these items (default: every encoded item) to the
    ``hybrid`` space. Items the model was trained on include their ID part; others are
    content-only, which is how an item created after training is recommended right away."""
    dims = getattr(model, "_dims", {}) or {}
    catalog = catalog_features(
        item_ids=item_ids,
        text_dim=int(dims.get("text_dim") or 0) or None,
        image_dim=int(dims.get("image_dim") or 0),
        model=model,
    )
    if not catalog.item_ids:
        return 0
    vectors = model.item_vectors(catalog.features, catalog.external_ids)
    dim = int(vectors.shape[1])
    ensure_index(Space.HYBRID, dim)
    now = timezone.now()
    rows = [
        ItemEmbedding(
            item_id=pk,
            space=Space.HYBRID,
            dim=dim,
            vector=vec.astype(np.float32),
            encoder=HYBRID_ENCODER,
            encoder_version=str(version.model_version or version.pk),
            content_hash=f"model-{version.pk}",
            updated_at=now,
        )
        for pk, vec in zip(catalog.item_ids, vectors, strict=True)
    ]
    for start in range(0, len(rows), 2000):
        ItemEmbedding.objects.bulk_create(
            rows[start : start + 2000],
            update_conflicts=True,
            unique_fields=["item", "space"],
            update_fields=["dim", "vector", "encoder", "encoder_version", "content_hash",
                           "updated_at"],
        )  # fmt: skip
    return len(rows)


def model_activate(*, version: ModelVersion, model: Any = None) -> int:
    """Make ``version`` the active model: write its item vectors, then switch, atomically for
    readers (they see the old vectors and model or the new ones). Returns vectors written."""
    if version.status != ModelVersion.Status.READY:
        raise TrainingError(f"Model {version.pk} is {version.status}, not ready: cannot activate.")
    model = model if model is not None else load_model(version)
    with transaction.atomic():
        written = hybrid_vectors_write(model=model, version=version)
        ItemEmbedding.objects.filter(space=Space.HYBRID).exclude(
            content_hash=f"model-{version.pk}"
        ).delete()
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    logger.info("activated model %s (%d item vectors)", version.pk, written)
    return written


def model_rollback() -> ModelVersion:
    """Activate the version that was active before the current one."""
    current = ModelVersion.objects.filter(is_active=True).first()
    previous = (
        ModelVersion.objects.filter(status=ModelVersion.Status.READY, activated_at__isnull=False)
        .exclude(pk=getattr(current, "pk", None))
        .order_by("-activated_at")
        .first()
    )
    if previous is None:
        raise TrainingError("No earlier activated model to roll back to.")
    model_activate(version=previous)
    return previous


def hybrid_vectors_refresh(*, item_ids: Sequence[int]) -> int:
    """After items were (re-)encoded: their hybrid vectors from the active model's item tower
    (no retraining). Without an active model, nothing to do."""
    found = active_model()
    if found is None or not item_ids:
        return 0
    version, model = found
    return hybrid_vectors_write(model=model, version=version, item_ids=item_ids)
