"""python manage.py recs_purge_customer EXTERNAL_ID [...] [--dry-run] — erase customers'
personal data (their events, their browser sessions' events, the customer rows)."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop_recs.catalog import selectors, services


class Command(BaseCommand):
    help = (
        "Erase the personal data of customers (a data subject's request): delete every event "
        "of each customer, the anonymous events of the browser sessions those events carry, "
        "and the customer. Logged to the 'shop_recs.erasure' logger. Nothing else in the "
        "plugin deletes history."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("external_ids", nargs="+", metavar="EXTERNAL_ID")
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be deleted, delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wanted = list(dict.fromkeys(options["external_ids"]))
        customers = [(ext, selectors.customer_get(external_id=ext)) for ext in wanted]
        unknown = [ext for ext, customer in customers if customer is None]
        if unknown:
            raise CommandError(f"No customer with external id {', '.join(map(repr, unknown))}.")
        who = f"manage.py recs_purge_customer ({_user()})"
        for _, customer in customers:
            report = services.customer_purge(customer=customer, by=who, dry_run=options["dry_run"])
            prefix = "Would erase" if options["dry_run"] else "Erased"
            self.stdout.write(f"{prefix} {report.summary()}.")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"
