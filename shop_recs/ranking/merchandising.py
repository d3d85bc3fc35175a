"""Merchandising rules at serve time: pin, boost, bury and exclude (see ``MerchRule``).

The selectors and the recommendation chain ask :func:`plan_for` which rules apply to the list
they are about to build. ``None`` means none does, and the list is built exactly as without
rules (no extra query beyond reading the cached rules). Otherwise the plan

- moves exclusions into the query (``Plan.filters`` / ``Plan.exclude_item_ids``), so a list
  still has k results whenever k items are left;
- asks for a larger candidate pool (``Plan.pool``) when boosts or buries may bring in items
  from below the plain top k;
- and :func:`apply` re-ranks the pool, places pinned items and cuts to k. Each result a rule
  changed lists it in ``rules`` (the explanation).

Semantics:

- Context: ``anywhere`` applies to every list; ``item`` to the similar list of that item only;
  ``category`` to lists whose category filter is that category, and to the similar list of an
  item of that category.
- A rule is live when enabled and ``starts_at <= now < ends_at`` (either bound may be empty).
- boost/bury: each candidate's score is normalised over the pool,
  ``s = 0.1 + 0.9 * (score - min) / (max - min)`` (1.0 for all when max == min), multiplied by
  the factors of every rule that hits it, and the pool is re-ranked by that (stable: ties keep
  their order). The reported ``score`` stays the item's own score in the list's space.
- pin: the item goes to ``position`` (1-based) of the final list; beyond its end, it goes last.
  A pinned item outside the pool is fetched, and only if it passes the request's filters, is
  active, is not the query item and not excluded for the shopper. Two pins on one position:
  the higher priority (then the newer rule) gets it, the other the next free place. When
  several rules pin the same item, the first by that order decides its position.
- exclude: the target item, brand or category never appears. **Exclude wins over pin**: an
  item that an exclude rule hits is not inserted by a pin rule either.

Live rules are read with one query and kept per process for ``RULES_CACHE_SECONDS``; saving or
deleting a rule clears that cache in the saving process (others see it within that time).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from shop_recs.catalog.models import MerchRule
from shop_recs.conf import recs_settings

SIMILAR = "similar"
SEARCH = "search"
RECOMMENDATIONS = "recommendations"

Action = MerchRule.Action
Target = MerchRule.Target
Context = MerchRule.Context


@dataclass(frozen=True)
class Rule:
    """A snapshot of one MerchRule (what serving needs; no ORM object is kept in the cache)."""

    id: int
    name: str
    action: str
    target: str
    target_item_id: int | None
    target_value: str
    context: str
    context_item_id: int | None
    context_category: str
    position: int | None
    factor: float | None
    priority: int
    starts_at: datetime | None
    ends_at: datetime | None

    def is_live(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )

    def hits(self, card: Any) -> bool:
        """Whether this rule's target selects the item card (id, brand, category)."""
        if self.target == Target.ITEM:
            return card.id == self.target_item_id
        if self.target == Target.BRAND:
            return card.brand == self.target_value
        return card.category == self.target_value

    def explanation(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "action": self.action,
            "factor": self.factor if self.action in (Action.BOOST, Action.BURY) else None,
            "position": self.position if self.action == Action.PIN else None,
        }


_FIELDS = [f.name for f in dataclasses.fields(Rule)]
_lock = threading.Lock()
_cache: tuple[float, tuple[Rule, ...]] | None = None


def clear_cache(**kwargs: Any) -> None:
    global _cache
    with _lock:
        _cache = None


def _load(now: datetime) -> tuple[Rule, ...]:
    # Rules that start later are kept: the date check runs on every use, so a cached rule
    # starts and ends on time.
    rows = (
        MerchRule.objects.filter(is_enabled=True)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("-priority", "-id")
        .values_list(*[f if f != "id" else "pk" for f in _FIELDS])
    )
    return tuple(Rule(*row) for row in rows)


