"""Which Celery queue each of the plugin's tasks goes to: one queue per kind of work.

Kinds (``SHOP_RECS["TASK_QUEUES"]`` maps each to a queue name, None = the app's default queue):

- ``encode``: encoding items, downloading their images, encoding search queries. CPU or GPU
  bound and many small tasks: encode workers scale out over hosts (``worker -Q encode``);
- ``train``: training a model (minutes to hours; a GPU host): one train worker;
- ``maintenance``: item statistics, mirroring and syncing the shop's products, writing the
  experiments' spooled rows: short tasks.

No Django import: the standalone settings build their routes and beat schedule from here at
import time (from their own environment, never from ``recs_settings``, which would cache
``SHOP_RECS`` before the settings module has defined it).
"""

from __future__ import annotations

from collections.abc import Mapping

TASKS = "shop_recs.workers.tasks"

ENCODE, TRAIN, MAINTENANCE = "encode", "train", "maintenance"
KINDS = (ENCODE, TRAIN, MAINTENANCE)

#: The kind of every task of ``shop_recs.workers.tasks``.
TASK_KINDS: dict[str, str] = {
    f"{TASKS}.encode_items": ENCODE,
    f"{TASKS}.encode_item": ENCODE,
    f"{TASKS}.fetch_item_image": ENCODE,
    f"{TASKS}.encode_query": ENCODE,
    f"{TASKS}.train_model": TRAIN,
    f"{TASKS}.activate_model": TRAIN,
    f"{TASKS}.refresh_item_stats": MAINTENANCE,
    f"{TASKS}.refresh_all_item_stats": MAINTENANCE,
    f"{TASKS}.mirror_products": MAINTENANCE,
    f"{TASKS}.sync_products": MAINTENANCE,
    f"{TASKS}.flush_experiments": MAINTENANCE,
}


def queue_of(task_name: str, queues: Mapping[str, str | None]) -> str | None:
    """The queue ``task_name`` goes to under ``queues`` (kind -> queue); None: the default."""
    kind = TASK_KINDS.get(task_name)
    return (queues.get(kind) or None) if kind else None


def task_routes(queues: Mapping[str, str | None]) -> dict[str, dict[str, str]]:
    """``task_routes`` for a Celery app: each task whose kind has a queue is routed there."""
    unknown = set(queues) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown task kinds {sorted(unknown)}: the kinds are {list(KINDS)}")
    routes = {}
    for name in TASK_KINDS:
        queue = queue_of(name, queues)
        if queue:
            routes[name] = {"queue": queue}
    return routes


def parse_queues(value: str) -> dict[str, str | None]:
    """``SHOP_RECS_TASK_QUEUES`` of the standalone service: ``kind=queue`` pairs separated by
    commas (``encode=encode,train=train,maintenance=maintenance``); an empty value or a kind
    left out means the default queue."""
    out: dict[str, str | None] = dict.fromkeys(KINDS)
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, queue = part.partition("=")
        kind, queue = kind.strip(), queue.strip()
        if not sep or kind not in KINDS or not queue:
            raise ValueError(
                f"SHOP_RECS_TASK_QUEUES: {part!r} is not kind=queue with a kind of {list(KINDS)}"
            )
        out[kind] = queue
    return out
