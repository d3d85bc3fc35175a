"""Recommendation quality: our per-shop model selection vs in-project baselines vs peers.

    python bench/quality.py --bundle ../shared/data/ml100k                       (3 seeds, base)
    python bench/quality.py --bundle ../shared/data/ml100k --quick               (seed 0 only)
    python bench/quality.py --bundle DIR --seeds 3 --shape all --protocols warm next \\
        --budget 180 [--only ours als] [--extra] [--out bench/out/quality.md] [--json out.json]
    python bench/quality.py --bundle DIR --through-app    (+ the app path: bench/through_app.py)

Protocols (``shop_recs.recsys.evaluation``, as in ``../shared/data/ml100k/PEERS.md``): positives are
ratings >= 4 and every other event; ``warm`` = random 80/20 of positive pairs; ``cold-items`` =
20% of items held out with all their events, ranked among the held-out items only;
``cold-users`` = 20% of users held out, first 5 positives by time revealed at request time,
ranked over all items except the revealed ones; ``next`` = each user's last 20% of items by
time held out (what comes next). Every model is fitted on the same split of each seed and
scored by the same ``evaluate`` (training positives/revealed items masked, Recall@K divided by
all of a user's test positives). Peers tune on a validation split carved from the training
positives (never on the test set); their training time includes that search.

Shapes (``--shape``, ``bench/shapes.py``): ``base`` (the bundle), ``no-images`` (images
removed from 70% of items), ``long-tail`` (positives of unpopular items subsampled),
``heavy-users`` (groups of shoppers merged into heavy accounts); ``all`` = every shape.

Models: ``Random`` (reference), in-project ``Popularity`` and ``Content-kNN``, **ours**:
whatever ``shop_recs.recsys.selection.select_model`` picks for the split's training data with
``--budget`` seconds (the app's default ``TRAIN_BUDGET_SECONDS``): an honest per-dataset
search, nothing tuned to the bundle; its train time includes the search. Peers
(``bench/peers.py``): EASE (numpy, always), implicit ALS/BPR and LightFM WARP without
features, with genres, and with genres + TF-IDF (skipped with a message when not installed).
``--extra`` adds ID-only MF and the hybrid with its default config. A model that cannot serve
a protocol shows ``n/a``.

Item features are encoded once and cached under ``.data/bench-cache/`` (~3 minutes for ml100k
on 2 cores the first time).

Peers are optional dependencies, installed into the project venv with::

    .venv/bin/pip install -r requirements-bench.txt
    PYTHONPATH=bench/_lightfm_build .venv/bin/pip install --no-build-isolation lightfm==1.17

(the ``PYTHONPATH`` shim only works around lightfm 1.17's setup.py, which cannot run under
setuptools' PEP 517 backend; see ``requirements-bench.txt``).

Output: one markdown table per shape x protocol (mean over seeds; sd = standard deviation of
N@10 across seeds; train s = mean wall time of fit), the choices made per run, and LAST one
line per shape x protocol: our Recall@10 over the best peer's (warm and next: best of all
peers and popularity; cold-items: the best LightFM variant with item features; cold-users:
best of all peers and popularity) against the targets 1.00 / 1.25 / 1.10 / 1.00, with our
training time (search included) against the 180 s target. ``--out`` also writes it all to a
file (default ``bench/out/quality-<shapes>.md``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT
from shapes import SHAPES, derive, describe

from shop_recs.recsys.baselines import (
    ContentKNNRecommender,
    MatrixFactorizationRecommender,
    PopularityRecommender,
    RandomRecommender,
)
from shop_recs.recsys.bundle import bundle_dataset, bundle_item_records
from shop_recs.recsys.evaluation import ALL_PROTOCOLS, evaluate, make_split

THREADS = 2
TARGETS = {"warm": 1.00, "cold-items": 1.25, "cold-users": 1.10, "next": 1.00}
TRAIN_TARGET_S = 180.0
DEFAULT_BUDGET_S = 180.0
OURS = "shop_recs (selected)"
HYBRID_DEFAULT = "Hybrid (default config)"
POPULARITY = "Popularity"
# Which rows the ratio compares against, per protocol (PEERS.md lists Popularity as a peer).
PEER_NAMES = (
    POPULARITY,
    "EASE",
    "implicit ALS",
    "implicit BPR",
    "LightFM WARP",
    "LightFM WARP + genres",
    "LightFM WARP + genres + TF-IDF",
)
RATIO_PEERS = {
    "warm": PEER_NAMES,
    "next": PEER_NAMES,
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


class Selected:
    """``select_model`` as a fit/score_items model: what a shop's ``recs_train`` would pick."""

    def __init__(self, seed: int, budget: float) -> None:
        self.seed = seed
        self.budget = budget
        self.chosen: Any = None

    def fit(self, train: Any) -> Selected:
        from shop_recs.recsys.selection import select_model

        selection = select_model(
            train,
            budget_seconds=self.budget,
            seed=self.seed,
            progress=False,
            base_params={"num_threads": THREADS},
        )
        self.model = selection.model
        for row in selection.table:
            recall = row.get("recall@10")
            print(
                f"    candidate {row['family']:<6} {row['status'][:60]:<60} "
                f"R@10 {'  -   ' if recall is None else f'{recall:.4f}'} "
                f"obj {row.get('objective', float('nan')):.3f} {row['seconds']:7.1f} s",
                file=sys.stderr,
            )
        tried = sum(1 for r in selection.table if r["status"] in ("ok", "timeout"))
        self.chosen = {
            "family": selection.chosen["family"],
            "validation R@10": round(selection.chosen["validation"].get("recall@10", 0.0), 4),
            "tried": tried,
            "search s": round(selection.seconds, 1),
        }
        if selection.chosen["family"] == "blend":
            self.chosen["hybrid share"] = selection.chosen["params"]["hybrid_share"]
        return self

    def score_items(self, users: Any, histories: Any) -> Any:
        return self.model.score_items(users, histories)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="catalog bundle directory")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1), mean reported")
    p.add_argument("--protocols", nargs="+", choices=ALL_PROTOCOLS, default=list(ALL_PROTOCOLS))
    p.add_argument(
        "--shape", nargs="+", choices=(*SHAPES, "all"), default=["base"], help="dataset shapes"
    )
    p.add_argument("--k", type=int, nargs="+", default=[10, 20], dest="ks")
    p.add_argument("--quick", action="store_true", help="seed 0 only")
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="select_model budget in seconds (the app's TRAIN_BUDGET_SECONDS default)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="WORD",
        help="run only models whose name contains one of these words (case-insensitive)",
    )
    p.add_argument("--extra", action="store_true", help="also ID-only MF and the default hybrid")
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".data" / "bench-cache")
    p.add_argument("--json", type=Path, help="also write every per-seed result here")
    p.add_argument("--out", type=Path, help="also write the report here (default bench/out/)")
    p.add_argument("--progress", action="store_true", help="show training progress bars")
    p.add_argument(
        "--through-app",
        action="store_true",
        help="also run the base shape's splits through the app (bench/through_app.py)",
    )
    return p.parse_args()


