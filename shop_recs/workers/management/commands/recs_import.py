"""python manage.py recs_import DIR — load a catalog bundle (see ../shared/DATA.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from shop_recs.catalog import services
from shop_recs.catalog.importer import BundleError, import_bundle


class Command(BaseCommand):
    help = "Import a catalog bundle directory (items.csv, interactions.csv, images/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--no-images", action="store_true", help="skip image files")
        parser.add_argument("--no-interactions", action="store_true", help="skip interactions.csv")
        parser.add_argument(
            "--defer-encoding",
            action="store_true",
            help="leave encoding to the Celery workers (default: encode here, with a progress bar)",
        )
        parser.add_argument(
            "--show-bad", type=int, default=20, help="how many bad rows to list (default 20)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        quiet = options["verbosity"] == 0

        def progress(iterable: Any, **kwargs: Any) -> Any:
            return tqdm(iterable, disable=quiet, file=self.stderr._out, **kwargs)

        try:
            report = import_bundle(
                options["directory"],
                progress=progress,
                with_images=not options["no_images"],
                with_interactions=not options["no_interactions"],
            )
        except (BundleError, OSError, UnicodeDecodeError) as exc:
            raise CommandError(str(exc)) from exc
        for file, line, reason in report.bad_rows[: options["show_bad"]]:
            self.stderr.write(f"  bad row {file}:{line}: {reason}")
        if len(report.bad_rows) > options["show_bad"]:
            self.stderr.write(f"  ... and {len(report.bad_rows) - options['show_bad']} more")
        elapsed = time.monotonic() - started
        self.stdout.write(f"Imported {options['directory']} in {elapsed:.1f}s — {report.summary()}")
        if options["defer_encoding"]:
            services.items_announce_changed(item_ids=sorted(report.changed_item_ids))
            self.stdout.write(
                f"{len(report.changed_item_ids)} items queued for encoding by the workers."
            )
        else:
            call_command(
                "recs_encode",
                "--stale",
                verbosity=options["verbosity"],
                stdout=self.stdout._out,
                stderr=self.stderr._out,
            )
