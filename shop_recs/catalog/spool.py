"""A durable append-only spool of small JSON records, drained in batches by one reader at a time.

Serving appends what it served (exposures) and tracking what shoppers did (clicks, cart adds,
purchases) here, cheaply and off the database; :func:`drain` hands the records to a writer in
batches (``shop_recs.catalog.services.experiments.flush``). The records outlive the process
that wrote them, so a restart loses nothing that was appended:

- ``SHOP_RECS["EXPERIMENT_SPOOL"]`` = ``"redis://..."``: a Redis list (every web process and
  server shares it). A drain reads a batch, writes it, then trims it: a crash in between
  replays the batch, which the writer ignores (it writes idempotently).
- otherwise a directory (default ``<DATA_DIR>/experiments-spool``; give a path shared by all
  web processes of the host): appends go to ``spool.jsonl`` under an exclusive ``flock``; a
  drain renames the file away under that lock, writes it, then deletes it. A file left by a
  crashed drain is drained first next time. A line cut short by a crash mid-write is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from shop_recs.conf import recs_settings

logger = logging.getLogger(__name__)

Handler = Callable[[list[dict[str, Any]]], None]
BATCH = 5000
REDIS_KEY = "shop_recs:experiments:spool"


def _location() -> str:
    configured = recs_settings.EXPERIMENT_SPOOL
    if configured:
        return str(configured)
    base = getattr(settings, "DATA_DIR", None) or Path(settings.BASE_DIR) / ".data"
    return str(Path(base) / "experiments-spool")


def _is_redis(location: str) -> bool:
    return location.startswith(("redis://", "rediss://", "unix://"))


# --------------------------------------------------------------------------- redis

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _redis(url: str) -> Any:
    with _clients_lock:
        if url not in _clients:
            import redis

            _clients[url] = redis.Redis.from_url(url, socket_timeout=5)
        return _clients[url]


def _redis_append(url: str, lines: list[str]) -> None:
    _redis(url).rpush(REDIS_KEY, *lines)


def _redis_drain(url: str, handler: Handler, batch: int, wait: bool) -> int:
    client = _redis(url)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 300
    while not client.set(f"{REDIS_KEY}:lock", token, nx=True, ex=300):
        if not wait or time.monotonic() > deadline:
            return 0  # another process is draining
        time.sleep(0.05)
    done = 0
    try:
        while True:
            raw = client.lrange(REDIS_KEY, 0, batch - 1)
            if not raw:
                break
            handler(_parse(raw))
            client.ltrim(REDIS_KEY, len(raw), -1)
            done += len(raw)
            if len(raw) < batch:
                break
    finally:
        if client.get(f"{REDIS_KEY}:lock") == token.encode():
            client.delete(f"{REDIS_KEY}:lock")
    return done


def _redis_pending(url: str) -> int:
    return int(_redis(url).llen(REDIS_KEY))


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def _locked(path: Path, mode: str, *, block: bool = True) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        flags = fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB)
        try:
            fcntl.flock(fh.fileno(), flags)
        except BlockingIOError:
            yield None
            return
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _file_append(directory: Path, lines: list[str]) -> None:
    path = directory / "spool.jsonl"
    for _ in range(10):
        with _locked(path, "a") as fh:
            # a drain renamed the file between our open and our lock: write to the new one
            try:
                if os.fstat(fh.fileno()).st_ino != os.stat(path).st_ino:
                    continue
            except FileNotFoundError:
                continue
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            return
    raise OSError(f"could not append to the spool {path}")


def _file_drain(directory: Path, handler: Handler, batch: int, wait: bool) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    done = 0
    with _locked(directory / ".drain.lock", "a", block=wait) as guard:
        if guard is None:
            return 0  # another process is draining
        path = directory / "spool.jsonl"
        if path.exists() and path.stat().st_size:
            with _locked(path, "a"):
                path.rename(directory / f"spool.{time.time_ns()}.{os.getpid()}.taken")
        for taken in sorted(directory.glob("spool.*.taken")):
            with open(taken, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
            for start in range(0, len(lines), batch):
                chunk = lines[start : start + batch]
                handler(_parse(chunk))
                done += len(chunk)
            taken.unlink()
    return done


def _file_pending(directory: Path) -> int:
    count = 0
    for path in [directory / "spool.jsonl", *directory.glob("spool.*.taken")]:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
            count += sum(1 for _ in fh)
    return count


# --------------------------------------------------------------------------- interface


def _parse(raw: list[Any]) -> list[dict[str, Any]]:
    out = []
    for line in raw:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            logger.warning("shop_recs: skipping a damaged spool record %.80r", line)
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def append(records: list[dict[str, Any]]) -> None:
    """Append records (JSON-able dicts) durably. Raises on failure (the caller logs)."""
    if not records:
        return
    lines = [json.dumps(r, separators=(",", ":"), default=str) for r in records]
    location = _location()
    if _is_redis(location):
        _redis_append(location, lines)
    else:
        _file_append(Path(location), lines)


def drain(handler: Handler, *, batch: int = BATCH, wait: bool = False) -> int:
    """Hand every spooled record to ``handler`` in batches (oldest first) and forget those it
    took; returns how many. A batch whose handler raises stays in the spool. One process
    drains at a time: another one returns 0 at once, or with ``wait`` waits for the first to
    finish and then drains what is left (so that what was spooled before the call is written
    when it returns)."""
    location = _location()
    if _is_redis(location):
        return _redis_drain(location, handler, batch, wait)
    return _file_drain(Path(location), handler, batch, wait)


def pending() -> int:
    """Records waiting in the spool."""
    location = _location()
    if _is_redis(location):
        return _redis_pending(location)
    return _file_pending(Path(location))
