"""Throttles whose rates come from the plugin settings at request time (DRF reads its own
rates once at import, which would ignore SHOP_RECS changes)."""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from shop_recs.conf import recs_settings


class AnonThrottle(AnonRateThrottle):
    scope = "anon"

    def get_rate(self) -> str | None:
        return recs_settings.THROTTLE_RATES.get(self.scope)


class UserThrottle(UserRateThrottle):
    scope = "user"

    def get_rate(self) -> str | None:
        return recs_settings.THROTTLE_RATES.get(self.scope)
