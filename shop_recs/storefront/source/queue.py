"""The mirroring queue: product changes collected after the shop's commits and mirrored
outside its request.

A product save adds to the shop's request only what it takes to note the product's key after
the commit (the ``bench/mirror.py`` figures). The keys of one process are collected here and
handed out once no change has come for ``MIRROR_DELAY_SECONDS`` (2 by default; at the latest
after ten times that), so a back office that saves a product, then its stock records, images
and categories in separate requests gets the product mirrored — and encoded — once, with all
of it. The batch goes to a Celery worker when a broker is configured (the workers layer takes
:data:`~shop_recs.storefront.signals.mirror_requested`), else it is mirrored by this queue's
own background thread, where encoding (eager tasks without a broker) then runs too.

``MIRROR_DELAY_SECONDS = 0`` mirrors right after each commit in the saving thread (scripts,
tests). What a process had not handed out when it stops is mirrored at exit; a process that is
killed loses it, and ``recs_sync`` (or the periodic sync) catches up.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.db import connections

from shop_recs.conf import recs_settings
from shop_recs.storefront.signals import mirror_requested
from shop_recs.storefront.source.mirror import mirror_products

logger = logging.getLogger(__name__)

#: A batch is handed out at the latest this many delays after its first change.
MAX_WAIT_DELAYS = 10


class MirrorQueue:
    """Product keys and removed external ids waiting to be mirrored (module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pks: dict[Any, None] = {}
        self._removed: dict[str, None] = {}
        self._first = 0.0
        self._last = 0.0
        self._active = 0  # batches being mirrored right now
        self._thread: threading.Thread | None = None

    def add(self, *, pks: Iterable[Any] = (), removed: Iterable[str] = ()) -> None:
        """Note changed products (called after the shop's commit; cheap)."""
        pks, removed = list(pks), list(removed)
        if not pks and not removed:
            return
        delay = float(recs_settings.MIRROR_DELAY_SECONDS)
        if delay <= 0:
            self._hand_out(pks, removed)
            return
        with self._cond:
            now = time.monotonic()
            if not self._pks and not self._removed:
                self._first = now
            self._last = now
            self._pks.update(dict.fromkeys(pks))
            self._removed.update(dict.fromkeys(removed))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="shop_recs-mirror", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._pks) + len(self._removed)

    def _take(self) -> tuple[list[Any], list[str]]:
        with self._cond:
            pks, removed = list(self._pks), list(self._removed)
            self._pks.clear()
            self._removed.clear()
            if pks or removed:
                self._active += 1
            return pks, removed

    def _done(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def drain(self, timeout: float = 60.0) -> None:
        """Mirror what is waiting now, in the calling thread, and wait for a batch the
        background thread is working on (``recs_sync``, process exit, tests)."""
        pks, removed = self._take()
        if pks or removed:
            try:
                self._hand_out(pks, removed)
            finally:
                self._done()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._active and time.monotonic() < deadline:
                self._cond.wait(0.1)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pks and not self._removed:
                    if not self._cond.wait(timeout=60):
                        self._thread = None
                        return  # idle for a minute: the next change starts a new thread
                delay = float(recs_settings.MIRROR_DELAY_SECONDS)
                while True:
                    now = time.monotonic()
                    due = min(self._last + delay, self._first + MAX_WAIT_DELAYS * delay)
                    if now >= due or not (self._pks or self._removed):
                        break
                    self._cond.wait(due - now)
            pks, removed = self._take()
            if not (pks or removed):
                continue  # drained by another thread meanwhile
            try:
                self._hand_out(pks, removed)
            except Exception:  # the thread must survive: later changes still need it
                logger.exception("shop_recs: mirroring %d product(s) failed", len(pks))
            finally:
                # this thread's own database connections: never left open between batches
                connections.close_all()
                self._done()

    @staticmethod
    def _hand_out(pks: list[Any], removed: list[str]) -> None:
        responses = mirror_requested.send_robust(sender=MirrorQueue, pks=pks, removed=removed)
        for _, response in responses:
            if isinstance(response, Exception):
                logger.warning("shop_recs: the mirroring could not be queued: %r", response)
            elif response:
                return  # a worker will do it
        mirror_products(pks=pks, removed=removed)


mirror_queue = MirrorQueue()


@atexit.register
def _flush_at_exit() -> None:
    if mirror_queue.pending():
        logger.info(
            "shop_recs: mirroring %d waiting product(s) before exit", mirror_queue.pending()
        )
        try:
            mirror_queue.drain(timeout=30)
        except Exception:
            logger.exception("shop_recs: waiting products were not mirrored; run recs_sync")
