"""Recommendation quality: our hybrid model vs in-project baselines vs peer libraries.

    python bench/quality.py --bundle ../shared/data/ml100k
    python bench/quality.py --bundle ../shared/data/ml100k --quick            (seed 0 only)
    python bench/quality.py --bundle DIR --seeds 0 1 2 --protocols warm cold-items cold-users \\
        --k 10 20 [--only hybrid als] [--hybrid max_epochs=30] [--json out.json]

Protocols (``shop_recs.recsys.evaluation``, as in ``../shared/data/ml100k/PEERS.md``): positives are
ratings >= 4 and every other event; ``warm`` = random 80/20 of positive pairs; ``cold-items`` =
20% of items held out with all their events, ranked among the held-out items only;
``cold-users`` = 20% of users held out, first 5 positives by time revealed at request time,
ranked over all items except the revealed ones. Every model is fitted on the same split of each
seed and scored by the same ``evaluate`` (training positives/revealed items masked, Recall@K
divided by all of a user's test positives). Peers tune on a validation split carved from the
training positives (never on the test set); their training time includes that search.

Models: ``Random`` (reference), in-project ``Popularity``, ``Content-kNN`` (fused MiniLM text +
EfficientNet image vectors), ``MF`` (ID-only sampled-softmax MF), our ``Hybrid``
(``recsys.hybrid.HybridRecommender``; skipped with a message if it does not import), and the
peers implicit ALS/BPR and LightFM WARP without features, with genres, and with genres + TF-IDF
(``bench/peers.py``; skipped with a message when not installed). A model that cannot serve a
protocol (no features for cold items, no fold-in for cold users) shows ``n/a``.

Item features are encoded once and cached under ``.data/bench-cache/`` (~3 minutes for ml100k
on 2 cores the first time).

Peers are optional dependencies, installed into the project venv with::

    .venv/bin/pip install -r requirements-bench.txt
    PYTHONPATH=bench/_lightfm_build .venv/bin/pip install --no-build-isolation lightfm==1.17

(the ``PYTHONPATH`` shim only works around lightfm 1.17's setup.py, which cannot run under
setuptools' PEP 517 backend; see ``requirements-bench.txt``).

Output: one markdown table per protocol (mean over seeds; sd = standard deviation of N@10
across seeds; train s = mean wall time of fit), the peers' chosen hyper-parameters, and LAST one
line per protocol: our Recall@10 over the best peer's (warm: best of all peers and popularity;
cold-items: the best LightFM variant with item features; cold-users: best of all peers and
popularity) against the targets 1.10 / 1.25 / 1.10, with the hybrid's training time against
the 2-minute target.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT

from shop_recs.recsys.baselines import (
    ContentKNNRecommender,
    MatrixFactorizationRecommender,
    PopularityRecommender,
    RandomRecommender,
)
from shop_recs.recsys.bundle import bundle_dataset, bundle_item_records
from shop_recs.recsys.evaluation import PROTOCOLS, evaluate, make_split

THREADS = 2
TARGETS = {"warm": 1.10, "cold-items": 1.25, "cold-users": 1.10}
TRAIN_TARGET_S = 120.0
HYBRID = "Hybrid (ours)"
POPULARITY = "Popularity"
# Which rows the ratio compares against, per protocol (PEERS.md lists Popularity as a peer).
PEER_NAMES = (
    POPULARITY,
    "implicit ALS",
    "implicit BPR",
    "LightFM WARP",
    "LightFM WARP + genres",
    "LightFM WARP + genres + TF-IDF",
)
RATIO_PEERS = {
    "warm": PEER_NAMES,
    "cold-items": ("LightFM WARP + genres", "LightFM WARP + genres + TF-IDF"),
    "cold-users": PEER_NAMES,
}


@dataclass
class Entry:
    """One table row: how to build the model for (protocol, seed), and where it applies."""

    name: str
    protocols: frozenset[str]
    build: Callable[[str, int], Any]
    fit_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="catalog bundle directory")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    p.add_argument("--k", type=int, nargs="+", default=[10, 20], dest="ks")
    p.add_argument("--quick", action="store_true", help="seed 0 only")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="WORD",
        help="run only models whose name contains one of these words (case-insensitive)",
    )
    p.add_argument(
        "--hybrid",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="HybridRecommender config overrides (VALUE parsed as JSON, else a string)",
    )
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".data" / "bench-cache")
    p.add_argument("--json", type=Path, help="also write every per-seed result here")
    p.add_argument("--progress", action="store_true", help="show training progress bars")
    return p.parse_args()


def hybrid_overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--hybrid takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def hybrid_entry(overrides: dict[str, Any], progress: bool) -> tuple[Entry | None, str | None]:
    try:
        from shop_recs.recsys.hybrid import HybridRecommender
    except Exception as exc:  # any import-time failure: report it, run the rest
        return None, f"skipping {HYBRID}: recsys.hybrid does not import ({exc!r})"
    kwargs = {}
    if "progress" in inspect.signature(HybridRecommender.fit).parameters:
        kwargs["progress"] = progress

    def build(protocol: str, seed: int) -> Any:
        return HybridRecommender(**{"seed": seed, "num_threads": THREADS, **overrides})

    return Entry(HYBRID, frozenset(PROTOCOLS), build, kwargs), None


def entries(
    args: argparse.Namespace, records: list[dict[str, str]]
) -> tuple[list[Entry], list[str]]:
    import peers

    notes: list[str] = []
    rows = [
        Entry("Random (reference)", frozenset(PROTOCOLS), lambda p, s: RandomRecommender(seed=s)),
        Entry(POPULARITY, frozenset({"warm", "cold-users"}), lambda p, s: PopularityRecommender()),
        Entry("Content-kNN", frozenset(PROTOCOLS), lambda p, s: ContentKNNRecommender()),
        Entry(
            "MF (ID-only)",
            frozenset({"warm", "cold-users"}),
            lambda p, s: MatrixFactorizationRecommender(seed=s, threads=THREADS),
        ),
    ]
    hybrid, why = hybrid_entry(hybrid_overrides(args.hybrid), args.progress)
    if hybrid is not None:
        rows.insert(1, hybrid)
    else:
        notes.append(why or "")
    factories, peer_notes = peers.peer_factories(records)
    notes.extend(peer_notes)
    rows.extend(Entry(name, protos, build) for name, protos, build in factories)
    if args.only:
        words = [w.lower() for w in args.only]
        rows = [r for r in rows if any(w in r.name.lower() for w in words)]
    return rows, notes


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def print_table(
    protocol: str,
    seeds: list[int],
    ks: list[int],
    rows: list[Entry],
    results: dict[str, list[dict[str, float]]],
    counts: list[dict[str, int]],
) -> None:
    c = {k: mean([float(x[k]) for x in counts]) for k in counts[0]}
    print(f"\n### {protocol}\n")
    print(
        f"mean over seeds {', '.join(map(str, seeds))}: train positives "
        f"{c['train_positives']:,.0f}, test users {c['test_users']:,.0f}, test positives "
        f"{c['test_positives']:,.0f}, candidates {c['candidates']:,.0f}\n"
    )
    k1 = ks[0]
    cols = []
    for k in ks:
        cols += [f"R@{k}", f"N@{k}"]
    cols += [f"MAP@{k1}", f"HR@{k1}", f"Cov@{k1}", f"sd N@{k1}", "train s"]
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for row in rows:
        runs = results.get(row.name, [])
        if not runs:
            print(f"| {row.name} | " + " | ".join(["n/a"] * len(cols)) + " |")
            continue
        cells = []
        for k in ks:
            cells += [
                fmt(mean([r[f"recall@{k}"] for r in runs])),
                fmt(mean([r[f"ndcg@{k}"] for r in runs])),
            ]
        cells += [
            fmt(mean([r[f"map@{k1}"] for r in runs])),
            fmt(mean([r[f"hit_rate@{k1}"] for r in runs])),
            fmt(mean([r[f"coverage@{k1}"] for r in runs])),
            fmt(sd([r[f"ndcg@{k1}"] for r in runs])),
            f"{mean([r['train_s'] for r in runs]):.1f}",
        ]
        print(f"| {row.name} | " + " | ".join(cells) + " |")


def ratio_line(protocol: str, results: dict[str, list[dict[str, float]]]) -> str:
    target = TARGETS[protocol]
    ours = results.get(HYBRID)
    candidates = {
        name: mean([r["recall@10"] for r in results[name]])
        for name in RATIO_PEERS[protocol]
        if results.get(name)
    }
    if not ours:
        return f"ratio {protocol}: n/a (no {HYBRID} results) target >= {target:.2f}"
    if not candidates:
        return f"ratio {protocol}: n/a (no peer results for {protocol}) target >= {target:.2f}"
    best = max(candidates, key=candidates.__getitem__)
    our_r = mean([r["recall@10"] for r in ours])
    ratio = our_r / candidates[best] if candidates[best] > 0 else float("inf")
    train_s = mean([r["train_s"] for r in ours])
    return (
        f"ratio {protocol}: hybrid R@10 {our_r:.4f} / {best} {candidates[best]:.4f} = "
        f"{ratio:.2f}x (target >= {target:.2f}: {'PASS' if ratio >= target else 'FAIL'}); "
        f"hybrid train {train_s:.1f} s (target <= {TRAIN_TARGET_S:.0f} s: "
        f"{'PASS' if train_s <= TRAIN_TARGET_S else 'FAIL'})"
    )


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(THREADS)
    threadpool_limits(THREADS)
    seeds = [args.seeds[0]] if args.quick else args.seeds
    ks = sorted(set(args.ks))
    if 10 not in ks:
        ks = [10, *ks]  # the ratio lines are about Recall@10

    dataset = bundle_dataset(args.bundle, cache_dir=args.cache_dir)
    records = bundle_item_records(args.bundle)
    rows, notes = entries(args, records)
    print(
        f"bundle {args.bundle}: {dataset.n_users:,} users, {dataset.n_items:,} items, "
        f"{len(dataset):,} positive events; seeds {seeds}; torch threads {THREADS}"
    )
    for note in notes:
        print(note)

    all_results: dict[str, dict[str, list[dict[str, float]]]] = {}
    chosen: dict[str, list[Any]] = {}
    for protocol in args.protocols:
        results: dict[str, list[dict[str, float]]] = {}
        counts = []
        for seed in seeds:
            split = make_split(dataset, protocol, seed)
            counts.append(split.counts())
            for row in rows:
                if protocol not in row.protocols:
                    continue
                model = row.build(protocol, seed)
                t0 = time.perf_counter()
                model.fit(split.train, **row.fit_kwargs)
                train_s = time.perf_counter() - t0
                metrics = evaluate(model, split, ks=ks)
                metrics.update(train_s=train_s, seed=seed)
                results.setdefault(row.name, []).append(metrics)
                if getattr(model, "chosen", None) is not None:
                    chosen.setdefault(row.name, []).append(model.chosen)
                print(
                    f"  {protocol:<10} seed {seed} {row.name:<32} R@10 {metrics['recall@10']:.4f} "
                    f"N@10 {metrics['ndcg@10']:.4f}  fit {train_s:6.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
        all_results[protocol] = results
        print_table(protocol, seeds, ks, rows, results, counts)

    print()
    for name, picks in chosen.items():
        print(f"- {name}: chosen per run (protocol x seed order): {picks}")
    print(f"\nTotal wall time {time.perf_counter() - started:.0f} s.\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(all_results, indent=1))
    for protocol in args.protocols:
        print(ratio_line(protocol, all_results[protocol]))


if __name__ == "__main__":
    main()
