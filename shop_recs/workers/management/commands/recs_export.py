"""python manage.py recs_export --k 20 --out FILE.jsonl"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from shop_recs.catalog.models import Customer, ModelVersion
from shop_recs.ranking.recommend import recommendations


class Command(BaseCommand):
    help = (
        "Write, for every customer with events, one JSON line "
        '{"user_id": ..., "items": [ranked item ids]} from the active model, with the same '
        "exclusions as the API (purchased and recently seen items, inactive and out-of-stock)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--k", type=int, default=20)
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args: Any, **options: Any) -> None:

        k = options["k"]
        if k < 1:
            raise CommandError("--k must be at least 1")
        if not ModelVersion.objects.filter(is_active=True).exists():
            raise CommandError("No active model: train one first (python manage.py recs_train).")
        out: Path = options["out"]
        if not out.parent.is_dir():
            raise CommandError(f"The folder of {out} does not exist.")
        customers = Customer.objects.filter(interactions__isnull=False).distinct().order_by("pk")
        total = customers.count()
        sources: dict[str, int] = {}
        written = 0
        tmp = out.with_name(out.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for customer in tqdm(
                customers.iterator(chunk_size=500),
                total=total,
                unit="customer",
                desc="export",
                disable=options["verbosity"] == 0,
                file=self.stderr._out,
            ):
                result = recommendations(customer=customer, k=k)
                for r in result.results:
                    sources[r.source] = sources.get(r.source, 0) + 1
                line = {
                    "user_id": customer.external_id,
                    "items": [r.item.external_id for r in result.results],
                }
                fh.write(json.dumps(line) + "\n")
                written += 1
        tmp.replace(out)
        by_source = ", ".join(f"{n} from {s}" for s, n in sorted(sources.items())) or "none"
        self.stdout.write(f"Exported {written} customers to {out} (k={k}; items: {by_source}).")
