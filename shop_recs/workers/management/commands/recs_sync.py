"""python manage.py recs_sync [--dry-run] — mirror the shop's products (ITEM_SOURCE) into items.

``--dry-run`` also prints a few mapped values per field, so a shop sees what it configured.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop_recs.storefront import source
from shop_recs.storefront.source.queue import mirror_queue


class Command(BaseCommand):
    help = (
        "Backfill and reconcile the recommendation items from the shop's product model "
        "(SHOP_RECS['ITEM_SOURCE']): create missing items, update changed ones, deactivate "
        "those whose product is gone. Changed items are queued for encoding."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would change, change nothing"
        )
        parser.add_argument(
            "--show-errors", type=int, default=20, help="how many failures to list (default 20)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if source.item_source() is None:
                raise CommandError(
                    "No item source configured: set SHOP_RECS['ITEM_SOURCE'] = {'MODEL': "
                    "'shop.Product', 'FIELDS': {'external_id': 'sku', 'title': 'name', ...}} "
                    "in the Django settings (see the README, Configuration)."
                )
            if not options["dry_run"]:
                mirror_queue.drain()  # what this process noted is mirrored first
            report = source.sync_all(progress=options["verbosity"] > 0, dry_run=options["dry_run"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        shown = options["show_errors"]
        for line in report.errors[:shown]:
            self.stderr.write(f"  {line}")
        if len(report.errors) > shown:
            self.stderr.write(f"  ... and {len(report.errors) - shown} more")
        if report.samples:
            self.stdout.write("Mapped values (a few products per field):")
            for name, values in report.samples.items():
                shown = "; ".join(repr(v) for v in values)
                self.stdout.write(f"  {name}: {shown}")
        prefix = "Dry run, nothing changed: would have " if report.dry_run else ""
        self.stdout.write(prefix + report.summary())
        if report.failed:
            raise CommandError(
                f"{report.failed} product(s) could not be mirrored; see the errors above."
            )