def entries(
    args: argparse.Namespace, records: list[dict[str, str]]
) -> tuple[list[Entry], list[str]]:
    import peers

    notes: list[str] = []
    every = frozenset(ALL_PROTOCOLS)
    rows = [
        Entry("Random (reference)", every, lambda p, s: RandomRecommender(seed=s)),
        Entry(OURS, every, lambda p, s: Selected(s, args.budget)),
        Entry(
            POPULARITY,
            frozenset({"warm", "cold-users", "next"}),
            lambda p, s: PopularityRecommender(),
        ),
        Entry("Content-kNN", every, lambda p, s: ContentKNNRecommender()),
    ]
    if args.extra:
        from shop_recs.recsys.hybrid import HybridRecommender

        rows.append(
            Entry(
                "MF (ID-only)",
                frozenset({"warm", "cold-users", "next"}),
                lambda p, s: MatrixFactorizationRecommender(seed=s, threads=THREADS),
            )
        )
        rows.append(
            Entry(
                HYBRID_DEFAULT,
                every,
                lambda p, s: HybridRecommender(seed=s, num_threads=THREADS),
                {"progress": args.progress},
            )
        )
    factories, peer_notes = peers.peer_factories(records)
    notes.extend(peer_notes)
    rows.extend(Entry(name, protos, build) for name, protos, build in factories)
    if args.only:
        words = [w.lower() for w in args.only]
        rows = [
            r
            for r in rows
            if any(w in r.name.lower() or (w == "ours" and r.name == OURS) for w in words)
        ]
    return rows, notes


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def print_table(
    title: str,
    seeds: list[int],
    ks: list[int],
    rows: list[Entry],
    results: dict[str, list[dict[str, float]]],
    counts: list[dict[str, int]],
) -> None:
    c = {k: mean([float(x[k]) for x in counts]) for k in counts[0]}
    print(f"\n### {title}\n")
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
        name = f"**{row.name}**" if row.name == OURS else row.name
        print(f"| {name} | " + " | ".join(cells) + " |")


