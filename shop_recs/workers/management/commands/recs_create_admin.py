"""python manage.py recs_create_admin — a staff superuser and an API token, printed once.

Used by ``make demo``. Idempotent: an existing user keeps its password unless --reset-password.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (or show) an admin user and its API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@example.com")
        parser.add_argument(
            "--password",
            default=os.environ.get("SHOP_RECS_ADMIN_PASSWORD", ""),
            help="default: $SHOP_RECS_ADMIN_PASSWORD, else a random one",
        )
        parser.add_argument("--reset-password", action="store_true")
        parser.add_argument(
            "--credentials-file",
            type=Path,
            help="remember a generated password here (mode 0600) and show it again on re-runs",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=options["username"],
            defaults={"email": options["email"], "is_staff": True, "is_superuser": True},
        )
        password = None
        remembered: Path | None = options["credentials_file"]
        if created or options["reset_password"] or options["password"]:
            password = options["password"] or secrets.token_urlsafe(12)
            user.set_password(password)
            user.is_staff = user.is_superuser = True
            user.save()
            if remembered is not None:
                remembered.parent.mkdir(parents=True, exist_ok=True)
                remembered.write_text(password + "\n", encoding="utf-8")
                remembered.chmod(0o600)
        elif remembered is not None and remembered.is_file():
            candidate = remembered.read_text(encoding="utf-8").strip()
            if user.check_password(candidate):
                password = candidate
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"Admin user:  {user.get_username()}")
        if password:
            self.stdout.write(f"Password:    {password}")
        else:
            self.stdout.write(
                "Password:    (unchanged; run "
                "`python manage.py recs_create_admin --reset-password` for a new one)"
            )
        self.stdout.write(f"API token:   {token.key}  (header: Authorization: Token {token.key})")
