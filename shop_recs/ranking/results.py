"""Results of experiments (selectors: reads only) and their two actions, stop and promote.

Per arm, from the exposures and attributions (``shop_recs.catalog.services.experiments``):

- ``shoppers``: distinct shoppers served at least one list; ``lists``: lists served;
- ``ctr``: share of lists with at least one attributed click; ``cart_rate``: share of lists
  with at least one attributed cart add; ``conversion``: share of shoppers with at least one
  attributed purchase (each with its Wilson 95 % interval);
- ``revenue_per_shopper``: attributed purchase revenue over the arm's shoppers, zeros included
  (t interval);
- against control, the difference of each rate (Newcombe's interval) and of revenue per shopper
  (Welch's interval); a difference whose interval excludes 0 is significant at 5 %;
- ``srm``: the chi-square sample-ratio-mismatch check of shoppers per arm against the shares.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from shop_recs.catalog.models import Arm, Attribution, Experiment, Exposure, MerchRule
from shop_recs.catalog.services import experiments as exp_services
from shop_recs.ranking.activation import model_activate
from shop_recs.recsys.evaluation.abtest import (
    SRM,
    Interval,
    mean_interval,
    newcombe_diff,
    srm,
    welch_diff,
    wilson,
)


@dataclass
class ArmResult:
    arm: Arm
    shoppers: int
    lists: int
    clicked_lists: int
    carted_lists: int
    buyers: int
    revenue: float
    ctr: Interval
    cart_rate: Interval
    conversion: Interval
    revenue_per_shopper: Interval
    diff: dict[str, Interval] = field(default_factory=dict)  # against control
    revenue_values: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


@dataclass
class Results:
    experiment: Experiment
    arms: list[ArmResult]
    control: ArmResult | None
    srm: SRM
    # per arm name: [(hours/days since the start's hour/day, cumulative CTR, cumulative lists)]
    series: dict[str, list[tuple[float, float, int]]]
    bucket: str  # "hour" or "day"


def _control(arms: list[Arm]) -> Arm | None:
    return next((a for a in arms if a.is_control), arms[0] if arms else None)


def experiment_results(*, experiment: Experiment) -> Results:
    """The results of ``experiment`` (module docstring)."""
    arms = list(experiment.arms.order_by("id"))
    exposures = Exposure.objects.filter(experiment=experiment)
    served = {
        row["arm"]: row
        for row in exposures.values("arm").annotate(
            lists=Count("id"), shoppers=Count("shopper", distinct=True)
        )
    }
    attributions = Attribution.objects.filter(experiment=experiment)
    lists_with = {
        (row["arm"], row["kind"]): row["n"]
        for row in attributions.filter(kind__in=["click", "cart"])
        .values("arm", "kind")
        .annotate(n=Count("exposure", distinct=True))
    }
    per_shopper: dict[int, list[float]] = defaultdict(list)
    for row in (
        attributions.filter(kind="purchase").values("arm", "shopper").annotate(total=Sum("revenue"))
    ):
        per_shopper[row["arm"]].append(float(row["total"] or 0))
    out = []
    for arm in arms:
        n_lists = int(served.get(arm.pk, {}).get("lists", 0))
        n_shoppers = int(served.get(arm.pk, {}).get("shoppers", 0))
        clicked = min(int(lists_with.get((arm.pk, "click"), 0)), n_lists)
        carted = min(int(lists_with.get((arm.pk, "cart"), 0)), n_lists)
        buyers = min(len(per_shopper[arm.pk]), n_shoppers)
        values = np.zeros(max(n_shoppers, len(per_shopper[arm.pk])))
        values[: len(per_shopper[arm.pk])] = per_shopper[arm.pk]
        out.append(
            ArmResult(
                arm=arm, shoppers=n_shoppers, lists=n_lists, clicked_lists=clicked,
                carted_lists=carted, buyers=buyers, revenue=float(values.sum()),
                ctr=wilson(clicked, n_lists), cart_rate=wilson(carted, n_lists),
                conversion=wilson(buyers, n_shoppers),
                revenue_per_shopper=mean_interval(values), revenue_values=values,
            )
        )  # fmt: skip
    control_arm = _control(arms)
    control = next((r for r in out if r.arm == control_arm), None)
    if control is not None:
        for r in out:
            if r is control:
                continue
            r.diff = {
                "ctr": newcombe_diff(
                    r.clicked_lists, r.lists, control.clicked_lists, control.lists
                ),
                "cart_rate": newcombe_diff(
                    r.carted_lists, r.lists, control.carted_lists, control.lists
                ),
                "conversion": newcombe_diff(r.buyers, r.shoppers, control.buyers, control.shoppers),
                "revenue_per_shopper": welch_diff(r.revenue_values, control.revenue_values),
            }
    check = srm([r.shoppers for r in out], [max(a.share, 0.0) for a in arms]) if arms else None
    series, bucket = _series(experiment, arms)
    return Results(
        experiment=experiment,
        arms=out,
        control=control,
        srm=check or SRM(0.0, 1.0, [], []),
        series=series,
        bucket=bucket,
    )


def _series(
    experiment: Experiment, arms: list[Arm]
) -> tuple[dict[str, list[tuple[float, float, int]]], str]:
    """Cumulative CTR of each arm per hour (experiments up to three days) or per day."""
    start = experiment.starts_at
    end = min(experiment.stopped_at or experiment.ends_at or timezone.now(), timezone.now())
    hourly = end - start <= timedelta(days=3)
    trunc = TruncHour if hourly else TruncDay
    exposures = (
        Exposure.objects.filter(experiment=experiment)
        .annotate(t=trunc("served_at"))
        .values("arm", "t")
        .annotate(n=Count("id"))
    )
    clicked = (
        Attribution.objects.filter(experiment=experiment, kind="click")
        .annotate(t=trunc("exposure__served_at"))
        .values("arm", "t")
        .annotate(n=Count("exposure", distinct=True))
    )
    lists: dict[int, dict[datetime, int]] = defaultdict(dict)
    clicks: dict[int, dict[datetime, int]] = defaultdict(dict)
    for row in exposures:
        lists[row["arm"]][row["t"]] = row["n"]
    for row in clicked:
        clicks[row["arm"]][row["t"]] = row["n"]
    times = sorted({t for per in lists.values() for t in per})
    # x counts from the start of the bucket the experiment started in (the truncation's zone)
    local = timezone.localtime(start)
    origin = local.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        origin = origin.replace(hour=0)
    series: dict[str, list[tuple[float, float, int]]] = {}
    unit = 3600.0 if hourly else 86400.0
    for arm in arms:
        total_lists = total_clicks = 0
        points = []
        for t in times:
            total_lists += lists[arm.pk].get(t, 0)
            total_clicks += clicks[arm.pk].get(t, 0)
            if total_lists:
                x = (t - origin).total_seconds() / unit
                points.append((round(x, 3), total_clicks / total_lists, total_lists))
        series[arm.name] = points
    return series, "hour" if hourly else "day"


def experiments_of_version(*, version_id: int) -> list[tuple[Experiment, list[int]]]:
    """The experiments in which model ``version_id`` served lists, with the ids of the arms
    it served."""
    rows = (
        Exposure.objects.filter(model_version_id=version_id)
        .values_list("experiment_id", "arm_id")
        .distinct()
    )
    arms: dict[int, list[int]] = defaultdict(list)
    for experiment_id, arm_id in rows:
        arms[experiment_id].append(arm_id)
    found = Experiment.objects.filter(pk__in=list(arms)).order_by("-starts_at")
    return [(e, sorted(arms[e.pk])) for e in found]


# --------------------------------------------------------------------------- actions


def experiment_stop(*, experiment: Experiment) -> Experiment:
    """Stop serving the experiment's arms now (its results stay)."""
    if experiment.stopped_at is None:
        experiment.stopped_at = timezone.now()
        experiment.save(update_fields=["stopped_at"])
    return experiment