#: Set while an experiment's arm serves a list (``shop_recs.ranking.experiments``): whether
#: the live rules apply, and the ids of rules that apply in that arm only (even disabled).
arm_rules: ContextVar[tuple[bool, tuple[int, ...]] | None] = ContextVar(
    "shop_recs_arm_rules", default=None
)


def _arm_rules(live: list[Rule], now: datetime) -> list[Rule]:
    use_live, extra_ids = arm_rules.get()  # type: ignore[misc]
    rules = list(live) if use_live else []
    if extra_ids:
        known = {r.id for r in rules}
        rows = MerchRule.objects.filter(pk__in=[i for i in extra_ids if i not in known])
        rules += [
            r
            for r in (
                Rule(*row) for row in rows.values_list(*[f if f != "id" else "pk" for f in _FIELDS])
            )
            if r.is_live(now)
        ]
        rules.sort(key=lambda r: (-r.priority, -r.id))
    return rules


def live_rules(*, now: datetime | None = None) -> list[Rule]:
    """The rules live at ``now``, highest priority first (then newest); inside an arm of an
    experiment, the rules of that arm (:data:`arm_rules`)."""
    now = now or timezone.now()
    if arm_rules.get() is not None:
        return _arm_rules(_live_rules(now), now)
    return _live_rules(now)


def _live_rules(now: datetime) -> list[Rule]:
    global _cache
    ttl = float(recs_settings.RULES_CACHE_SECONDS)
    cached = _cache
    if cached is None or ttl <= 0 or time.monotonic() - cached[0] >= ttl:
        rules = _load(now)
        if ttl > 0:
            with _lock:
                _cache = (time.monotonic(), rules)
    else:
        rules = cached[1]
    return [r for r in rules if r.is_live(now)]


def _rule_changed(**kwargs: Any) -> None:
    clear_cache()
    # Again after commit: a request of this process may have read the old rules in between.
    transaction.on_commit(clear_cache)


post_save.connect(_rule_changed, sender=MerchRule, dispatch_uid="shop_recs.rules_cache_save")
post_delete.connect(_rule_changed, sender=MerchRule, dispatch_uid="shop_recs.rules_cache_delete")


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECS":
        clear_cache()


setting_changed.connect(_settings_changed, dispatch_uid="shop_recs.rules_cache_settings")


# --------------------------------------------------------------------------- planning


@dataclass
class Plan:
    """The live rules that apply to one list, split by what they do."""

    excludes: list[Rule]
    ranks: list[Rule]  # boost and bury
    pins: list[Rule]

    @property
    def exclude_item_ids(self) -> list[int]:
        return [r.target_item_id for r in self.excludes if r.target == Target.ITEM]

    def filters(self, filters: Any) -> Any:
        """``filters`` (a SimilarFilters) with the excluded brands and categories added."""
        brands = [r.target_value for r in self.excludes if r.target == Target.BRAND]
        categories = [r.target_value for r in self.excludes if r.target == Target.CATEGORY]
        if not brands and not categories:
            return filters
        return dataclasses.replace(
            filters,
            exclude_brands=tuple(sorted({*filters.exclude_brands, *brands})),
            exclude_categories=tuple(sorted({*filters.exclude_categories, *categories})),
        )

    def pool(self, k: int) -> int:
        """How many candidates to fetch for a list of k: more when boosts or buries may lift
        items from below the top k."""
        return max(2 * k, k + 10) if self.ranks else k

    def excluded(self, card: Any) -> bool:
        return any(r.hits(card) for r in self.excludes)


