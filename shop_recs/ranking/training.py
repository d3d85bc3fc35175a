"""Training: a new model version from the interactions and stored embeddings, evaluated on a
held-out slice, saved as an artefact, and activated when it is not worse than the active one.

With ``MODEL_SELECTION`` (the default) the model is chosen per shop: ``recsys.selection``
searches the families (hybrid, EASE + content, a blend) on a validation split of the shop's
events within ``TRAIN_BUDGET_SECONDS`` and refits the winner on every event; its validation
figures are the version's metrics and the search is stored on the version (``selection``).

The model lives in ``recsys`` (pure torch); this module runs it on the catalogue's data
(``ranking.dataset``) and records the run on a :class:`ModelVersion`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from shop_recs.catalog import signals
from shop_recs.catalog.models import Interaction, ModelVersion
from shop_recs.conf import dotted_path, recs_settings
from shop_recs.ranking.activation import model_activate
from shop_recs.ranking.dataset import CatalogFeatures, TrainingError, training_dataset
from shop_recs.ranking.registry import model_class, model_dir
from shop_recs.recsys.base import Dataset
from shop_recs.recsys.baselines import PopularityRecommender
from shop_recs.recsys.evaluation import evaluate, holdout

logger = logging.getLogger(__name__)


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


def _fit(model: Any, dataset: Dataset, progress: bool, budget: float | None) -> Any:
    """``model.fit``, with a wall-clock budget when the model takes one."""
    if budget is not None and "time_budget" in inspect.signature(model.fit).parameters:
        return model.fit(dataset, progress=progress, time_budget=max(budget, 1e-3))
    return model.fit(dataset, progress=progress)


def _budget() -> float | None:
    value = recs_settings.TRAIN_BUDGET_SECONDS
    return float(value) if value else None


def _evaluate(
    model_cls: type,
    params: dict[str, Any],
    dataset: Dataset,
    progress: bool,
    budget: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit on all but a held-out slice of the positives and score that slice (with popularity
    on the same slice for reference)."""

    train, split = holdout(
        dataset, int(recs_settings.TRAIN_SEED), float(recs_settings.TRAIN_EVAL_FRACTION)
    )
    if recs_settings.TRAIN_REFIT_ALL and _supports(model_cls, params, "refit"):
        # the final fit on everything reuses this run's epoch choice: no second refit here
        params = {**params, "refit": False}
    model = _fit(model_cls(**params), train, progress, budget)
    if not len(split.test_users):
        return model, {}
    split = _sampled(split, recs_settings.TRAIN_EVAL_USERS_MAX)
    metrics: dict[str, Any] = evaluate(model, split, ks=(10, 20))
    popular = evaluate(PopularityRecommender().fit(train), split, ks=(10, 20))
    metrics["popularity"] = {k: popular[k] for k in ("recall@10", "ndcg@10", "recall@20")}
    return model, metrics


def _sampled(split: Any, limit: int | None) -> Any:
    """At most ``limit`` test users (a fixed random sample): ranking every test user against
    the whole catalogue costs users x items, the largest share of a run at scale."""
    if not limit or split.n_test_users <= int(limit):
        return split
    rng = np.random.default_rng(int(recs_settings.TRAIN_SEED))
    keep = np.sort(rng.choice(split.n_test_users, int(limit), replace=False))
    return dataclasses.replace(
        split,
        test_users=split.test_users[keep],
        relevant=[split.relevant[j] for j in keep],
        histories=[split.histories[j] for j in keep],
        known_user=split.known_user[keep],
        exclude=[split.exclude[j] for j in keep],
    )


def training_request(*, force: bool = False, note: str = "") -> None:
    """Ask for a training run in the background (workers subscribe), after commit."""

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
    selecting = bool(recs_settings.MODEL_SELECTION)
    if not selecting:
        params.setdefault("seed", int(recs_settings.TRAIN_SEED))
    version = ModelVersion.objects.create(
        kind=SELECTING if selecting else dotted_path(model_class()),
        params=params,
        note=note[:500],
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
        if selecting:
            budget = _budget() or 180.0
            on_progress(0.1, f"model {version.pk}: selecting a model within {budget:.0f} s")
            model, metrics, selection = _select(dataset, params, budget, progress)
            version.selection = selection
            version.kind = dotted_path(type(model))
            params = _jsonable(selection["chosen"].get("params") or {})
            history = _history_of(model, "final")
        else:
            model_cls = model_class()
            on_progress(0.1, f"model {version.pk}: training and evaluating on a held-out slice")
            budget = _budget()
            deadline = time.perf_counter() + budget if budget else None
            share = budget / 2 if budget and recs_settings.TRAIN_REFIT_ALL else budget
            model, metrics = _evaluate(model_cls, params, dataset, progress, share)
            # the evaluation run's epochs carry the validation metrics (the admin charts them)
            history = _history_of(model, "evaluation")
            if recs_settings.TRAIN_REFIT_ALL:
                on_progress(0.55, f"model {version.pk}: training on all events")
                left = deadline - time.perf_counter() if deadline is not None else None
                model = _fit(model_cls(**_refit_params(model, params)), dataset, progress, left)
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
        version.dim = int(model.vector_dim)
        version.params = _jsonable({**params, **_config_of(model)})
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


#: ``kind`` of a version while model selection runs (the chosen class replaces it).
SELECTING = "model selection"


def _select(
    dataset: Dataset, params: dict[str, Any], budget: float, progress: bool
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Model selection on the shop's own events (``recsys.selection``): the winner refitted on
    every positive, its validation figures as the version's metrics (the activation check
    compares them), and what the search tried (stored on the version, shown in the admin)."""
    from shop_recs.recsys.selection import select_model

    selection = select_model(
        dataset,
        budget_seconds=budget,
        seed=int(recs_settings.TRAIN_SEED),
        progress=progress,
        families=list(families) if (families := recs_settings.MODEL_FAMILIES) else None,
        base_params=params or None,
    )
    chosen = _jsonable(selection.chosen)
    validation = dict(chosen.get("validation") or {})
    metrics = {name: value for name, value in validation.items() if _is_figure(value)}
    # figures per protocol or a reference stay nested
    metrics.update({name: value for name, value in validation.items() if isinstance(value, dict)})
    if metrics and "popularity" not in metrics and selection.reference:
        metrics["popularity"] = _jsonable(selection.reference)
    stored = {
        "budget_seconds": budget,
        "seconds": round(float(selection.seconds), 3),
        "chosen": chosen,
        "table": _jsonable(list(selection.table)),
    }
    return selection.model, metrics, stored


def _is_figure(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars, tuples, non-finite floats: the JSON
    fields and the admin read them back)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


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


def selection_summary(version: ModelVersion) -> str:
    """`` (family X chosen of N candidates in S s)`` for a version from model selection, else
    ``""``: what the command's and the job's summary lines name."""
    selection = version.selection or {}
    chosen = selection.get("chosen") or {}
    if not chosen:
        return ""
    table = selection.get("table") or []
    seconds = selection.get("seconds")
    took = f" in {float(seconds):.0f} s" if isinstance(seconds, int | float) else ""
    return f" (family {chosen.get('family', '?')} chosen of {len(table)} candidates{took})"


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
