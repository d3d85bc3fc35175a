"""Queue inspection: how many tasks wait for a worker in each of the plugin's queues (the admin
dashboard shows it; ``shop_recs.workers.routing`` says which kind of work goes where).

Redis (``LLEN`` of the queue's lists, as kombu lays them out) or any kombu transport
(a passive ``queue_declare``); never raises: a broker that is down is reported.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from kombu import Connection

from shop_recs.conf import recs_settings
from shop_recs.workers.routing import KINDS


def _safe_url(url: str) -> str:
    """The broker URL without its password."""
    try:
        parts = urlsplit(url)
        if parts.password:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            netloc = f"{parts.username or ''}:***@{host}{port}"
            return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return url.split("://", 1)[0] + "://…"
    return url


def _queue_length(url: str, queue: str) -> int:
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "redis+socket"):
        timeouts = {"socket_timeout": 2, "socket_connect_timeout": 2}
        if scheme == "redis+socket":
            parts = urlsplit(url)
            client = redis.Redis(unix_socket_path=unquote(parts.path), **timeouts)
        else:
            client = redis.Redis.from_url(url, **timeouts)
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
        prefix = str(options.get("global_keyprefix") or "")
        # kombu keeps priority 0 under the queue's name and 3, 6, 9 as "<queue>\x06\x16<n>"
        keys = [f"{prefix}{queue}"] + [f"{prefix}{queue}\x06\x16{p}" for p in (3, 6, 9)]
        try:
            return sum(int(client.llen(key)) for key in keys)
        finally:
            client.close()
    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1)
        return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)


def queues_in_use() -> dict[str, list[str]]:
    """Each queue the plugin's tasks go to, with the kinds of work it takes
    (``SHOP_RECS["TASK_QUEUES"]``; a kind without a queue goes to the default queue)."""
    default = str(getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "") or "celery")
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        queue = recs_settings.TASK_QUEUES.get(kind) or default
        out.setdefault(str(queue), []).append(kind)
    return out


def queue_backlog() -> dict[str, Any]:
    """Tasks waiting in each queue of the plugin (``queues``: name, kinds, size) and in all
    (``size``; ``queue`` names them); never raises (a broker that is down is reported)."""
    in_use = queues_in_use()
    queue = ", ".join(in_use)
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    eager = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
    if eager or not url or url.startswith("memory://"):
        return {"configured": False, "queue": queue}
    info: dict[str, Any] = {"configured": True, "queue": queue, "broker": _safe_url(url)}
    try:
        info["queues"] = [
            {"queue": name, "kinds": kinds, "size": _queue_length(url, name)}
            for name, kinds in in_use.items()
        ]
        info["size"] = sum(q["size"] for q in info["queues"])
    except Exception as exc:  # any transport error: the page still renders
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info
