"""The ``session`` protocol: anonymous traffic, predict the next item from the session so far.

Each shopper's positives, in time order, are cut into sessions wherever two consecutive events
are more than ``gap`` seconds (30 minutes) apart; within a session, consecutive events on the
same item are one step (a view, click and cart of one product). Sessions are split by time:
those that *start* at or after the time by which ``1 - test_frac`` of all sessions have started
are the test sessions; the training data is every event before that moment (so nothing a test
session does, nor anything after it, is seen in training).

Every test session of at least two steps gives one case per prefix: the model sees the first
``t`` steps (the last ``max_history``), as an *anonymous* shopper (``user`` None: no user ID,
no stored history), and must rank the step ``t + 1`` among all items except the prefix's.
HitRate@10 is the share of cases whose next item is in the top 10, MRR@10 the mean of
1 / its rank (0 beyond 10). Items first seen in a test session are rankable (a model with
content features can place them; the others give them no evidence).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..base import Dataset
from .metrics import hit_rate_at_k, mrr_at_k
from .protocol import Scorer, rank_split
from .splits import Split

#: Inactivity that ends a session (seconds).
SESSION_GAP = 30 * 60


def sessions_of(dataset: Dataset, gap: float = SESSION_GAP) -> list[tuple[int, float, np.ndarray]]:
    """Every session as ``(user index, start time, step items)``, in time order within users."""
    order = np.lexsort((np.arange(len(dataset)), dataset.times, dataset.users))
    users, items, times = dataset.users[order], dataset.items[order], dataset.times[order]
    out: list[tuple[int, float, np.ndarray]] = []
    if not len(users):
        return out
    new = np.r_[True, (users[1:] != users[:-1]) | (np.diff(times) > gap)]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(users)]
    for s, e in zip(starts, ends, strict=True):
        seq = items[s:e]
        keep = np.r_[True, seq[1:] != seq[:-1]]
        out.append((int(users[s]), float(times[s]), seq[keep]))
    return out


def session_split(
    dataset: Dataset,
    seed: int,
    *,
    test_frac: float = 0.2,
    gap: float = SESSION_GAP,
    max_history: int = 50,
    max_cases: int | None = None,
) -> Split:
    """The session protocol's split (module docstring) as a :class:`Split` with one "test
    user" per case: ``histories`` are the prefixes, ``relevant`` the next step, ``known_user``
    all False (anonymous), ``exclude`` the prefix items. ``max_cases`` keeps a random sample of
    the cases (drawn with ``seed``) when there are more."""
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"the test fraction must be in (0, 1), got {test_frac}")
    sessions = sessions_of(dataset, gap)
    if not sessions:
        raise ValueError("the dataset has no events")
    starts = np.sort(np.array([s[1] for s in sessions]))
    cut = starts[min(len(starts) - 1, int(np.floor((1.0 - test_frac) * len(starts))))]
    train = dataset.subset(np.flatnonzero(dataset.times < cut))
    owners, prefixes, targets = [], [], []
    for user, start, steps in sessions:
        if start < cut:
            continue
        for t in range(1, len(steps)):
            prefix = steps[:t]
            target = steps[t]
            if target in prefix:  # a return to an item seen earlier in the session
                continue
            owners.append(user)
            prefixes.append(prefix[-max_history:])
            targets.append(target)
    if max_cases is not None and len(owners) > max_cases:
        pick = np.sort(np.random.default_rng(seed).choice(len(owners), max_cases, replace=False))
        owners = [owners[i] for i in pick]
        prefixes = [prefixes[i] for i in pick]
        targets = [targets[i] for i in pick]
    return Split(
        protocol="session",
        seed=seed,
        train=train,
        test_users=np.asarray(owners, np.int64),
        relevant=[np.array([t], np.int64) for t in targets],
        histories=[np.asarray(p, np.int64) for p in prefixes],
        known_user=np.zeros(len(owners), bool),
        exclude=[np.unique(p) for p in prefixes],
    )


def evaluate_sessions(
    model: Scorer, split: Split, ks: Sequence[int] = (10,), batch_size: int = 256
) -> dict[str, float]:
    """HitRate@K and MRR@K over the cases of a session (or any single-target) split, with the
    case count. Same ranking rules as :func:`~.protocol.evaluate` (masks, tie-break)."""
    ranked = rank_split(model, split, max(ks), batch_size)
    out: dict[str, float] = {}
    for k in ks:
        pairs = list(zip(ranked, split.relevant, strict=True))
        out[f"hit_rate@{k}"] = (
            float(np.mean([hit_rate_at_k(r, t, k) for r, t in pairs])) if pairs else 0.0
        )
        out[f"mrr@{k}"] = float(np.mean([mrr_at_k(r, t, k) for r, t in pairs])) if pairs else 0.0
    out["cases"] = float(split.n_test_users)
    out["train_positives"] = float(split.n_train_positives)
    return out
