"""The sequence family as a candidate of per-shop model selection (``recsys.selection``).

``selection.EXTRA_FAMILIES`` names this module; :func:`search` adds the order-aware candidate
to the search table (scored on the same validation protocols as every family: warm, next,
cold-users, cold-items, so a shop whose data carries no order signal keeps the simpler
order-blind model), and :func:`refit` trains the winner on all the data.
"""

from __future__ import annotations

import time
from typing import Any

from ..base import VectorRecommender

FAMILY = "sequence"
#: A sequence candidate needs at least this many seconds of budget left (else "skipped").
MIN_SECONDS = 15.0
#: Share of the remaining budget one sequence fit may use (the refit of the winner and the
#: other families need the rest).
BUDGET_SHARE = 0.3
#: Keys of the app's ``MODEL_PARAMS`` (hybrid overrides) that apply to this family too.
RUNTIME_KEYS = ("device", "num_threads")
#: Config overrides of every sequence candidate (empty: the defaults of ``SequenceConfig``).
PARAMS: dict[str, Any] = {}


def default_params(search: Any) -> dict[str, Any]:
    """The sequence candidate's config: ``PARAMS`` over the defaults, the search's seed and
    the runtime keys of the app's hybrid overrides."""
    runtime = {k: search.base[k] for k in RUNTIME_KEYS if k in search.base}
    return {"seed": search.seed, **PARAMS, **runtime}


def _refit_reserve(search: Any, val: Any) -> float:
    """Seconds to keep for refitting the best hybrid on all the data (as its search does), so
    this extra candidate never starves the refit of the families searched before it."""
    per_fit = max(
        (
            float(r.get("epoch_seconds") or 0.0) * int(r.get("epochs") or 0)
            for r in search.table
            if r["family"] == "hybrid" and r["status"] in ("ok", "timeout")
        ),
        default=0.0,
    )
    return 1.2 * per_fit * len(search.dataset) / max(len(val.train), 1)


def search(search: Any, val: Any) -> list[dict[str, Any]]:
    from ..selection import _metrics
    from .model import SequenceRecommender

    params = default_params(search)
    spare = search.left() - _refit_reserve(search, val)
    if spare < MIN_SECONDS:
        return [search.add(FAMILY, params, "skipped: budget")]
    deadline = time.monotonic() + spare * BUDGET_SHARE
    tick = time.perf_counter()
    try:
        model = SequenceRecommender(**params).fit(val.train, progress=False, deadline=deadline)
    except Exception as exc:  # a failing candidate must not end the search
        return [search.add(FAMILY, params, f"skipped: {type(exc).__name__}: {exc}"[:300])]
    stopped = any(h.get("stopped") == "deadline" for h in model.training_history_)
    metrics = _metrics(model, val)
    return [
        search.add(
            FAMILY,
            params,
            "timeout" if stopped else "ok",
            time.perf_counter() - tick,
            metrics,
            model,
            {"epochs": model.best_epochs_, "label": "order-aware (SASRec-style)"},
        )
    ]


def refit(search: Any, row: dict[str, Any], val: Any) -> VectorRecommender:
    from .model import SequenceRecommender

    epochs = max(1, int(row.get("epochs") or 1))
    final = {**row["params"], "max_epochs": epochs, "validation_fraction": 0.0}
    tick = time.perf_counter()
    model = SequenceRecommender(**final).fit(
        search.dataset, progress=False, deadline=search.deadline
    )
    search.notes.append(f"final refit on all data: {time.perf_counter() - tick:.1f} s")
    return model
