"""System checks of the plugin's installation (``manage.py check``): the plugin's apps, and a
PostgreSQL database with pgvector (before ``migrate`` creates anything)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks
from django.db import DatabaseError, connections

#: The plugin's apps and what a shop misses without each (the catalog itself is installed
#: when this runs).
PLUGIN_APPS = {
    "shop_recs.api": "the REST endpoints (urls include 'shop_recs.api.urls')",
    "shop_recs.workers": "background encoding and training (tasks, receivers, recs_* commands)",
    "shop_recs.storefront": "product mirroring, tracking, widgets and {% load shop_recs %}",
    "shop_recs.dashboard": "the admin pages (items, model versions, rules, dashboard)",
}


def check_plugin_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    installed = {config.name for config in apps.get_app_configs()}
    return [
        checks.Warning(
            f"{name} is not in INSTALLED_APPS: {what} will be missing.",
            hint=f"Add {name!r} to INSTALLED_APPS next to 'shop_recs.catalog'.",
            id="shop_recs.W001",
        )
        for name, what in PLUGIN_APPS.items()
        if name not in installed
    ]


DATABASE_HINT = (
    "Use PostgreSQL with the pgvector extension: set DATABASES['default'] from a DSN "
    "(e.g. dj_database_url.parse('postgresql://…')), or for a trial the embedded server: "
    "DATABASES = {'default': shop_recs.embedded_db.embedded_database(BASE_DIR / '.data')}."
)


def check_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The default database must be PostgreSQL: the plugin's tables hold pgvector columns and
    indexes (checked before ``migrate`` creates anything)."""
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        return []
    return [
        checks.Error(
            f"The default database is {vendor}, but shop_recs needs PostgreSQL with pgvector "
            "(its migrations create vector columns and HNSW indexes).",
            hint=DATABASE_HINT,
            id="shop_recs.E020",
        )
    ]


def check_pgvector(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """With database checks (``migrate``, ``check --database default``): the pgvector extension
    is installed or can be created on the default database."""
    if not databases or "default" not in databases:
        return []
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return []  # check_database says so
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT installed_version IS NOT NULL, "
                "has_database_privilege(current_database(), 'CREATE') "
                "FROM pg_available_extensions WHERE name = 'vector'"
            )
            row = cursor.fetchone()
    except DatabaseError as exc:
        return [
            checks.Warning(
                f"Could not look for the pgvector extension: {exc}".strip(),
                hint="Check the database connection settings.",
                id="shop_recs.W020",
            )
        ]
    if row is None:
        return [
            checks.Error(
                "The PostgreSQL server of the default database has no pgvector extension.",
                hint="Install pgvector on the server (https://github.com/pgvector/pgvector), or "
                + DATABASE_HINT,
                id="shop_recs.E021",
            )
        ]
    return []
