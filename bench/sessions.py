"""Order-aware recommendations (issue 18): the ``next`` and ``session`` protocols, and latency.

    python bench/sessions.py                                   (ml100k + demo, 3 seeds)
    python bench/sessions.py --datasets demo --seeds 1 --only ours session-knn
    python bench/sessions.py --latency                         (request-time user vectors)

Protocols (``shop_recs.recsys.evaluation``): ``next`` = each user's last 20% of items by time
held out, ranked after their training items in time order (known users); ``session`` =
anonymous traffic: sessions cut by a 30-minute gap, the last 20% of sessions by start time are
the test set, each prefix of a test session predicts its next step (``session_split``; at
most ``--max-cases`` prefixes, sampled with the seed). Metrics: HitRate@10 (share of cases with
a held-out item in the top 10) and MRR@10, training items / the prefix masked.

Datasets: ml100k (ratings >= 4 ordered by timestamp; ``--ml100k DIR``) and the demo catalogue's
events (``demo/bundle``). Item features are encoded once and cached (``.data/bench-cache``).

Models: Popularity; session-kNN (item co-occurrence within training sessions, cosine, the
prefix's items weighted by recency decay chosen on a validation split of the training data);
implicit ALS (``bench/peers.py``: tuned on validation; the session protocol folds each prefix
in with ``recalculate_user``, tuned on the cold-users validation); the order-blind hybrid
two-tower model (default config); ours: the sequence model (``shop_recs.recsys.sequence``,
default config). Mean of ``--seeds`` seeds; the last lines compare ours with the best of
session-kNN, ALS and the order-blind tower on HitRate@10 against the 1.10x target.

``--latency`` trains both towers (default configs, one epoch on 2,000 events: the cost does
not depend on the weights) on the first of ``--datasets``, saves them, loads the torch-free
servers (``HybridVectors``, ``SequenceVectors``) and times ``user_vector`` over the stored
vectors of ``HISTORY_LENGTH`` (50) recent items, as a request does, interleaved: p50 of each
and the ratio against the 1.5x target, with `--blas-threads` (1) BLAS threads as in a web worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, p50, percentile
from peers import ImplicitALS, implicit_available
from scipy import sparse

from shop_recs.recsys.base import Dataset
from shop_recs.recsys.baselines import PopularityRecommender
from shop_recs.recsys.bundle import bundle_dataset
from shop_recs.recsys.evaluation import make_split
from shop_recs.recsys.evaluation.sessions import evaluate_sessions, session_split, sessions_of

THREADS = 2
TARGET = 1.10
LATENCY_TARGET = 1.5
OURS = "Sequence tower (ours)"
COMPARED = ("session-kNN", "implicit ALS", "Hybrid (order-blind)")
DECAYS = (1.0, 0.8, 0.5, 0.3)


class SessionKNN:
    """Item-item co-occurrence within sessions (cosine), scored from the recent items.

    ``score(j) = sum_t decay^(age_t) * cos(prefix_t, j)``; the decay is chosen on a session
    split of the training data (the last 10% of its sessions), never on the test set.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.chosen: Any = None

    def _fit_matrix(self, train: Dataset) -> None:
        sessions = sessions_of(train)
        rows, cols = [], []
        for s, (_, _, steps) in enumerate(sessions):
            uniq = np.unique(steps)
            rows.append(np.full(len(uniq), s))
            cols.append(uniq)
        n = train.n_items
        if rows:
            x = sparse.csr_matrix(
                (
                    np.ones(sum(len(r) for r in rows), np.float32),
                    (np.concatenate(rows), np.concatenate(cols)),
                ),
                shape=(len(sessions), n),
            )
        else:
            x = sparse.csr_matrix((0, n), dtype=np.float32)
        co = (x.T @ x).tocsr().astype(np.float32)
        co.setdiag(0)
        co.eliminate_zeros()
        counts = np.asarray(x.sum(axis=0)).ravel()
        norm = 1.0 / np.sqrt(np.maximum(counts, 1.0))
        self.sim = sparse.diags(norm) @ co @ sparse.diags(norm)
        self.sim = self.sim.tocsr()
        self.pop = (counts / max(counts.max(initial=1.0), 1.0)).astype(np.float32) * 1e-6

    def fit(self, train: Dataset) -> SessionKNN:
        best = (-1.0, DECAYS[0])
        try:
            val = session_split(train, self.seed + 1000, test_frac=0.1, max_cases=2000)
        except ValueError:
            val = None
        if val is not None and val.n_test_users:
            self._fit_matrix(val.train)
            for decay in DECAYS:
                self.decay = decay
                score = evaluate_sessions(self, val)["hit_rate@10"]
                if score > best[0]:
                    best = (score, decay)
        self.decay = best[1]
        self.chosen = {"decay": self.decay}
        self._fit_matrix(train)
        return self

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        out = np.zeros((len(histories), self.sim.shape[0]), np.float32)
        for row, h in enumerate(histories):
            h = np.asarray(h, np.int64)
            if not len(h):
                out[row] = self.pop
                continue
            w = self.decay ** np.arange(len(h) - 1, -1, -1, dtype=np.float64)
            out[row] = np.asarray(self.sim[h].T @ w).ravel() + self.pop
        return out


