"""python manage.py recs_encode [--all | --stale] [--batch-size N] — encode items in-process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from shop_recs.catalog.models import Item
from shop_recs.encoding.encoders import encoder_versions
from shop_recs.encoding.service import items_encode, items_needing_encoding


class Command(BaseCommand):
    help = (
        "Encode item text and images into vectors. Default (--stale): items never encoded, "
        "pending, failed, or encoded with another encoder version. --all re-encodes every item."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="re-encode every item")
        which.add_argument("--stale", action="store_true", help="the default selection")
        parser.add_argument("--batch-size", type=int, default=None, help="items per batch")

    def handle(self, *args: Any, **options: Any) -> None:

        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            versions = encoder_versions()
        except Exception as exc:
            raise CommandError(
                f"Cannot load the encoders: {exc}. Check SHOP_RECS['TEXT_ENCODER'] / "
                "['IMAGE_ENCODER'] and that the requirements are installed (make install)."
            ) from exc
        if options["all"]:
            ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
        else:
            ids = items_needing_encoding(stale=True)
        if options["verbosity"] > 1:
            for space, version in versions.items():
                self.stdout.write(f"  {space}: {version}")
        with tqdm(
            total=len(ids),
            unit="item",
            desc="encoding",
            disable=options["verbosity"] == 0,
            file=self.stderr._out,
        ) as bar:
            report = items_encode(
                item_ids=ids,
                force=options["all"],
                batch_size=options["batch_size"],
                progress=bar.update,
            )
        for item_id, error in list(report.errors.items())[:10]:
            self.stderr.write(f"  item {item_id}: {error}")
        self.stdout.write(f"Encoding done: {report.summary()}")
        if report.failed or report.images_failed:
            # cron and CI see it: the summary above says what failed
            raise CommandError(
                f"{report.failed} item(s) and {report.images_failed} image(s) failed to encode; "
                "see the errors above (the admin's item list filters by encode status)."
            )