def plan_for(
    *,
    kind: str,
    category: str | None = None,
    item_id: int | None = None,
    item_category: Callable[[], str | None] | None = None,
    now: datetime | None = None,
    rules: Sequence[Rule] | None = None,
) -> Plan | None:
    """The rules that apply to a list of ``kind`` (similar/search/recommendations) with the
    category filter ``category``; for a similar list, of the item ``item_id`` whose category
    ``item_category()`` gives (asked only when a category rule could apply). None when no rule
    applies. ``rules``: the live rules when the caller has read them already."""
    rules = live_rules(now=now) if rules is None else rules
    if not rules:
        return None
    own_category: list[str | None] = []

    def query_item_category() -> str | None:
        if not own_category:
            own_category.append(item_category() if item_category is not None else None)
        return own_category[0]

    applying = []
    for rule in rules:
        if rule.context == Context.ITEM:
            ok = kind == SIMILAR and item_id is not None and rule.context_item_id == item_id
        elif rule.context == Context.CATEGORY:
            ok = (category is not None and category == rule.context_category) or (
                kind == SIMILAR and query_item_category() == rule.context_category
            )
        else:
            ok = True
        if ok:
            applying.append(rule)
    if not applying:
        return None
    return Plan(
        excludes=[r for r in applying if r.action == Action.EXCLUDE],
        ranks=[r for r in applying if r.action in (Action.BOOST, Action.BURY) and r.factor],
        pins=[r for r in applying if r.action == Action.PIN and r.target_item_id is not None],
    )


# --------------------------------------------------------------------------- applying


class Entry(Protocol):
    """A list entry: a Neighbour or a Recommendation."""

    item: Any
    score: float
    rules: list[dict[str, Any]]


def _normalised(scores: Sequence[float]) -> list[float]:
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0] * len(scores)
    return [0.1 + 0.9 * (s - lo) / (hi - lo) for s in scores]


E = TypeVar("E", bound=Entry)


def apply(
    plan: Plan,
    entries: list[E],
    *,
    k: int,
    fetch: Callable[[list[int]], Iterable[E]],
    scores: Sequence[float] | None = None,
    on_pin: Callable[[E, Rule], None] | None = None,
) -> list[E]:
    """Apply ``plan`` to the candidate pool ``entries`` (best first) and cut to ``k``.

    ``fetch(ids)`` returns entries for pinned items that are not in the pool, only those that
    pass the request's filters (the caller's query decides). ``scores`` replaces the entries'
    own scores for boost/bury (a list whose scores are not comparable, e.g. mixed sources).
    ``on_pin`` adjusts a pinned entry (e.g. its reason).
    """
    entries = [e for e in entries if not plan.excluded(e.item)]
    if plan.ranks and entries:
        base = _normalised(
            [float(s) for s in (scores if scores is not None else [e.score for e in entries])]
        )
        ranked = []
        for n, (entry, s) in enumerate(zip(entries, base, strict=True)):
            factor = 1.0
            for rule in plan.ranks:
                if rule.hits(entry.item):
                    factor *= float(rule.factor)
                    entry.rules.append(rule.explanation())
            ranked.append((-s * factor, n, entry))
        entries = [e for *_, e in sorted(ranked, key=lambda t: (t[0], t[1]))]

    # One pin per item: the first rule (highest priority, then newest) decides.
    pins: dict[int, Rule] = {}
    for rule in plan.pins:
        pins.setdefault(rule.target_item_id, rule)
    if not pins:
        return entries[:k]
    by_id = {e.item.id: e for e in entries if e.item.id in pins}
    missing = [i for i in pins if i not in by_id]
    if missing:
        for e in fetch(missing):
            if e.item.id in pins and not plan.excluded(e.item):
                by_id[e.item.id] = e
    pinned = [(rule, by_id[item_id]) for item_id, rule in pins.items() if item_id in by_id][:k]
    placed = {e.item.id for _, e in pinned}
    rest = [e for e in entries if e.item.id not in placed]
    size = min(k, len(rest) + len(pinned))
    slots: list[E | None] = [None] * size
    for rule, entry in pinned:  # priority order
        want = min(max(int(rule.position or 1), 1), size) - 1
        free = next((i for i in range(want, size) if slots[i] is None), None)
        if free is None:
            free = next(i for i in range(want, -1, -1) if slots[i] is None)
        entry.rules.append(rule.explanation())
        if on_pin is not None:
            on_pin(entry, rule)
        slots[free] = entry
    fill = iter(rest)
    return [slot if slot is not None else next(fill) for slot in slots]
