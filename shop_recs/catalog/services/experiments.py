"""Experiments: who is in which arm, and the log of what was served and what shoppers did.

Assignment (:func:`assignment`): a shopper's key is their customer id (``c:<external id>``),
else their browser's anonymous shopper id (``s:<id>``). The arm is picked by a salted hash:
``bucket = int(sha256(salt + ":" + key)[:16], 16) % 10000``, and the arms own consecutive
ranges of the 10,000 buckets in proportion to their shares (in arm order). The same shopper
gets the same arm in every process and on every server, as long as the salt and the shares
stay the same. A shopper without a key, or on a surface no running experiment covers, is in
no experiment: serving is exactly what it is without experiments.

Logging: :func:`exposure_log` spools every list served inside an experiment, and
:func:`interactions_spool` every click/cart add that names a list (``context.list_id``) and
every purchase, after their transaction commits (``shop_recs.catalog.spool``: a Redis list or
a local file, never the request's database transaction). :func:`flush` writes them in
batches: exposures first, then attributions (:func:`attribute`); it runs from a background
thread of each web process, the ``flush_experiments`` task and ``manage.py
recs_experiments_flush``, and is idempotent.

Attribution (documented in docs/experiments.md): a click or cart add is credited to the list
it names, when the item was in that list; a purchase to the **last** list that showed the item
to the shopper (customer or browser session) within ``EXPERIMENT_ATTRIBUTION_SECONDS`` before
the purchase (``served_at <= purchased_at <= served_at + window``, both ends included).
Every interaction is credited at most once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from shop_recs.catalog import spool
from shop_recs.catalog.models import (
    Arm,
    Attribution,
    Event,
    Experiment,
    Exposure,
    Interaction,
)
from shop_recs.conf import recs_settings

logger = logging.getLogger(__name__)

BUCKETS = 10_000
MAX_REVENUE = Decimal(10) ** 12  # Attribution.revenue holds 14 digits, 2 after the point
ATTRIBUTED_EVENTS = (Event.CLICK, Event.CART, Event.PURCHASE)


# --------------------------------------------------------------------------- assignment


def shopper_key(*, customer_external_id: str | None = None, session_id: str = "") -> str | None:
    """The key a shopper is assigned by: the customer, else the browser's shopper id."""
    if customer_external_id:
        return f"c:{customer_external_id}"
    if session_id:
        return f"s:{session_id}"
    return None