class Folded(ImplicitALS):
    """implicit ALS for anonymous sessions: every case is folded in from its prefix."""

    name = "implicit ALS"

    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        return super().score_items([None] * len(users), histories)


def models(only: set[str] | None) -> list[tuple[str, Callable[[str, int], Any]]]:
    from shop_recs.recsys.hybrid import HybridRecommender
    from shop_recs.recsys.sequence import SequenceRecommender

    out: list[tuple[str, Callable[[str, int], Any]]] = [
        ("Popularity", lambda p, s: PopularityRecommender()),
        ("session-kNN", lambda p, s: SessionKNN(s)),
    ]
    if implicit_available() is None:
        out.append(
            (
                "implicit ALS",
                lambda p, s: Folded("cold-users", s) if p == "session" else ImplicitALS(p, s),
            )
        )
    else:
        print(f"implicit ALS skipped: {implicit_available()}", file=sys.stderr)
    out += [
        ("Hybrid (order-blind)", lambda p, s: HybridRecommender(seed=s, num_threads=THREADS)),
        (OURS, lambda p, s: SequenceRecommender(seed=s, num_threads=THREADS)),
    ]
    keys = {"popularity": "Popularity", "session-knn": "session-kNN", "als": "implicit ALS",
            "hybrid": "Hybrid (order-blind)", "ours": OURS}  # fmt: skip
    if only:
        wanted = {keys.get(o, o) for o in only}
        out = [(n, b) for n, b in out if n in wanted]
    return out


