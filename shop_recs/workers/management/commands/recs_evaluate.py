"""python manage.py recs_evaluate [--bundle DIR] --protocol warm|cold-items|cold-users --k 10 20"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop_recs.conf import recs_settings
from shop_recs.ranking.dataset import TrainingError, training_dataset
from shop_recs.ranking.registry import model_class
from shop_recs.recsys.baselines import (
    ContentKNNRecommender,
    MatrixFactorizationRecommender,
    PopularityRecommender,
)
from shop_recs.recsys.bundle import bundle_dataset
from shop_recs.recsys.evaluation import evaluate, make_split

MODELS = ("hybrid", "popularity", "content-knn", "mf")
# Which protocols a model can answer: popularity and ID-only MF know nothing of unseen items.
CAN = {
    "hybrid": {"warm", "cold-items", "cold-users"},
    "popularity": {"warm", "cold-users"},
    "content-knn": {"warm", "cold-items", "cold-users"},
    "mf": {"warm", "cold-users"},
}


def build(name: str, seed: int, params: dict[str, Any]) -> Any:

    if name == "hybrid":
        return model_class()(**{**params, "seed": seed})
    if name == "popularity":
        return PopularityRecommender()
    if name == "content-knn":
        return ContentKNNRecommender()
    return MatrixFactorizationRecommender(seed=seed)


class Command(BaseCommand):
    help = (
        "Evaluate the recommender and the in-project baselines (popularity, content-kNN, "
        "ID-only matrix factorisation) offline: on a catalog bundle (--bundle DIR, encoded and "
        "cached under .data/bench-cache) or, without --bundle, on this shop's own interactions "
        "and stored embeddings. Prints Recall/NDCG/MAP/HitRate@K and coverage per protocol."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bundle", type=Path, help="a catalog bundle directory")
        parser.add_argument(
            "--protocol",
            nargs="+",
            default=["warm"],
            choices=["warm", "cold-items", "cold-users"],
        )
        parser.add_argument("--k", type=int, nargs="+", default=[10, 20])
        parser.add_argument("--seeds", type=int, nargs="+", default=[0])
        parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)

    def handle(self, *args: Any, **options: Any) -> None:

        ks = sorted(set(options["k"]))
        if any(k < 1 for k in ks):
            raise CommandError("--k values must be at least 1")
        progress = options["verbosity"] > 1
        dataset = self._dataset(options["bundle"], options["verbosity"] > 0)
        self.stdout.write(
            f"data: {dataset.n_users} shoppers, {dataset.n_items} items, {len(dataset)} positives"
        )
        params = dict(recs_settings.MODEL_PARAMS)
        for protocol in options["protocol"]:
            rows = []
            for name in options["models"]:
                if protocol not in CAN[name]:
                    rows.append((name, None, 0.0))
                    continue
                runs, seconds = [], []
                for seed in options["seeds"]:
                    split = make_split(dataset, protocol, seed)
                    model = build(name, seed, params)
                    started = time.perf_counter()
                    if name == "hybrid":
                        model.fit(split.train, progress=progress)
                    else:
                        model.fit(split.train)
                    seconds.append(time.perf_counter() - started)
                    runs.append(evaluate(model, split, ks=ks))
                mean = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
                rows.append((name, mean, statistics.fmean(seconds)))
            self._table(protocol, rows, ks, options["seeds"])

    def _dataset(self, bundle: Path | None, progress: bool) -> Any:
        if bundle is None:
            try:
                return training_dataset()[0]
            except TrainingError as exc:
                raise CommandError(str(exc)) from exc
        if not (bundle / "items.csv").is_file() or not (bundle / "interactions.csv").is_file():
            raise CommandError(f"{bundle} is not a catalog bundle (items.csv, interactions.csv)")
        from django.conf import settings

        base = getattr(settings, "DATA_DIR", None) or Path(settings.BASE_DIR) / ".data"
        return bundle_dataset(bundle, cache_dir=Path(base) / "bench-cache", progress=progress)

    def _table(self, protocol: str, rows: list, ks: list[int], seeds: list[int]) -> None:
        columns = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg", "map", "hit_rate")]
        columns.append(f"coverage@{ks[0]}")
        self.stdout.write(f"\n{protocol} (mean over seeds {', '.join(map(str, seeds))})")
        header = f"{'model':<12} " + " ".join(f"{c:>11}" for c in columns) + "   train s"
        self.stdout.write(header)
        for name, metrics, seconds in rows:
            if metrics is None:
                cells = " ".join(f"{'n/a':>11}" for _ in columns)
                self.stdout.write(f"{name:<12} {cells}       n/a")
                continue
            cells = " ".join(f"{metrics[c]:>11.4f}" for c in columns)
            self.stdout.write(f"{name:<12} {cells} {seconds:>9.1f}")
