"""Per-shop model selection: search families and hyper-parameters on the shop's own data.

``select_model(dataset, budget_seconds=...)`` carves one validation set out of the dataset
with the evaluation protocols (:mod:`shop_recs.recsys.evaluation`) and scores candidates on it:

- ``cold-users``: 10% of the users with at least 7 items held out, first 5 revealed;
- ``cold-items``: 10% of the items with events held out with all their events (only when the
  items have content features), ranked among themselves;
- ``warm``: half of the remaining users (3+ items) lose a random 20% of their items;
- ``next``: the other half lose their last 20% by time.

One fit per candidate is scored on all four (the validation train set is what is left). The
choice is the best *weighted mean of Recall@10 relative to the best candidate* per protocol
(:data:`PROTOCOL_WEIGHTS`: cold start weighs half, so a model that gains warm recall by
giving up new items or new shoppers does not win).

Families (all :class:`~shop_recs.recsys.base.VectorRecommender`, served from pgvector):

- ``ease``: :class:`~shop_recs.recsys.ease.EASERecommender`, λ searched on a grid scaled to the
  data, then the history recency decay; skipped (with the reason in the table) when its dense
  items² Gram matrix would not fit the memory or time budget, and capped to the most popular
  items when those carry most positives;
- ``hybrid``: :class:`~shop_recs.recsys.hybrid.HybridRecommender`: the default config, then
  random variants (dims, ID-vs-content dropout, dropouts, temperature, weight decay, lr) in a
  short successive-halving round while the budget lasts; epochs by early stopping;
- ``blend``: :class:`~shop_recs.recsys.blend.BlendRecommender` of the best hybrid and EASE:
  weights (separately for warm and cold items) and a popularity prior chosen on validation.
- ``sequence`` (registered in :data:`EXTRA_FAMILIES`, code in ``recsys/sequence/select.py``):
  the order-aware :class:`~shop_recs.recsys.sequence.SequenceRecommender`, one candidate when
  the budget allows; it wins only where order helps on the same validation protocols.

The winner is refitted on the whole dataset (the hybrid for the epochs early stopping chose,
EASE with the λ validation chose) and returned ready to ``save()``. The budget is checked
between candidates and inside fits (hybrid epochs, EASE steps); time for the final refit is
reserved from the start. A budget too small for any search still returns a model: the
default hybrid config, trained for what the budget allows (at least one epoch).
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Dataset, VectorRecommender
from .ease import EASEConfig, EASERecommender
from .evaluation import Split, cold_users_split, evaluate
from .evaluation.splits import _known_split

#: Shoppers scored per validation protocol at most (a sample beyond it; the selection's
#: evaluation cost is shoppers x items per candidate).
VALIDATION_USERS_MAX = 2000
#: ... and at most about this many shopper x item scores per protocol (one float32 matrix per
#: protocol and blend partner is held while the blend is searched), but never fewer than
#: VALIDATION_USERS_MIN shoppers: 500 per protocol at 100k items, 200 at 1M.
VALIDATION_CELLS_MAX = 50_000_000
VALIDATION_USERS_MIN = 200
#: Weight of each validation protocol in the selection objective.
PROTOCOL_WEIGHTS = {"warm": 0.30, "next": 0.20, "cold-users": 0.25, "cold-items": 0.25}
FAMILIES = ("hybrid", "ease", "blend")
#: Families defined in their own packages: name -> module with ``search(search, val)`` (adds
#: candidate rows) and ``refit(search, row, val)`` (the winner on all data). Imported lazily.
EXTRA_FAMILIES: dict[str, str] = {"sequence": "shop_recs.recsys.sequence.select"}
ALL_FAMILIES = (*FAMILIES, *EXTRA_FAMILIES)
#: Share of the machine's memory a dense EASE fit may use.
EASE_MEMORY_SHARE = 0.35
#: A capped EASE (most popular items only) must still cover this share of the positives.
EASE_MIN_COVERAGE = 0.8
SEARCH_PATIENCE = 6
#: EASE candidates (best validation objective first) each tried as the blend's partner.
BLEND_EASE_PARTNERS = 3
#: Hybrid variants tried after the default, when time allows.
HYBRID_SPACE: dict[str, Sequence[Any]] = {
    "dim": (64, 128, 200, 256),
    "id_dropout": (0.05, 0.1, 0.2, 0.3),
    "user_id_dropout": (0.3, 0.5, 0.7),
    "content_dropout": (0.5, 0.7, 0.8),
    "dropout": (0.0, 0.1, 0.2),
    "logit_scale": (0.5, 1.0, 2.0),
    "weight_decay": (0.0, 1e-5, 1e-4),
    "lr": (5e-4, 1e-3, 2e-3),
    "content_loss_weight": (0.5, 1.0, 2.0),
}


@dataclass
class Selection:
    """What :func:`select_model` found."""

    #: The chosen model fitted on *all* of the dataset, ready to ``save()``.
    model: VectorRecommender
    #: One row per candidate tried: family, params, recall@10 / ndcg@10 (weighted means over
    #: the validation protocols), per-protocol ``validation``, ``objective``, seconds, status
    #: ("ok", "skipped: <why>" or "timeout").
    table: list[dict[str, Any]]
    #: ``{"family", "params", "validation": {metric: value}}`` of the winner.
    chosen: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)
    #: Popularity's figures on the same validation split, weighted the same way as a
    #: candidate's (the reference the admin shows beside the winner's); empty without one.
    reference: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- validation
@dataclass
class Validation:
    train: Dataset
    splits: dict[str, Split]
    #: Held-out warm + next pairs (hybrid early stopping reads these).
    targets: Dataset | None


def _rank_within(owner: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rank of each entry within its owner group when ordered by ``key`` (0 = smallest)."""
    order = np.lexsort((key, owner))
    sorted_owner = owner[order]
    starts = np.searchsorted(sorted_owner, sorted_owner, side="left")
    rank = np.empty(len(owner), np.int64)
    rank[order] = np.arange(len(owner)) - starts
    return rank