def bucket(salt: str, key: str) -> int:
    """The shopper's bucket in 0..9999 (module docstring)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()
    return int(digest[:16], 16) % BUCKETS


def bucket_bounds(shares: Sequence[float]) -> list[int]:
    """The exclusive upper bucket of each arm: cumulative shares scaled to 10,000."""
    total = float(sum(max(0.0, s) for s in shares))
    if total <= 0:
        return [0] * len(shares)
    bounds, running = [], 0.0
    for share in shares:
        running += max(0.0, share)
        bounds.append(round(running / total * BUCKETS))
    bounds[-1] = BUCKETS
    return bounds


def arm_index(salt: str, key: str, shares: Sequence[float]) -> int:
    """Which arm (index into ``shares``) the shopper ``key`` is in."""
    b = bucket(salt, key)
    for index, bound in enumerate(bucket_bounds(shares)):
        if b < bound:
            return index
    return len(shares) - 1


class RunningExperiment:
    """A snapshot of a running experiment and its arms (what serving needs; cached)."""

    def __init__(self, experiment: Experiment, arms: list[Arm]) -> None:
        self.id = experiment.pk
        self.name = experiment.name
        self.surface = experiment.surface
        self.salt = experiment.salt or experiment.name
        self.starts_at = experiment.starts_at
        self.ends_at = experiment.ends_at
        self.arms = arms
        self.shares = [a.share for a in arms]

    def covers(self, surface: str) -> bool:
        return self.surface in (Experiment.Surface.ALL, surface)

    def is_running(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def arm_for(self, key: str) -> Arm:
        return self.arms[arm_index(self.salt, key, self.shares)]


_lock = threading.Lock()
_cache: tuple[float, list[RunningExperiment]] | None = None


def clear_cache(**kwargs: Any) -> None:
    global _cache
    with _lock:
        _cache = None


def _load() -> list[RunningExperiment]:
    # not yet ended or started later: the date check runs on every use
    now = timezone.now()
    rows = list(
        Experiment.objects.filter(stopped_at__isnull=True)
        .exclude(ends_at__lte=now)
        .prefetch_related("arms__extra_rules")
        .order_by("id")
    )
    found = [RunningExperiment(e, list(e.arms.all())) for e in rows]
    return [e for e in found if e.arms]


def running_experiments(*, now: datetime | None = None) -> list[RunningExperiment]:
    """Experiments running at ``now`` (read once per ``EXPERIMENTS_CACHE_SECONDS``)."""
    global _cache
    now = now or timezone.now()
    ttl = float(recs_settings.EXPERIMENTS_CACHE_SECONDS)
    cached = _cache
    if cached is None or ttl <= 0 or time.monotonic() - cached[0] >= ttl:
        found = _load()
        if ttl > 0:
            with _lock:
                _cache = (time.monotonic(), found)
    else:
        found = cached[1]
    return [e for e in found if e.is_running(now)]


def assignment(
    *, surface: str, customer_external_id: str | None = None, session_id: str = ""
) -> tuple[RunningExperiment, Arm, str] | None:
    """The running experiment covering ``surface``, the shopper's arm in it and their key;
    None when the shopper has no key or no experiment covers the surface."""
    key = shopper_key(customer_external_id=customer_external_id, session_id=session_id)
    if key is None:
        return None
    for experiment in running_experiments():
        if experiment.covers(surface):
            return experiment, experiment.arm_for(key), key
    return None


def _changed(**kwargs: Any) -> None:
    clear_cache()
    transaction.on_commit(clear_cache)


for _model in (Experiment, Arm):
    post_save.connect(
        _changed, sender=_model, dispatch_uid=f"shop_recs.exp_cache_{_model.__name__}"
    )
    post_delete.connect(
        _changed, sender=_model, dispatch_uid=f"shop_recs.exp_cache_del_{_model.__name__}"
    )


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECS":
        clear_cache()


setting_changed.connect(_settings_changed, dispatch_uid="shop_recs.experiments_cache_settings")


# --------------------------------------------------------------------------- logging


def new_list_id() -> str:
    return uuid.uuid4().hex


def exposure_log(
    *,
    list_id: str,
    experiment_id: int,
    arm_id: int,
    shopper: str,
    surface: str,
    item_ids: Sequence[int],
    model_version_id: int | None = None,
) -> None:
    """Spool one list served in an experiment. Never raises: a failure is logged."""
    record = {
        "mv": model_version_id,
        "t": "exposure",
        "list": list_id,
        "exp": experiment_id,
        "arm": arm_id,
        "shopper": shopper,
        "surface": surface,
        "items": [int(i) for i in item_ids],
        "at": timezone.now().isoformat(),
    }
    try:
        spool.append([record])
    except Exception:
        logger.exception("shop_recs: an experiment exposure could not be spooled")
    background_flusher()


def _attribution_active(now: datetime) -> bool:
    """Whether any experiment runs, or ended within the attribution window (its purchases
    still count)."""
    window = timedelta(seconds=float(recs_settings.EXPERIMENT_ATTRIBUTION_SECONDS))
    if running_experiments(now=now):
        return True
    return (
        Experiment.objects.filter(starts_at__lte=now)
        .exclude(stopped_at__lt=now - window)
        .exclude(ends_at__lt=now - window)
        .exists()
    )


def _ctx(interaction: Interaction) -> dict[str, Any]:
    return interaction.context if isinstance(interaction.context, dict) else {}


def interactions_spool(interactions: Iterable[Interaction]) -> None:
    """After commit, spool the clicks and cart adds that name a list and the purchases among
    ``interactions`` (just created), when an experiment may credit them."""
    ids = [
        i.pk
        for i in interactions
        if i.pk is not None
        and i.event in ATTRIBUTED_EVENTS
        and (i.event == Event.PURCHASE or _ctx(i).get("list_id"))
    ]
    if not ids:
        return

    def push() -> None:
        try:
            if not _attribution_active(timezone.now()):
                return
            spool.append([{"t": "event", "id": pk} for pk in ids])
        except Exception:
            logger.exception("shop_recs: experiment events could not be spooled")
        background_flusher()

    transaction.on_commit(push)


# --------------------------------------------------------------------------- writing


def _shopper_keys(interaction: Interaction) -> list[str]:
    keys = []
    if interaction.customer_id is not None:
        keys.append(f"c:{interaction.customer.external_id}")
    if interaction.session_id:
        keys.append(f"s:{interaction.session_id}")
    return keys


def _revenue(interaction: Interaction) -> Decimal:
    """The amount of a purchase: the line's ``value`` from its context, else the item's price
    times the quantity (the event's value)."""
    raw = _ctx(interaction).get("value")
    if raw not in (None, "") and not isinstance(raw, bool):
        try:
            amount = Decimal(str(raw))
            if amount.is_finite() and abs(amount) < MAX_REVENUE:
                return amount.quantize(Decimal("0.01"))
        except InvalidOperation:
            pass
    price = interaction.item.price
    if price is None:
        return Decimal("0.00")
    amount = price * Decimal(str(max(interaction.value, 0)))
    # an absurd quantity must not make the whole batch unwritable (the column's precision)
    return amount.quantize(Decimal("0.01")) if amount < MAX_REVENUE else Decimal("0.00")


def _position(value: Any, item_id: int, items: list[int]) -> int | None:
    try:
        position = int(value)
        if 1 <= position <= 10_000:
            return position
    except (TypeError, ValueError):
        pass
    return items.index(item_id) + 1 if item_id in items else None


def attribute(interactions: Sequence[Interaction]) -> list[Attribution]:
    """The attributions of these interactions (not saved; module docstring for the rules)."""
    window = timedelta(seconds=float(recs_settings.EXPERIMENT_ATTRIBUTION_SECONDS))
    named = {
        str(_ctx(i).get("list_id"))
        for i in interactions
        if i.event != Event.PURCHASE and _ctx(i).get("list_id")
    }
    lists = {e.list_id: e for e in Exposure.objects.filter(list_id__in=named)}
    out = []
    for i in interactions:
        if i.event == Event.PURCHASE:
            keys = _shopper_keys(i)
            exposure = (
                Exposure.objects.filter(
                    shopper__in=keys,
                    item_ids__contains=[i.item_id],
                    served_at__lte=i.occurred_at,
                    served_at__gte=i.occurred_at - window,
                )
                .order_by("-served_at", "-id")
                .first()
                if keys
                else None
            )
            if exposure is None:
                continue
            out.append(
                Attribution(
                    interaction=i, exposure=exposure, experiment_id=exposure.experiment_id,
                    arm_id=exposure.arm_id, shopper=exposure.shopper, kind=Event.PURCHASE,
                    item_id=i.item_id, position=_position(None, i.item_id, exposure.item_ids),
                    revenue=_revenue(i), occurred_at=i.occurred_at,
                )
            )  # fmt: skip
        else:
            exposure = lists.get(str(_ctx(i).get("list_id")))
            if exposure is None or i.item_id not in exposure.item_ids:
                continue
            out.append(
                Attribution(
                    interaction=i, exposure=exposure, experiment_id=exposure.experiment_id,
                    arm_id=exposure.arm_id, shopper=exposure.shopper, kind=i.event,
                    item_id=i.item_id,
                    position=_position(_ctx(i).get("position"), i.item_id,
                                       exposure.item_ids),
                    occurred_at=i.occurred_at,
                )
            )  # fmt: skip
    return out


def _write(records: list[dict[str, Any]]) -> None:
    exposures: dict[str, Exposure] = {}
    live_arms = set(Arm.objects.values_list("id", "experiment_id"))
    for r in records:
        if r.get("t") != "exposure":
            continue
        served_at = parse_datetime(str(r.get("at") or ""))
        if served_at is None or (r.get("arm"), r.get("exp")) not in live_arms:
            continue  # damaged, or its experiment was deleted meanwhile
        exposures[str(r["list"])] = Exposure(
            list_id=str(r["list"])[:32], experiment_id=r["exp"], arm_id=r["arm"],
            shopper=str(r["shopper"])[:300], surface=str(r.get("surface", ""))[:20],
            item_ids=[int(x) for x in r.get("items") or []], served_at=served_at,
            model_version_id=r.get("mv") if isinstance(r.get("mv"), int) else None,
        )  # fmt: skip
    event_ids = sorted({int(r["id"]) for r in records if r.get("t") == "event" and "id" in r})
    with transaction.atomic():
        Exposure.objects.bulk_create(list(exposures.values()), ignore_conflicts=True)
        if event_ids:
            done = set(
                Attribution.objects.filter(interaction_id__in=event_ids).values_list(
                    "interaction_id", flat=True
                )
            )
            todo = list(
                Interaction.objects.filter(pk__in=[i for i in event_ids if i not in done])
                .select_related("customer", "item")
                .order_by("occurred_at", "id")
            )
            Attribution.objects.bulk_create(attribute(todo), ignore_conflicts=True)


def flush(*, wait: bool = True) -> int:
    """Write everything spooled (module docstring); returns how many records were taken. When
    another process is writing, wait for it (``wait``), so that everything spooled before the
    call is in the database when it returns; the background thread does not wait."""
    return spool.drain(_write, wait=wait)


# --------------------------------------------------------------------------- background


_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def _flush_loop(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        try:
            flush(wait=False)
        except Exception:
            logger.exception("shop_recs: flushing experiment logs failed (retried later)")
        finally:
            connection.close()


def background_flusher() -> None:
    """Start this process's flushing thread (once), every ``EXPERIMENT_FLUSH_SECONDS``; 0
    leaves flushing to the task or the management command."""
    global _flusher
    seconds = float(recs_settings.EXPERIMENT_FLUSH_SECONDS or 0)
    if seconds <= 0 or (_flusher is not None and _flusher.is_alive()):
        return
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(
                target=_flush_loop, args=(seconds,), name="shop-recs-experiments", daemon=True
            )
            _flusher.start()