def fit(model: Any, train: Dataset) -> None:
    kwargs = {"progress": False} if hasattr(model, "training_history_") else {}
    model.fit(train, **kwargs)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml100k", "demo"])
    parser.add_argument("--ml100k", type=Path, default=ROOT.parent / "shared" / "data" / "ml100k")
    parser.add_argument("--demo", type=Path, default=ROOT / "demo" / "bundle")
    parser.add_argument("--protocols", nargs="+", default=["next", "session"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--max-cases", type=int, default=3000)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument(
        "--no-features", action="store_true", help="ID-only: skip the content features"
    )
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads while timing (a web worker's setting; default 1)",
    )
    return parser.parse_args()


def split_for(data: Dataset, protocol: str, seed: int, max_cases: int) -> Any:
    if protocol == "session":
        return session_split(data, seed, max_cases=max_cases)
    return make_split(data, protocol, seed)


def quality(args: argparse.Namespace) -> None:
    rows = models(set(args.only) if args.only else None)
    seeds = list(range(args.seeds))
    ratio_lines = []
    for name in args.datasets:
        data = bundle_dataset(
            dataset_path(args, name),
            features=not args.no_features,
            cache_dir=args.cache_dir,
            progress=False,
        )
        print(
            f"\n## {name}: {data.n_users:,} users, {data.n_items:,} items, "
            f"{len(data):,} positive events; seeds {seeds}"
            + ("; no content features" if args.no_features else ""),
            flush=True,
        )
        for protocol in args.protocols:
            results: dict[str, list[dict[str, float]]] = {}
            chosen: dict[str, list[Any]] = {}
            cases = []
            for seed in seeds:
                split = split_for(data, protocol, seed, args.max_cases)
                cases.append(split.n_test_users)
                for label, build in rows:
                    model = build(protocol, seed)
                    tick = time.perf_counter()
                    fit(model, split.train)
                    seconds = time.perf_counter() - tick
                    m = evaluate_sessions(model, split)
                    m["train_s"] = seconds
                    results.setdefault(label, []).append(m)
                    if getattr(model, "chosen", None) is not None:
                        chosen.setdefault(label, []).append(model.chosen)
                    print(
                        f"  {name} {protocol} seed {seed} {label:<24} HR@10 {m['hit_rate@10']:.4f} "
                        f"MRR@10 {m['mrr@10']:.4f} fit {seconds:6.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
            print(f"\n### {name} / {protocol} ({statistics.mean(cases):.0f} cases per seed)\n")
            print("| model | HitRate@10 | sd | MRR@10 | train s |")
            print("|---|---|---|---|---|")
            for label, _ in rows:
                r = results[label]
                hr = [x["hit_rate@10"] for x in r]
                print(
                    f"| {label} | {np.mean(hr):.4f} | {np.std(hr):.4f} | "
                    f"{np.mean([x['mrr@10'] for x in r]):.4f} | "
                    f"{np.mean([x['train_s'] for x in r]):.1f} |"
                )
            for label, picks in chosen.items():
                print(f"- {label} chose: {picks}")
            if OURS in results:
                peers = {
                    k: np.mean([x["hit_rate@10"] for x in v])
                    for k, v in results.items()
                    if k in COMPARED
                }
                if peers:
                    best = max(peers, key=peers.get)
                    ours = float(np.mean([x["hit_rate@10"] for x in results[OURS]]))
                    ratio = ours / peers[best] if peers[best] > 0 else float("inf")
                    ratio_lines.append(
                        f"{name} / {protocol}: ours HR@10 {ours:.4f} vs best of "
                        f"{', '.join(COMPARED)} ({best} {peers[best]:.4f}) = {ratio:.2f}x "
                        f"(target >= {TARGET:.2f}: {'PASS' if ratio >= TARGET else 'FAIL'})"
                    )
            sys.stdout.flush()
    print()
    for line in ratio_lines:
        print(line)


def dataset_path(args: argparse.Namespace, name: str) -> Path:
    return args.ml100k if name == "ml100k" else args.demo if name == "demo" else Path(name)


def latency(args: argparse.Namespace) -> None:
    from shop_recs.recsys.hybrid import HybridRecommender
    from shop_recs.recsys.hybrid_numpy import HybridVectors
    from shop_recs.recsys.sequence import SequenceRecommender, SequenceVectors

    name = args.datasets[0]
    data = bundle_dataset(dataset_path(args, name), cache_dir=args.cache_dir, progress=False)
    rng = np.random.default_rng(0)
    # the cost of a user vector depends on the configs (widths, layers), not on how well the
    # weights are trained: one epoch on a slice of the events is enough to time it
    data = data.subset(np.arange(min(len(data), 2000)))
    short = {"num_threads": THREADS, "max_epochs": 1, "validation_fraction": 0.0}
    servers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, trained, server in (
            ("order-blind (HybridVectors)", HybridRecommender(**short), HybridVectors),
            ("sequence (SequenceVectors)", SequenceRecommender(**short), SequenceVectors),
        ):
            trained.fit(data, progress=False)
            trained.save(Path(tmp) / label)
            servers[label] = server.load(Path(tmp) / label)
    out: dict[str, list[float]] = {label: [] for label in servers}
    from threadpoolctl import threadpool_limits

    limit = threadpool_limits(args.blas_threads)
    stored = {label: model.all_item_vectors() for label, model in servers.items()}
    n_items = data.n_items
    for i in range(args.requests + 20):
        rows = rng.choice(n_items, 50, replace=False)
        weights = rng.choice([1.0, 2.0, 4.0, 8.0], 50).astype(np.float32)
        # interleaved, so both see the same machine load
        for label, model in servers.items():
            hist = stored[label][rows]
            tick = time.perf_counter()
            model.user_vector(None, hist, weights)
            if i >= 20:  # warm-up
                out[label].append((time.perf_counter() - tick) * 1000)
    limit.restore_original_limits()
    print(
        f"\n{name}: {args.requests} requests, 50 recent items each, numpy user towers, "
        f"{args.blas_threads} BLAS thread(s)\n"
    )
    print("| user tower | p50 ms | p90 ms |")
    print("|---|---|---|")
    for label, times in out.items():
        print(f"| {label} | {p50(times):.3f} | {percentile(times, 0.9):.3f} |")
    base, seq = (p50(t) for t in out.values())
    ratio = seq / base
    print(
        f"\nsequence / order-blind p50 = {ratio:.2f}x "
        f"(target <= {LATENCY_TARGET:.1f}: {'PASS' if ratio <= LATENCY_TARGET else 'FAIL'})"
    )


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(THREADS)
    threadpool_limits(THREADS)
    started = time.perf_counter()
    if args.latency:
        latency(args)
    else:
        quality(args)
    print(f"\nTotal wall time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
