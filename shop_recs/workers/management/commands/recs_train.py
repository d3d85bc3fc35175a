"""python manage.py recs_train [--force] [--no-activate] [--param NAME=VALUE ...]"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop_recs.catalog.models import ModelVersion
from shop_recs.ranking.dataset import TrainingError
from shop_recs.ranking.training import model_train, selection_summary


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise CommandError(f"--param takes NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


class Command(BaseCommand):
    help = (
        "Train a recommender model version from the recorded interactions and stored "
        "embeddings — with SHOP_RECS['MODEL_SELECTION'] (the default) the model family and "
        "hyperparameters are chosen on a validation split of this shop's events within "
        "TRAIN_BUDGET_SECONDS — evaluate it on held-out events, and activate it unless it is "
        "worse than the active one (--force activates anyway)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="activate even if worse")
        parser.add_argument(
            "--no-activate", action="store_true", help="store the version without activating"
        )
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="model parameter override (JSON value), e.g. --param max_epochs=20",
        )
        parser.add_argument("--note", default="", help="a note stored with the version")
        parser.add_argument(
            "--if-none-active",
            action="store_true",
            help="do nothing when a model is already active (idempotent set-up scripts)",
        )

    def handle(self, *args: Any, **options: Any) -> None:

        active = ModelVersion.objects.filter(is_active=True).first()
        if options["if_none_active"] and active is not None:
            self.stdout.write(f"Model {active.pk} is active already: not training.")
            return
        params = dict(_param(p) for p in options["param"])
        try:
            version = model_train(
                force=options["force"],
                params=params,
                progress=options["verbosity"] > 0,
                note=options["note"],
                activate=not options["no_activate"],
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc
        except TypeError as exc:  # an unknown --param name reaches the model's constructor
            raise CommandError(f"Bad model parameter: {exc}") from exc
        version.refresh_from_db()
        metrics = version.metrics
        popular = metrics.get("popularity", {})
        figures = ", ".join(
            f"{name} {metrics[name]:.4f}"
            for name in ("recall@10", "ndcg@10", "recall@20", "coverage@10")
            if name in metrics
        )
        if figures and version.selection:
            figures = f"validation {figures}"
        if popular:
            figures += f" (popularity recall@10 {popular.get('recall@10', 0):.4f})"
        counts = version.data_counts
        state = "active" if version.is_active else f"not active — {version.note}"
        chosen = selection_summary(version)
        self.stdout.write(
            f"Model {version.pk} trained in {version.duration_seconds:.1f}s on "
            f"{counts.get('positives', 0)} positives of {counts.get('users', 0)} shoppers and "
            f"{counts.get('items', 0)} items{chosen}: "
            f"{figures or 'no held-out users to evaluate'}; {state}."
        )
