"""Statistics of online experiments (A/B tests): plain functions of counts and samples.

- :func:`wilson`: the Wilson score interval of a proportion (what the admin shows for CTR,
  add-to-cart rate and conversion);
- :func:`newcombe_diff`: the interval of a difference of two proportions from their Wilson
  intervals (Newcombe 1998, method 10), the difference of an arm to control;
- :func:`welch_diff`: the Welch interval of a difference of two means with unequal variances
  (revenue per shopper, zeros included), with the Welch-Satterthwaite degrees of freedom;
- :func:`srm`: the sample-ratio-mismatch check, Pearson's chi-square of the shoppers per arm
  against the configured shares.

scipy provides the distributions (``scipy.stats``); nothing here imports Django.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: SRM is flagged below this p-value: a 0.1 % false alarm rate, the usual threshold (Kohavi
#: et al., "Trustworthy Online Controlled Experiments", ch. 21).
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (for a difference)."""
        return self.low > 0 or self.high < 0


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """The proportion ``successes / trials`` with its Wilson score interval
    (``p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)``, over ``1 + z²/n``). No trials: 0 in [0, 1]."""
    if trials <= 0:
        return Interval(0.0, 0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and trials; got {successes}/{trials}")
    z = _z(confidence)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe_diff(
    successes_b: int, trials_b: int, successes_a: int, trials_a: int, confidence: float = 0.95
) -> Interval:
    """``p_b - p_a`` with Newcombe's hybrid score interval (method 10): from the Wilson
    intervals of both proportions, without a normal approximation of the difference."""
    b = wilson(successes_b, trials_b, confidence)
    a = wilson(successes_a, trials_a, confidence)
    d = b.value - a.value
    low = d - math.sqrt((b.value - b.low) ** 2 + (a.high - a.value) ** 2)
    high = d + math.sqrt((b.high - b.value) ** 2 + (a.value - a.low) ** 2)
    return Interval(d, low, high)


@dataclass(frozen=True)
class MeanInterval(Interval):
    df: float = math.inf


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """A mean with its t interval (the per-arm revenue per shopper)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Interval(0.0, 0.0, 0.0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, -math.inf, math.inf)
    se = float(x.std(ddof=1)) / math.sqrt(n)
    t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    return Interval(mean, mean - t * se, mean + t * se)


def welch_diff(
    values_b: Sequence[float] | np.ndarray,
    values_a: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> MeanInterval:
    """``mean(b) - mean(a)`` with the Welch interval: standard error
    ``sqrt(s_b²/n_b + s_a²/n_a)`` and Welch-Satterthwaite degrees of freedom. Fewer than two
    values in either sample: an unbounded interval."""
    b = np.asarray(values_b, dtype=float)
    a = np.asarray(values_a, dtype=float)
    d = (float(b.mean()) if len(b) else 0.0) - (float(a.mean()) if len(a) else 0.0)
    if len(b) < 2 or len(a) < 2:
        return MeanInterval(d, -math.inf, math.inf)
    vb, va = float(b.var(ddof=1)) / len(b), float(a.var(ddof=1)) / len(a)
    se = math.sqrt(vb + va)
    if se == 0:
        return MeanInterval(d, d, d, df=math.inf)
    df = (vb + va) ** 2 / (vb**2 / (len(b) - 1) + va**2 / (len(a) - 1))
    t = float(stats.t.ppf(0.5 + confidence / 2, df))
    return MeanInterval(d, d - t * se, d + t * se, df=df)


@dataclass(frozen=True)
class SRM:
    chi2: float
    p_value: float
    expected: list[float]
    observed: list[int]

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def srm(observed: Sequence[int], shares: Sequence[float]) -> SRM:
    """Pearson's chi-square of the shoppers per arm against the configured ``shares`` (any
    positive weights), ``len - 1`` degrees of freedom. No shoppers: p = 1."""
    if len(observed) != len(shares) or not observed:
        raise ValueError("one observed count per share is needed")
    total = float(sum(observed))
    weight = float(sum(shares))
    if weight <= 0:
        raise ValueError("the shares must not all be 0")
    expected = [total * s / weight for s in shares]
    if total == 0 or len(observed) < 2:
        return SRM(0.0, 1.0, expected, list(observed))
    # an arm with share 0 takes no shoppers; one that got some anyway is a mismatch
    if any(e == 0 and o > 0 for o, e in zip(observed, expected, strict=True)):
        return SRM(math.inf, 0.0, expected, list(observed))
    pairs = [(o, e) for o, e in zip(observed, expected, strict=True) if e > 0]
    chi2 = sum((o - e) ** 2 / e for o, e in pairs)
    p = float(stats.chi2.sf(chi2, len(pairs) - 1)) if len(pairs) > 1 else 1.0
    return SRM(float(chi2), p, expected, list(observed))
