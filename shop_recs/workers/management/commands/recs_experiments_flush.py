"""Write the spooled exposures and attributions of experiments to the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from shop_recs.catalog import spool
from shop_recs.catalog.services import experiments


class Command(BaseCommand):
    help = (
        "Write the experiments' spooled lists and events to the database (what each web "
        "process's background thread and the flush_experiments task do; run it from cron "
        "when EXPERIMENT_FLUSH_SECONDS is 0 and no Celery beat runs)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        waiting = spool.pending()
        taken = experiments.flush()
        left = spool.pending()
        self.stdout.write(
            f"experiments: {taken} spooled records written ({waiting} were waiting, {left} left)"
        )
