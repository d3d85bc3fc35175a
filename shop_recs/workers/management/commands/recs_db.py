"""python manage.py recs_db [status|stop] — the embedded PostgreSQL server (no DATABASE_URL).

``status`` says whether the default database is the embedded server, where its data lives,
whether it runs (process id, socket, port) and how large it is; ``stop`` shuts it down (a
fast shutdown: connections are closed; the next manage.py command or web process starts it
again). A database given by DATABASE_URL or a DSN is the operator's, and left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from shop_recs import embedded_db


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Command(BaseCommand):
    help = "Show the status of the embedded PostgreSQL server, or stop it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", default="status", choices=["status", "stop"])

    def handle(self, *args: Any, action: str = "status", **options: Any) -> None:
        servers = list(embedded_db.STARTED)
        if not servers:
            host = connections["default"].settings_dict.get("HOST") or "localhost"
            message = (
                f"The default database is not the embedded server (HOST {host!r}): it is "
                "managed outside the plugin."
            )
            if action == "stop":
                raise CommandError(message + " Nothing to stop.")
            self.stdout.write(message)
            return
        for pgdata in servers:
            if action == "stop":
                connections.close_all()
                if not embedded_db.stop(pgdata):
                    raise CommandError(
                        f"The embedded server of {pgdata} did not stop within 30 s; its process "
                        f"is {embedded_db.postmaster_pid(pgdata)}."
                    )
                self.stdout.write(f"Stopped the embedded server of {pgdata}.")
                continue
            pid = embedded_db.postmaster_pid(pgdata)
            settings = connections["default"].settings_dict
            self.stdout.write(
                f"Embedded PostgreSQL: data in {pgdata} ({_size(pgdata) / 1e6:.1f} MB)"
            )
            if pid is None:
                self.stdout.write("  not running (the next command or web process starts it)")
                continue
            self.stdout.write(
                f"  running: process {pid}, socket {settings.get('HOST')}, port "
                f"{settings.get('PORT')}"
            )
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute(
                        "SELECT version(), (SELECT extversion FROM pg_extension "
                        "WHERE extname = 'vector')"
                    )
                    version, vector = cursor.fetchone()
                self.stdout.write(f"  {version.split(',')[0]}; pgvector {vector or 'not created'}")
            except DatabaseError as exc:
                self.stdout.write(f"  cannot connect: {exc}")
            self.stdout.write("  stop it with: python manage.py recs_db stop")
