"""The admin site the plugin's pages go to: ``SHOP_RECS["ADMIN_SITE"]`` (default Django's
``admin.site``), so a shop with its own AdminSite gets them there."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from shop_recs.conf import recs_settings

site: admin.AdminSite = recs_settings.ADMIN_SITE


def admin_url(name: str, *args: object) -> str:
    """The URL of an admin page of :data:`site` (its instance namespace, "admin" by default)."""
    return reverse(f"admin:{name}", args=args, current_app=site.name)
