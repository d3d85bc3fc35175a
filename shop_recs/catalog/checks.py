"""System checks of the plugin's installation (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks

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
