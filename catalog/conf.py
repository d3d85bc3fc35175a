"""The plugin's settings object, read from ``settings.SHOP_RECS`` with defaults.

Follows DRF's ``api_settings``: attribute access, cached, reloaded on ``setting_changed`` so
``override_settings(SHOP_RECS=...)`` works in tests. Dotted paths (swappable parts) are imported on
access.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # Reads (item lists, recommendations) are public by default: widgets call them from the
    # browser. Set True to require a token for every request.
    "READ_REQUIRES_AUTH": False,
    # DRF throttle rates ("N/second|minute|hour|day"); None disables that throttle.
    "THROTTLE_RATES": {"anon": "600/minute", "user": "20000/minute"},
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 500,
    "EVENTS_MAX_BATCH": 1000,
    # Unknown customers in events are reported per event unless this is True.
    "EVENTS_CREATE_UNKNOWN_CUSTOMERS": False,
    # Events may be at most this far in the future (clock skew of the sending system).
    "EVENTS_MAX_FUTURE_SECONDS": 24 * 3600,
    "EVENT_WEIGHTS": {
        "view": 1.0,
        "click": 2.0,
        "like": 3.0,
        "rating": 3.0,
        "cart": 4.0,
        "purchase": 8.0,
    },
    "MAX_JSON_BODY_BYTES": 5 * 1024 * 1024,
    "MAX_REQUEST_BYTES": 25 * 1024 * 1024,
    "MAX_JSON_FIELD_BYTES": 64 * 1024,
    "MAX_IMAGE_BYTES": 20 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    "IMAGE_FORMATS": ["JPEG", "PNG", "WEBP", "GIF"],
    "IMAGE_URL_SCHEMES": ["http", "https"],
}

IMPORT_STRINGS: set[str] = set()


class RecsSettings:
    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        if not hasattr(self, "_user_settings"):
            self._user_settings = getattr(settings, "SHOP_RECS", {}) or {}
        return self._user_settings

    def __getattr__(self, attr: str) -> Any:
        if attr not in self.defaults:
            raise AttributeError(f"Invalid shop_recs setting: {attr!r}")
        value = self.user_settings.get(attr, self.defaults[attr])
        if isinstance(self.defaults[attr], dict) and isinstance(value, dict):
            value = {**self.defaults[attr], **value}
        if attr in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cached.add(attr)
        setattr(self, attr, value)
        return value

    def reload(self) -> None:
        for attr in self._cached:
            delattr(self, attr)
        self._cached.clear()
        if hasattr(self, "_user_settings"):
            delattr(self, "_user_settings")


recs_settings = RecsSettings(DEFAULTS)


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECS":
        recs_settings.reload()


setting_changed.connect(_reload)