def ratio_line(shape: str, protocol: str, results: dict[str, list[dict[str, float]]]) -> str:
    target = TARGETS[protocol]
    ours = results.get(OURS)
    candidates = {
        name: mean([r["recall@10"] for r in results[name]])
        for name in RATIO_PEERS[protocol]
        if results.get(name)
    }
    label = f"ratio {shape} {protocol}"
    if not ours:
        return f"{label}: n/a (no {OURS} results) target >= {target:.2f}"
    if not candidates:
        return f"{label}: n/a (no peer results for {protocol}) target >= {target:.2f}"
    best = max(candidates, key=candidates.__getitem__)
    our_r = mean([r["recall@10"] for r in ours])
    ratio = our_r / candidates[best] if candidates[best] > 0 else float("inf")
    train_s = mean([r["train_s"] for r in ours])
    return (
        f"{label}: ours R@10 {our_r:.4f} / {best} {candidates[best]:.4f} = "
        f"{ratio:.2f}x (target >= {target:.2f}: {'PASS' if ratio >= target else 'FAIL'}); "
        f"train incl. search {train_s:.1f} s (target <= {TRAIN_TARGET_S:.0f} s: "
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
    seeds = [0] if args.quick else list(range(args.seeds))
    ks = sorted(set(args.ks))
    if 10 not in ks:
        ks = [10, *ks]  # the ratio lines are about Recall@10
    shapes = list(SHAPES) if "all" in args.shape else list(dict.fromkeys(args.shape))

    dataset = bundle_dataset(args.bundle, cache_dir=args.cache_dir)
    records = bundle_item_records(args.bundle)
    rows, notes = entries(args, records)
    report = io.StringIO()

    def say(text: str = "") -> None:
        print(text, flush=True)
        report.write(text + "\n")

    try:
        load = os.getloadavg()
        load_text = f"; load average at start {load[0]:.1f} on {os.cpu_count()} CPUs"
    except OSError:
        load_text = ""
    say(
        f"bundle {args.bundle.name}: {dataset.n_users:,} users, {dataset.n_items:,} items, "
        f"{len(dataset):,} positive events; seeds {seeds}; torch threads {THREADS}; "
        f"selection budget {args.budget:.0f} s{load_text}"
    )
    for note in notes:
        say(note)

    all_results: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = {}
    chosen: dict[str, list[Any]] = {}
    for shape in shapes:
        all_results[shape] = {}
        say(f"\n## shape {shape}: {describe(derive(dataset, shape, 0))}")
        for protocol in args.protocols:
            results: dict[str, list[dict[str, float]]] = {}
            counts = []
            for seed in seeds:
                data = derive(dataset, shape, seed)
                split = make_split(data, protocol, seed)
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
                        chosen.setdefault(f"{row.name} [{shape}]", []).append(
                            (protocol, seed, model.chosen)
                        )
                    print(
                        f"  {shape:<11} {protocol:<10} seed {seed} {row.name:<32} "
                        f"R@10 {metrics['recall@10']:.4f} N@10 {metrics['ndcg@10']:.4f}  "
                        f"fit {train_s:6.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
            all_results[shape][protocol] = results
            buf = io.StringIO()
            with redirect_stdout(buf):
                print_table(f"{shape} / {protocol}", seeds, ks, rows, results, counts)
            say(buf.getvalue().rstrip("\n"))

    say()
    for name, picks in chosen.items():
        say(f"- {name}: chosen per run (protocol, seed, choice): {picks}")
    say(f"\nTotal wall time {time.perf_counter() - started:.0f} s.\n")
    for shape in shapes:
        for protocol in args.protocols:
            say(ratio_line(shape, protocol, all_results[shape][protocol]))
    if args.through_app and "base" in all_results:
        import through_app

        buf = io.StringIO()
        with redirect_stdout(buf):
            verdicts = through_app.quality_hook(
                args, dataset, all_results["base"], OURS, seeds, ks, budget_seconds=args.budget,
                model_params={"num_threads": THREADS},
            )  # fmt: skip
        say(buf.getvalue().rstrip("\n"))
        for line in verdicts:
            say(line)
    out = args.out or ROOT / "bench" / "out" / f"quality-{'-'.join(shapes)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.getvalue(), encoding="utf-8")
    print(f"\nreport written to {out}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(all_results, indent=1))


if __name__ == "__main__":
    main()
