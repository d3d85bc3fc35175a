"""The plugin's periodic jobs, for celery beat: the standalone service uses them, and a shop
adds them to its own Celery app's schedule::

    from shop_recs.workers.schedule import beat_schedule

    app.conf.beat_schedule = {**app.conf.beat_schedule, **beat_schedule(retrain_seconds=86400)}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shop_recs.workers.routing import TASKS, queue_of


def beat_schedule(
    *,
    stats_seconds: float | None = 3600,
    retrain_seconds: float | None = None,
    sync_seconds: float | None = None,
    queues: Mapping[str, str | None] | None = None,
    experiments_seconds: float | None = 30,
) -> dict[str, dict[str, Any]]:
    """Entries for ``app.conf.beat_schedule``; None or 0 leaves a job out.

    - ``stats_seconds``: refresh every item's popularity statistics (repairs what a lost task
      left stale; events refresh their items' statistics anyway);
    - ``retrain_seconds``: train a new model, evaluate it, activate it when not worse;
    - ``sync_seconds``: reconcile the items with the shop's products (``recs_sync``), which
      catches up on product changes a killed process had not handed out;
    - ``queues``: kind -> queue (what ``SHOP_RECS["TASK_QUEUES"]`` holds, passed in because a
      settings module cannot read the plugin's settings object yet): each entry is sent to its
      kind's queue; None or a kind without a queue: the app's routes and default queue.
    - ``experiments_seconds``: write the experiments' spooled lists and events (the web
      processes also do it every ``EXPERIMENT_FLUSH_SECONDS``).
    """
    jobs = {
        "shop-recs-refresh-item-stats": (f"{TASKS}.refresh_all_item_stats", stats_seconds),
        "shop-recs-train-model": (f"{TASKS}.train_model", retrain_seconds),
        "shop-recs-sync-products": (f"{TASKS}.sync_products", sync_seconds),
        "shop-recs-flush-experiments": (f"{TASKS}.flush_experiments", experiments_seconds),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, (task, seconds) in jobs.items():
        if not seconds or float(seconds) <= 0:
            continue
        out[name] = {"task": task, "schedule": float(seconds)}
        queue = queue_of(task, queues or {})
        if queue:
            out[name]["options"] = {"queue": queue}
    return out