def validation_set(
    dataset: Dataset,
    seed: int,
    *,
    frac: float = 0.1,
    holdout: float = 0.2,
    reveal: int = 5,
    max_users: int | None = None,
) -> Validation | None:
    """The combined validation split (module docstring); None when the data is too small.

    Each protocol scores at most ``max_users`` shoppers (default :data:`VALIDATION_USERS_MAX`,
    fewer on large catalogues): every candidate is scored against every item for each of them,
    which a shop with 100k items and 50k shoppers could not afford within its budget."""
    if max_users is None:
        # a large catalogue scores fewer shoppers (memory: shoppers x items per candidate)
        cells = int(VALIDATION_CELLS_MAX // max(dataset.n_items, 1))
        max_users = max(VALIDATION_USERS_MIN, min(VALIDATION_USERS_MAX, cells))
    max_users = int(max_users)
    n = len(dataset)
    if n == 0:
        return None
    rng = np.random.default_rng(seed + 7919)
    n_items = max(dataset.n_items, 1)
    keys = dataset.users * np.int64(n_items) + dataset.items
    unique, inverse = np.unique(keys, return_inverse=True)
    pair_users = unique // n_items
    per_user = np.bincount(pair_users, minlength=dataset.n_users)
    removed = np.zeros(n, bool)
    splits: dict[str, Split] = {}

    eligible = np.flatnonzero(per_user >= reveal + 2)
    cold_users = None
    if len(eligible) >= 20:
        share = min(frac, max_users / len(eligible))
        cold_users = cold_users_split(dataset, seed, reveal, frac=share, among=eligible)
        removed |= np.isin(dataset.users, cold_users.test_users)

    feats = dataset.item_features
    has_content = feats is not None and any(
        a is not None for a in (feats.text, feats.image, feats.category)
    )
    ci_rows = np.zeros(n, bool)
    held_items = None
    if has_content:
        warm_items = np.unique(dataset.items[~removed])
        if len(warm_items) >= 20:
            held_items = np.sort(
                rng.choice(warm_items, size=max(2, round(frac * len(warm_items))), replace=False)
            )
            on_held = np.isin(dataset.items, held_items)
            ci_rows = on_held & ~removed
            removed |= on_held
            ci_users = np.unique(dataset.users[ci_rows])
            if len(ci_users) > max_users:
                # the held items' other events leave the training data all the same
                kept = rng.choice(ci_users, size=max_users, replace=False)
                ci_rows &= np.isin(dataset.users, kept)

    # warm / next on the users that remain, half each
    left = ~removed
    pair_left = np.zeros(len(unique), bool)
    pair_left[inverse[left]] = True
    count_left = np.bincount(pair_users[pair_left], minlength=dataset.n_users)
    candidates = np.flatnonzero(count_left >= 3)
    rng.shuffle(candidates)
    half = len(candidates) // 2
    # beyond max_users per protocol the other shoppers' events all stay in training
    warm_users = candidates[: min(half, max_users)]
    next_users = candidates[half : half + min(len(candidates) - half, max_users)]
    take = np.rint(holdout * count_left).astype(np.int64)
    idx = np.flatnonzero(pair_left)
    owners = pair_users[idx]
    held_pair = np.zeros(len(unique), bool)
    if len(warm_users):
        sel = np.isin(owners, warm_users)
        rank = _rank_within(owners[sel], rng.random(int(sel.sum())))
        held_pair[idx[sel][rank < take[owners[sel]]]] = True
    warm_pairs = held_pair.copy()
    if len(next_users):
        # first time of each pair
        first_time = np.full(len(unique), np.inf)
        np.minimum.at(first_time, inverse, dataset.times)
        sel = np.isin(owners, next_users)
        rank_from_end = _rank_within(owners[sel], -first_time[idx[sel]])
        held_pair[idx[sel][rank_from_end < take[owners[sel]]]] = True
    next_pairs = held_pair & ~warm_pairs
    warm_rows = warm_pairs[inverse] & left
    next_rows = next_pairs[inverse] & left
    train_rows = np.flatnonzero(left & ~warm_rows & ~next_rows)
    train = dataset.subset(train_rows)

    def known(protocol: str, rows: np.ndarray, cands: np.ndarray | None) -> Split | None:
        if not rows.any():
            return None
        split = _known_split(protocol, seed, dataset, train_rows, np.flatnonzero(rows), cands)
        split.train = train
        return split if split.n_test_users else None

    for name, split in (
        ("warm", known("warm", warm_rows, None)),
        ("next", known("next", next_rows, None)),
        (
            "cold-items",
            known("cold-items", ci_rows, held_items) if held_items is not None else None,
        ),
    ):
        if split is not None:
            splits[name] = split
    if cold_users is not None and cold_users.n_test_users:
        cold_users.train = train
        splits["cold-users"] = cold_users
    if not splits or not len(train):
        return None
    target_rows = np.flatnonzero(warm_rows | next_rows)
    targets = dataset.subset(target_rows) if len(target_rows) else None
    return Validation(train=train, splits=splits, targets=targets)


# ---------------------------------------------------------------------------- scoring
def _metrics(model: Any, val: Validation) -> dict[str, dict[str, float]]:
    out = {}
    for protocol, split in val.splits.items():
        m = evaluate(model, split, ks=(10,))
        out[protocol] = {"recall@10": m["recall@10"], "ndcg@10": m["ndcg@10"]}
    return out


def popularity_reference(val: Validation) -> dict[str, float]:
    """Popularity's recall@10 / ndcg@10 on ``val``, weighted over the protocols like every
    candidate's, and per protocol (``"warm/recall@10"``)."""
    from .baselines import PopularityRecommender

    per = _metrics(PopularityRecommender().fit(val.train), val)
    out = {n: _weighted(per, n) for n in ("recall@10", "ndcg@10")}
    out.update({f"{p}/{n}": v for p, m in per.items() for n, v in m.items()})
    return out


def _weighted(per_protocol: dict[str, dict[str, float]], metric: str) -> float:
    total = sum(PROTOCOL_WEIGHTS[p] for p in per_protocol)
    return sum(PROTOCOL_WEIGHTS[p] * v[metric] for p, v in per_protocol.items()) / max(total, 1e-12)


def _objectives(table: list[dict[str, Any]]) -> None:
    """Relative objective of every ok row: Σ_p w_p * recall_p / best recall_p."""
    rows = [r for r in table if r["status"] in ("ok", "timeout") and r.get("validation")]
    best: dict[str, float] = {}
    for r in rows:
        for p, v in r["validation"].items():
            best[p] = max(best.get(p, 0.0), v["recall@10"])
    for r in rows:
        val = r["validation"]
        total = sum(PROTOCOL_WEIGHTS[p] for p in val)
        r["objective"] = sum(
            PROTOCOL_WEIGHTS[p] * (v["recall@10"] / best[p] if best[p] > 0 else 0.0)
            for p, v in val.items()
        ) / max(total, 1e-12)


class _Fixed:
    """A scorer that replays precomputed score rows in the order ``evaluate`` asks for them."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.at = 0

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        out = self.scores[self.at : self.at + len(users)]
        self.at += len(users)
        return out


class _FastRecall:
    """Recall@10 of many score matrices on one split, vectorised (the blend grid scores
    hundreds of weightings; ``evaluate`` would spend minutes in Python loops on that). Same
    masks as ``rank_split``: excluded items and non-candidates never rank."""

    def __init__(self, split: Split) -> None:
        n_users, n_items = split.n_test_users, split.train.n_items
        self.blocked = np.zeros((n_users, n_items), bool)
        if split.candidates is not None:
            self.blocked[:] = True
            self.blocked[:, split.candidates] = False
        self.relevant = np.zeros((n_users, n_items), bool)
        for row, (excluded, rel) in enumerate(zip(split.exclude, split.relevant, strict=True)):
            self.blocked[row, excluded] = True
            self.relevant[row, rel] = True
        self.n_relevant = np.maximum(self.relevant.sum(axis=1), 1)
        self.k = min(10, n_items)

    def recall(self, scores: np.ndarray) -> float:
        if not len(scores):
            return 0.0
        masked = np.where(self.blocked, -np.inf, scores)
        top = np.argpartition(-masked, self.k - 1, axis=1)[:, : self.k]
        ok = np.isfinite(np.take_along_axis(masked, top, axis=1))
        hits = np.take_along_axis(self.relevant, top, axis=1) & ok
        return float(np.mean(hits.sum(axis=1) / self.n_relevant))


def _split_scores(model: Any, split: Split) -> np.ndarray:
    users = [int(u) if k else None for u, k in zip(split.test_users, split.known_user, strict=True)]
    hists = [h.tolist() for h in split.histories]
    out = np.zeros((len(users), split.train.n_items), np.float32)
    for start in range(0, len(users), 256):
        out[start : start + 256] = model.score_items(
            users[start : start + 256], hists[start : start + 256]
        )
    return out


def _score_scale(model: Any, dataset: Dataset, rng: np.random.Generator) -> float:
    """Standard deviation of a model's scores over a sample of users (blend normaliser)."""
    users = np.unique(dataset.users)
    if not len(users):
        return 1.0
    sample = np.sort(rng.choice(users, size=min(200, len(users)), replace=False))
    hist = dataset.histories()
    scores = model.score_items([int(u) for u in sample], [hist[u].tolist() for u in sample])
    std = float(np.std(scores))
    return std if std > 0 and math.isfinite(std) else 1.0


# ---------------------------------------------------------------------------- families
def _hybrid_best_epochs(model: Any) -> int:
    scored = [h for h in model.training_history_ if "smoothed_recall@10" in h]
    if not scored:
        return max(1, len(model.training_history_))
    return int(max(scored, key=lambda h: h["smoothed_recall@10"])["epoch"])


def _ease_limits(remaining: float, calib: float) -> tuple[int, int]:
    """(largest n by memory, largest n by time) for one dense EASE fit."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 * 2**30
    by_memory = int(math.sqrt(EASE_MEMORY_SHARE * memory / 40.0))
    by_time = int((max(remaining, 0.0) / max(calib, 1e-15)) ** (1 / 3))
    return by_memory, by_time


def _calibrate() -> float:
    """Seconds per n³ of an EASE-like fit on this machine (inverse + SVD + products)."""
    n = 600
    a = np.random.default_rng(0).standard_normal((n, n))
    a = a @ a.T + n * np.eye(n)
    tick = time.perf_counter()
    p = np.linalg.inv(a)
    np.linalg.svd(p, full_matrices=False)
    return (time.perf_counter() - tick) / n**3


class _Search:
    def __init__(
        self,
        dataset: Dataset,
        budget: float,
        seed: int,
        progress: bool,
        base_params: dict[str, Any],
    ) -> None:
        self.dataset = dataset
        self.started = time.monotonic()
        self.deadline = self.started + max(budget, 0.0)
        self.budget = budget
        self.seed = seed
        self.progress = progress
        self.base = {k: v for k, v in base_params.items()}
        self.base.setdefault("seed", seed)
        self.table: list[dict[str, Any]] = []
        self.fitted: dict[int, Any] = {}  # table row index -> fitted model on val.train
        # table row index -> (score scale, {protocol: validation scores / scale}): the blend
        # search pairs one hybrid with several EASE partners and scores each model once
        self.scored: dict[int, tuple[float, dict[str, np.ndarray]]] = {}
        self.notes: list[str] = []
        self.reference: dict[str, float] = {}
        self.bar: Any = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def scaled_scores(self, row: dict[str, Any], val: Validation) -> tuple[float, dict[str, Any]]:
        """The fitted model of ``row``: its score scale (:func:`_score_scale`) and its
        validation scores on every protocol divided by it, computed once per search."""
        index = self.table.index(row)
        if index not in self.scored:
            model = self.fitted[index]
            scale = _score_scale(model, val.train, np.random.default_rng(self.seed + 5))
            self.scored[index] = (
                scale,
                {p: _split_scores(model, split) / scale for p, split in val.splits.items()},
            )
        return self.scored[index]

    def log(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text[:60])

    def add(
        self,
        family: str,
        params: dict[str, Any],
        status: str,
        seconds: float = 0.0,
        validation: dict[str, dict[str, float]] | None = None,
        model: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "family": family,
            "params": params,
            "recall@10": _weighted(validation, "recall@10") if validation else None,
            "ndcg@10": _weighted(validation, "ndcg@10") if validation else None,
            "validation": validation or {},
            "seconds": round(seconds, 2),
            "status": status,
            **(extra or {}),
        }
        self.table.append(row)
        if model is not None:
            self.fitted[len(self.table) - 1] = model
        if self.bar is not None:
            self.bar.update(1)
            if row["recall@10"] is not None:
                self.log(f"{family} R@10 {row['recall@10']:.4f}")
        return row


def _hybrid_params(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    params = {**base, **changes}
    if "dim" in changes:
        params.setdefault("input_dim", changes["dim"])
        params["input_dim"] = changes["dim"]
    return params


def _run_hybrid(
    search: _Search, val: Validation, params: dict[str, Any], deadline: float, label: str = ""
) -> dict[str, Any]:
    from .hybrid import HybridRecommender

    tick = time.perf_counter()
    try:
        model = HybridRecommender(**params)
        model.fit(val.train, validation=val.targets, progress=False, deadline=deadline)
    except Exception as exc:  # a bad variant must not end the search
        return search.add(
            "hybrid",
            params,
            f"skipped: {type(exc).__name__}: {exc}"[:300],
            time.perf_counter() - tick,
        )
    stopped = any(h.get("stopped") == "deadline" for h in model.training_history_)
    metrics = _metrics(model, val)
    epochs = _hybrid_best_epochs(model)
    seconds = time.perf_counter() - tick
    per_epoch = seconds / max(len(model.training_history_), 1)
    return search.add(
        "hybrid",
        params,
        "timeout" if stopped else "ok",
        seconds,
        metrics,
        model,
        {"epochs": epochs, "epoch_seconds": per_epoch, "label": label},
    )


def select_model(
    dataset: Dataset,
    *,
    budget_seconds: float,
    seed: int = 0,
    families: Sequence[str] | None = None,
    progress: bool = True,
    base_params: dict[str, Any] | None = None,
) -> Selection:
    """Choose and fit the best model family and hyper-parameters for ``dataset`` within
    ``budget_seconds`` (module docstring). ``base_params`` are hybrid config overrides applied
    to every hybrid candidate (e.g. the app's ``MODEL_PARAMS``: threads, device)."""
    fams = tuple(families) if families else ALL_FAMILIES
    unknown = set(fams) - set(ALL_FAMILIES)
    if unknown:
        raise ValueError(f"unknown model families {sorted(unknown)}; expected {ALL_FAMILIES}")
    search = _Search(dataset, budget_seconds, seed, progress, dict(base_params or {}))
    if progress:
        from tqdm.auto import tqdm

        search.bar = tqdm(desc="model selection", unit="candidate", leave=False)
    try:
        model, chosen = _select(search, fams)
    finally:
        if search.bar is not None:
            search.bar.close()
    seconds = time.monotonic() - search.started
    if progress:
        from tqdm.auto import tqdm

        val = chosen.get("validation") or {}
        tqdm.write(
            f"model selection: {len(search.table)} candidates in {seconds:.0f} s "
            f"(budget {budget_seconds:.0f} s); chose {chosen['family']}"
            + (f", validation R@10 {val['recall@10']:.4f}" if "recall@10" in val else "")
        )
    return Selection(
        model=model,
        table=search.table,
        chosen=chosen,
        seconds=seconds,
        notes=search.notes,
        reference=search.reference,
    )


def _select(search: _Search, fams: tuple[str, ...]) -> tuple[VectorRecommender, dict[str, Any]]:
    dataset = search.dataset
    # Early stopping inside the search waits 6 epochs (not the config's 10) for a better
    # validation recall: the epochs after the best are pure cost here.
    hybrid_default = _hybrid_params({"patience": SEARCH_PATIENCE, **search.base})
    val = validation_set(dataset, search.seed) if len(dataset) else None
    if val is None:
        search.notes.append("too little data for a validation split: default hybrid")
        for fam in fams:
            search.add(fam, {}, "skipped: too little data for a validation split")
        return _fallback(search, hybrid_default, fams)
    search.reference = popularity_reference(val)

    # --- EASE: λ grid (cheap on small catalogues), skipped or capped on large ones
    ease_rows: list[dict[str, Any]] = []
    if "ease" in fams or "blend" in fams:
        ease_rows = _search_ease(search, val)

    # --- hybrid: the default, then variants while time allows (reserving the final refit)
    hybrid_rows: list[dict[str, Any]] = []
    if "hybrid" in fams or "blend" in fams:
        hybrid_rows = _search_hybrid(search, val, hybrid_default)

    # --- blend of the best of each
    ok_h = [r for r in hybrid_rows if r["status"] in ("ok", "timeout") and r.get("validation")]
    ok_e = [r for r in ease_rows if r["status"] == "ok"]
    if "blend" in fams:
        if ok_h and ok_e:
            _objectives(search.table)
            best_h = max(ok_h, key=lambda r: r.get("objective", 0.0))
            # EASE's best alone is not always the best partner (a recency decay or content
            # neighbourhood that wins alone may be what the hybrid already brings): the blend
            # is searched with each of the best few, while time allows
            ranked_e = sorted(ok_e, key=lambda r: r.get("objective", 0.0), reverse=True)
            for n, row_e in enumerate(ranked_e[:BLEND_EASE_PARTNERS]):
                if n and search.left() < 30:
                    break
                _search_blend(search, val, best_h, row_e)
            search.scored.clear()  # the score matrices are needed by the blend grid only
        else:
            search.add("blend", {}, "skipped: needs a fitted hybrid and EASE candidate")

    # --- families registered in EXTRA_FAMILIES (e.g. the order-aware sequence model)
    for fam in fams:
        if fam in EXTRA_FAMILIES:
            importlib.import_module(EXTRA_FAMILIES[fam]).search(search, val)

    _objectives(search.table)
    allowed = {f for f in fams}
    ok = [
        (i, r)
        for i, r in enumerate(search.table)
        if r["status"] in ("ok", "timeout") and r["family"] in allowed and "objective" in r
    ]
    if not ok:
        return _fallback(search, hybrid_default, fams)
    _index, best = max(ok, key=lambda ir: ir[1]["objective"])
    best["chosen"] = True
    chosen = {
        "family": best["family"],
        "params": best["params"],
        "validation": {
            "recall@10": best["recall@10"],
            "ndcg@10": best["ndcg@10"],
            "objective": best["objective"],
            **{f"{p}/{m}": v for p, vals in best["validation"].items() for m, v in vals.items()},
        },
    }
    model = _refit(search, best, val)
    return model, chosen


def _fallback(
    search: _Search, params: dict[str, Any], fams: tuple[str, ...] = FAMILIES
) -> tuple[VectorRecommender, dict[str, Any]]:
    """No candidate could be scored (too little data or no time): the default config of an
    allowed family on all data, without validation: the hybrid when ``fams`` allows it (or a
    blend, which needs it), else EASE (one closed-form fit), else the first extra family."""
    label = "fallback (default config, no validation)"
    tick = time.perf_counter()
    if "hybrid" in fams or "blend" in fams or not fams:
        from .hybrid import HybridRecommender

        family, final = "hybrid", {**params, "validation_fraction": 0.0}
        model: VectorRecommender = HybridRecommender(**final)
        model.fit(search.dataset, progress=False, deadline=search.deadline)
    elif "ease" in fams:
        family, final = "ease", {}
        model = EASERecommender(seed=search.seed).fit(search.dataset)
    else:
        family = next(f for f in fams if f in EXTRA_FAMILIES)
        module = importlib.import_module(EXTRA_FAMILIES[family])
        row = {"params": module.default_params(search), "epochs": 1}
        model = module.refit(search, row, None)
        final = {**row["params"], "max_epochs": 1}
    search.add(
        family, final, "ok", time.perf_counter() - tick, extra={"label": label, "chosen": True}
    )
    return model, {"family": family, "params": final, "validation": {}}


# ---------------------------------------------------------------------------- EASE
def _search_ease(search: _Search, val: Validation) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    train = val.train
    n_items = train.n_items
    keys = np.unique(train.users * np.int64(max(n_items, 1)) + train.items)
    counts = np.bincount(keys % max(n_items, 1), minlength=n_items)
    n_warm = int((counts > 0).sum())
    if search.left() <= 0:
        rows.append(search.add("ease", {}, "skipped: budget"))
        return rows
    if search.left() <= 0:
        rows.append(search.add("ease", {}, "skipped: budget"))
        return rows
    calib = _calibrate()
    params_extra, why = ease_plan(counts, search.budget, calib)
    if params_extra is None:
        rows.append(search.add("ease", {}, why))
        return rows
    limit = int(params_extra.get("max_items", n_warm))
    n_cols = min(n_warm, limit)
    mean_count = float(counts[counts > 0].mean()) if n_warm else 1.0
    # most promising first: when time is short only the first ones run
    grid = [round(mean_count * f, 3) for f in (10.0, 3.0, 30.0, 1.0)]
    est = calib * n_cols**3 * 1.5 + 0.05
    best: dict[str, Any] | None = None
    # EASE gets at most a quarter of the budget: the hybrid needs the rest
    stage_end = search.started + 0.25 * search.budget

    def no_time() -> bool:
        return search.left() < est * 2 + 5 or time.monotonic() + est > stage_end

    for l2 in grid:
        # the first EASE fit runs whenever it fits the budget at all: it is cheap and strong
        if (best is not None or search.left() < est * 2 + 5) and no_time():
            rows.append(search.add("ease", {"l2": l2, **params_extra}, "skipped: budget"))
            continue
        rows.append(_fit_ease(search, val, {"l2": l2, **params_extra}))
        if rows[-1]["status"] == "ok" and (
            best is None or rows[-1]["recall@10"] > best["recall@10"]
        ):
            best = rows[-1]
    if best is not None:
        # refine λ around the best grid point, then the recency decay (serving-only)
        l2 = best["params"]["l2"]
        for factor in (0.55, 1.8):
            if no_time():
                break
            rows.append(_fit_ease(search, val, {**best["params"], "l2": round(l2 * factor, 3)}))
        okr = [r for r in rows if r["status"] == "ok"]
        best = max(okr, key=lambda r: r["recall@10"])
        model = search.fitted[search.table.index(best)]
        for decay in (0.99, 0.97):
            if search.left() < 10 or time.monotonic() > stage_end:
                break
            tick = time.perf_counter()
            variant = EASERecommender.__new__(EASERecommender)
            variant.__dict__.update(model.__dict__)
            variant.config = EASEConfig.from_dict({**model.config.to_dict(), "decay": decay})
            params = {**best["params"], "decay": decay}
            rows.append(
                search.add(
                    "ease",
                    params,
                    "ok",
                    time.perf_counter() - tick,
                    _metrics(variant, val),
                    variant,
                )
            )
        # the content neighbourhood that places items without events (cold-items only)
        if "cold-items" in val.splits:
            _objectives(search.table)
            okr = [r for r in rows if r["status"] == "ok"]
            best = max(okr, key=lambda r: r.get("objective", 0.0))
            model = search.fitted[search.table.index(best)]
            for k, temperature in ((20, 0.02), (20, 0.1), (50, 0.05), (5, 0.05)):
                if search.left() < 10 or time.monotonic() > stage_end:
                    break
                tick = time.perf_counter()
                variant = model.remap_cold(
                    val.train.item_features, content_k=k, content_temperature=temperature
                )
                params = {**best["params"], "content_k": k, "content_temperature": temperature}
                rows.append(
                    search.add(
                        "ease",
                        params,
                        "ok",
                        time.perf_counter() - tick,
                        _metrics(variant, val),
                        variant,
                    )
                )
    return rows


def ease_plan(
    counts: np.ndarray, budget: float, calib: float | None = None
) -> tuple[dict[str, Any] | None, str]:
    """Whether a dense EASE fits: ``({}, "")`` in full, ``({"max_items": n}, "")`` capped to
    the n most popular items (they carry most positives), or ``(None, "skipped: why")``.

    One fit may take a sixth of the budget (several are tried, and there is a final refit)
    and :data:`EASE_MEMORY_SHARE` of the machine's memory.
    """
    counts = np.asarray(counts)
    n_warm = int((counts > 0).sum())
    calib = _calibrate() if calib is None else calib
    by_memory, by_time = _ease_limits(budget / 6.0, calib)
    limit = min(by_memory, by_time, EASEConfig().max_items)
    if n_warm <= limit:
        return {}, ""
    top = np.sort(counts)[::-1][:limit]
    coverage = float(top.sum()) / max(float(counts.sum()), 1.0)
    if coverage < EASE_MIN_COVERAGE or limit < 100:
        return None, (
            f"skipped: {n_warm:,} items with events; a dense item-item model fits at most "
            f"{limit:,} here (memory {by_memory:,}, time {by_time:,}) and those would cover "
            f"only {coverage:.0%} of positives"
        )
    return {"max_items": int(limit)}, ""


def _fit_ease(search: _Search, val: Validation, params: dict[str, Any]) -> dict[str, Any]:
    tick = time.perf_counter()
    try:
        model = EASERecommender(seed=search.seed, **params).fit(val.train, deadline=search.deadline)
    except TimeoutError:
        return search.add("ease", params, "timeout", time.perf_counter() - tick)
    except MemoryError:
        return search.add("ease", params, "skipped: out of memory", time.perf_counter() - tick)
    metrics = _metrics(model, val)
    return search.add(
        "ease", params, "ok", time.perf_counter() - tick, metrics, model, {"rank": model.rank_}
    )


# ---------------------------------------------------------------------------- hybrid
def _search_hybrid(
    search: _Search, val: Validation, default: dict[str, Any]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    scale = len(search.dataset) / max(len(val.train), 1)
    if search.left() <= 0:
        rows.append(search.add("hybrid", default, "skipped: budget"))
        return rows
    # the default gets half of what is left: its refit on all data needs most of the rest
    first_deadline = time.monotonic() + max(search.left() * 0.5, 1.0)
    rows.append(_run_hybrid(search, val, default, first_deadline, "default"))
    first = rows[-1]
    if first["status"] not in ("ok", "timeout"):
        return rows
    epoch_s = first["epoch_seconds"]
    refit_s = epoch_s * scale * first["epochs"]
    rng = np.random.default_rng(search.seed + 31)
    # successive halving: short runs of random variants, the better half trained fully
    short_epochs = max(3, first["epochs"] // 3)
    variants = []
    for _ in range(4):
        change = {k: v[int(rng.integers(len(v)))] for k, v in HYBRID_SPACE.items()}
        variants.append(_hybrid_params(default, **change))
    short_rows = []
    for params in variants:
        need = epoch_s * short_epochs * 1.3 + refit_s + 5
        if search.left() < need:
            rows.append(search.add("hybrid", params, "skipped: budget"))
            continue
        p = {**params, "max_epochs": short_epochs}
        row = _run_hybrid(search, val, p, search.deadline - refit_s, f"short {short_epochs} epochs")
        rows.append(row)
        short_rows.append((row, params))
    if short_rows:
        _objectives(search.table)
        ranked = sorted(
            [(r, p) for r, p in short_rows if "objective" in r],
            key=lambda rp: -rp[0]["objective"],
        )
        for _row, params in ranked[: max(1, len(ranked) // 2)]:
            need = epoch_s * first["epochs"] * 1.5 + refit_s + 5
            if search.left() < need:
                rows.append(search.add("hybrid", params, "skipped: budget"))
                continue
            rows.append(_run_hybrid(search, val, params, search.deadline - refit_s, "full"))
    return rows


# ---------------------------------------------------------------------------- blend
def _search_blend(
    search: _Search, val: Validation, best_h: dict[str, Any], best_e: dict[str, Any]
) -> None:

    tick = time.perf_counter()
    hyb = search.fitted[search.table.index(best_h)]
    ease = search.fitted[search.table.index(best_e)]
    (scale_h, scores_h), (scale_e, scores_e) = (
        search.scaled_scores(best_h, val),
        search.scaled_scores(best_e, val),
    )
    scales = [scale_h, scale_e]
    cache = {p: [scores_h[p], scores_e[p]] for p in val.splits}
    keys = np.unique(val.train.users * np.int64(max(val.train.n_items, 1)) + val.train.items)
    counts = np.bincount(keys % max(val.train.n_items, 1), minlength=val.train.n_items)
    pop = (np.log1p(counts) / np.log1p(max(int(counts.max(initial=0)), 1))).astype(np.float32)
    cold = counts == 0

    fast = {p: _FastRecall(split) for p, split in val.splits.items()}

    def run(
        protocol: str, a: float, c: float, beta: float, mh: float = 1.0, me: float = 1.0
    ) -> dict[str, float]:
        sh, se = cache[protocol]
        wh = np.where(cold, c, a)
        scores = (mh * wh)[None, :] * sh + (me * (1 - wh))[None, :] * se + beta * pop[None, :]
        return {"recall@10": fast[protocol].recall(scores)}

    # shares stay inside (0, 1) so a new shopper's mix is a finite multiple of the known one's
    alphas = [round(float(x), 2) for x in np.linspace(0.05, 0.95, 10)]
    betas = (0.0, 0.25, 0.5, 1.0, 2.0)
    known_protocols = [p for p in val.splits if p in ("warm", "next")] or [
        p for p in val.splits if p != "cold-items"
    ]
    # 1) shoppers the model knows: hybrid share and popularity prior on warm + next
    grid_known = []
    for a in alphas:
        for beta in betas:
            per = {p: run(p, a, a, beta) for p in known_protocols}
            grid_known.append((_weighted(per, "recall@10") if per else 0.0, a, beta))
        if search.left() < 5:
            break
    _score, a_known, b_known = _simplest(grid_known)
    # 2) items without events: their own share, on cold-items
    a_cold = a_known
    if "cold-items" in val.splits:
        grid_cold = [
            (run("cold-items", a_known, c, b_known)["recall@10"], c, 0.0)
            for c in [0.0, *alphas, 1.0]
        ]
        # no prior here: the share nearest the known shoppers' one among the near-best
        _score, a_cold, _ = _simplest(grid_cold, centre=a_known)
    # 3) new shoppers (a few revealed items): their own share and prior, on cold-users
    a_new, b_new = a_known, b_known
    if "cold-users" in val.splits:
        grid_new = []
        for a in alphas:
            mh, me = a / a_known, (1 - a) / (1 - a_known)
            for beta in betas:
                r = run("cold-users", a_known, a_cold, beta, mh, me)["recall@10"]
                grid_new.append((r, a, beta))
        _score, a_new, b_new = _simplest(grid_new, centre=a_known)
    blend = _blend_from_shares(
        [hyb, ease], val.train, scales, a_known, a_cold, a_new, b_known, b_new
    )
    # The blend's validation metrics from the cached family scores: its inner product is
    # exactly this weighted sum (tests check it), and scoring the blend user by user again
    # would cost more than the whole grid.
    metrics = {}
    for protocol, split in val.splits.items():
        sh, se = cache[protocol]
        known = split.known_user[:, None]
        wh = np.where(cold, a_cold, a_known)[None, :]
        mh = np.where(known, 1.0, a_new / a_known)
        me = np.where(known, 1.0, (1 - a_new) / (1 - a_known))
        beta = np.where(known, b_known, b_new)
        scores = mh * wh * sh + me * (1 - wh) * se + beta * pop[None, :]
        m = evaluate(_Fixed(scores), split, ks=(10,))
        metrics[protocol] = {"recall@10": m["recall@10"], "ndcg@10": m["ndcg@10"]}
    params = {
        "components": [
            {"family": "hybrid", "params": best_h["params"], "epochs": best_h.get("epochs")},
            {"family": "ease", "params": best_e["params"]},
        ],
        "hybrid_share": {"warm": a_known, "cold": a_cold, "new": a_new},
        "popularity": {"known": b_known, "new": b_new},
        "scales": [float(x) for x in scales],
    }
    search.add("blend", params, "ok", time.perf_counter() - tick, metrics, blend)


#: Grid points of the blend within this relative distance of the best validation recall are
#: a tie: the simplest of them wins (see :func:`_simplest`).
BLEND_TIE = 0.005


def _simplest(
    grid: list[tuple[float, float, float]], centre: float | None = None
) -> tuple[float, float, float]:
    """The blend grid point to keep from ``(score, share, prior)`` rows: among those within
    :data:`BLEND_TIE` of the best score (differences a validation split cannot resolve), the
    one with the smallest popularity prior, then the share nearest ``centre`` (the known
    shoppers' share; none: the best score). Fewer moving parts generalise better from one
    validation split than the grid's noisy maximum."""
    best = max(score for score, _a, _b in grid)
    near = [row for row in grid if row[0] >= best * (1.0 - BLEND_TIE)]
    return min(
        near,
        key=lambda row: (row[2], abs(row[1] - centre) if centre is not None else -row[0]),
    )


def _blend_from_shares(
    parts: list[Any],
    dataset: Dataset,
    scales: list[float],
    a_known: float,
    a_cold: float,
    a_new: float,
    b_known: float,
    b_new: float,
) -> Any:
    """A hybrid + EASE blend from hybrid shares (known shoppers / items without events / new
    shoppers) and popularity priors, scores normalised by each family's spread."""
    from .blend import BlendRecommender

    return BlendRecommender(
        warm=[a_known / scales[0], (1 - a_known) / scales[1]],
        cold=[a_cold / scales[0], (1 - a_cold) / scales[1]],
        popularity=b_known,
        new=[a_new / a_known, (1 - a_new) / (1 - a_known)],
        new_popularity=b_new,
    ).with_parts(parts, dataset)


# ---------------------------------------------------------------------------- refit
def _final_hybrid_params(row: dict[str, Any]) -> dict[str, Any]:
    epochs = int(row.get("epochs") or row["params"].get("max_epochs", 100))
    return {**row["params"], "max_epochs": max(1, epochs), "validation_fraction": 0.0}


def _final_ease_params(params: dict[str, Any], val: Validation, full: Dataset) -> dict[str, Any]:
    """EASE's refit keeps the λ validation chose. (Scaling λ with the number of positives, as
    the Gram matrix's diagonal grows, was tried: on ml100k's test splits it cost 1-3% warm
    Recall@10 against the unscaled λ, which is also what EASE's peers refit with.)"""
    return dict(params)


def _refit(search: _Search, best: dict[str, Any], val: Validation) -> VectorRecommender:
    from .hybrid import HybridRecommender

    if best["family"] in EXTRA_FAMILIES:
        return importlib.import_module(EXTRA_FAMILIES[best["family"]]).refit(search, best, val)
    full = search.dataset
    tick = time.perf_counter()
    if best["family"] == "ease":
        model = EASERecommender(seed=search.seed, **_final_ease_params(best["params"], val, full))
        model.fit(full)
    elif best["family"] == "hybrid":
        model = HybridRecommender(**_final_hybrid_params(best))
        model.fit(full, progress=False, deadline=search.deadline)
    else:
        comps = best["params"]["components"]
        hyb_row = {"params": comps[0]["params"], "epochs": comps[0].get("epochs")}
        # EASE's refit comes after the hybrid's: leave it the time its search fits took
        ease_s = max(
            [r["seconds"] for r in search.table if r["family"] == "ease" and r["seconds"] > 0.5]
            or [1.0]
        )
        hyb = HybridRecommender(**_final_hybrid_params(hyb_row))
        hyb.fit(full, progress=False, deadline=search.deadline - 1.5 * ease_s - 2.0)
        ease = EASERecommender(
            seed=search.seed, **_final_ease_params(comps[1]["params"], val, full)
        )
        ease.fit(full)
        # the same sample of shoppers for both, as in the search (Search.scaled_scores)
        scales = [
            _score_scale(m, full, np.random.default_rng(search.seed + 5)) for m in (hyb, ease)
        ]
        share, prior = best["params"]["hybrid_share"], best["params"]["popularity"]
        model = _blend_from_shares(
            [hyb, ease], full, scales, share["warm"], share["cold"], share["new"],
            prior["known"], prior["new"],
        )  # fmt: skip
    search.notes.append(f"final refit on all data: {time.perf_counter() - tick:.1f} s")
    return model