def experiment_promote(*, experiment: Experiment, arm: Arm) -> list[str]:
    """Make ``arm``'s configuration what every shopper gets, and stop the experiment: its model
    version becomes the active one (item vectors written), its own rules are enabled, and with
    "no rules" the rules that were live are disabled. Returns what changed, in words.

    The strategy and the similar-items space are not stored settings: an arm that won with
    them is made permanent in the shop's settings or widget options (docs/experiments.md)."""
    if arm.experiment_id != experiment.pk:
        raise ValueError(f"Arm {arm.pk} is not an arm of experiment {experiment.pk}.")
    changes = []
    version = arm.model_version
    if version is not None and not version.is_active:
        written = model_activate(version=version)
        changes.append(f"model {version.pk} activated ({written} item vectors)")
    with transaction.atomic():
        if arm.rules == Arm.Rules.OFF:
            extra = set(arm.extra_rules.values_list("pk", flat=True))
            for rule in MerchRule.objects.filter(is_enabled=True).exclude(pk__in=extra):
                rule.is_enabled = False
                rule.save(update_fields=["is_enabled", "updated_at"])
                changes.append(f"rule '{rule.name}' disabled")
        for rule in arm.extra_rules.filter(is_enabled=False):
            rule.is_enabled = True
            rule.save(update_fields=["is_enabled", "updated_at"])
            changes.append(f"rule '{rule.name}' enabled")
        experiment.promoted_arm = arm
        if experiment.stopped_at is None:
            experiment.stopped_at = timezone.now()
        experiment.save(update_fields=["promoted_arm", "stopped_at"])
    if arm.strategy != Arm.Strategy.MODEL or arm.similar_space:
        changes.append(
            "strategy/space of the arm are not stored settings: set them in the shop "
            "(docs/experiments.md)"
        )
    exp_services.clear_cache()
    return changes or ["nothing to change: the arm serves what everyone gets"]


def summary(results: Results) -> dict[str, Any]:
    """Plain numbers of the results (tests, the benchmark, JSON)."""

    def iv(i: Interval) -> list[float]:
        return [i.value, i.low, i.high]

    return {
        "srm_p": results.srm.p_value,
        "srm": results.srm.mismatch,
        "arms": {
            r.arm.name: {
                "shoppers": r.shoppers,
                "lists": r.lists,
                "ctr": iv(r.ctr),
                "cart_rate": iv(r.cart_rate),
                "conversion": iv(r.conversion),
                "revenue_per_shopper": iv(r.revenue_per_shopper),
                "diff": {k: iv(v) for k, v in r.diff.items()},
            }
            for r in results.arms
        },
    }
