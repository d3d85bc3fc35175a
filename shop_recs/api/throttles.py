"""Rate limits of the plugin's endpoints: one counter per client, shared by every web process.

Who the client is: a logged-in user or token by their user id; an anonymous caller by the
address of the socket peer (``REMOTE_ADDR``), or, when that peer is one of
``SHOP_RECS["TRUSTED_PROXIES"]``, by the address that the proxies recorded in
``X-Forwarded-For`` (read from the right, skipping trusted hops). Without trusted proxies
the header is ignored: a client that sends a new ``X-Forwarded-For`` with every request must
not get a new allowance each time.

Where the counts live: the Django cache named by ``SHOP_RECS["THROTTLE_CACHE"]`` (Redis in
the standalone service when ``REDIS_URL`` is set), else the plugin's own database cache (table
``shop_recs_cache``; the shop's ``CACHES`` are left alone). Never a per-process memory cache:
with N web workers it would allow N times the rate, and a flood of keys would evict real
clients' counts.

How: a sliding window of two fixed windows (the previous one weighted by how much of it still
overlaps the last ``duration`` seconds), counted with atomic increments; a refused request
does not count. Rates come from the plugin settings at request time (DRF reads its own once).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import math
import pickle
import time
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.core import checks
from django.core.cache import BaseCache, caches
from django.core.cache.backends.db import DatabaseCache
from django.core.signals import setting_changed
from django.db import connections, router, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from shop_recs.catalog.models import CacheEntry
from shop_recs.conf import recs_settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Counters kept by the plugin's database cache before expired ones are culled (then, if
#: still over, a third of them): far more clients than one minute brings a shop.
DATABASE_CACHE_MAX_ENTRIES = 100_000


class AtomicDatabaseCache(DatabaseCache):
    """Django's database cache whose ``incr`` is atomic (``SELECT ... FOR UPDATE``): the base
    class reads and writes back, so two processes counting at once would lose one."""

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        table = connection.ops.quote_name(self._table)
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT value, expires FROM {table} WHERE cache_key = %s FOR UPDATE",  # noqa: S608
                [key],
            )
            row = cursor.fetchone()
            now = timezone.now() if row and timezone.is_aware(row[1]) else datetime.now()
            if row is None or row[1] < now:
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(base64.b64decode(row[0].encode())) + delta  # noqa: S301
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET value = %s WHERE cache_key = %s",  # noqa: S608
                [encoded, key],
            )
        return value


@lru_cache(maxsize=1)
def _database_cache() -> AtomicDatabaseCache:
    return AtomicDatabaseCache(
        CacheEntry._meta.db_table,
        {"OPTIONS": {"MAX_ENTRIES": DATABASE_CACHE_MAX_ENTRIES}, "KEY_PREFIX": "shop_recs"},
    )


def throttle_cache() -> BaseCache:
    """The cache holding throttle counters: ``caches[THROTTLE_CACHE]``, or the plugin's own
    database cache when the setting is None."""
    alias = recs_settings.THROTTLE_CACHE
    return caches[alias] if alias else _database_cache()


@lru_cache(maxsize=8)
def _networks(specs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    return _networks(tuple(str(spec) for spec in recs_settings.TRUSTED_PROXIES or ()))


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(request: Any) -> str:
    """The client's address: the socket peer, unless that peer is a trusted proxy; then the
    rightmost ``X-Forwarded-For`` hop that is not itself a trusted proxy (hops further left
    were written by the client and prove nothing)."""
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    trusted = trusted_proxies()
    peer = _address(remote)
    if not trusted or peer is None or not any(peer in net for net in trusted):
        return remote
    hops = [h for h in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            break  # a proxy we trust wrote no address here: stop at the last good one
        client = ip
        if not any(ip in net for net in trusted):
            break
    return str(client)


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/minute"`` -> (600, 60); DRF's format ("N/second|minute|hour|day")."""
    num, period = rate.split("/")
    duration = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]
    return int(num), duration


class SharedRateThrottle(BaseThrottle):
    #: the key of this throttle's rate in SHOP_RECS["THROTTLE_RATES"]
    rate_key = ""
    #: names its counters in the cache
    scope = ""

    def __init__(self) -> None:
        self._wait: float | None = None

    def get_rate(self) -> str | None:
        return (recs_settings.THROTTLE_RATES or {}).get(self.rate_key)

    def get_ident_for(self, request: Request) -> str | None:
        """The counter's identity for this request; None: this throttle does not apply."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        rate = self.get_rate()
        if not rate:
            return True
        ident = self.get_ident_for(request)
        if ident is None:
            return True
        limit, duration = parse_rate(rate)
        now = time.time()
        window, into = divmod(now, duration)
        prefix = f"throttle:{self.scope}:{ident}:"
        current_key, previous_key = f"{prefix}{int(window)}", f"{prefix}{int(window) - 1}"
        cache = throttle_cache()
        current = _increment(cache, current_key, timeout=2 * duration)
        previous = int(cache.get(previous_key) or 0)
        overlap = 1.0 - into / duration  # share of the previous window still in view
        if previous * overlap + current <= limit:
            return True
        with contextlib.suppress(ValueError):  # a refused request does not use the allowance
            cache.decr(current_key)
        self._wait = _wait_seconds(limit, duration, into, previous, current - 1)
        return False

    def wait(self) -> float | None:
        return self._wait


def _increment(cache: BaseCache, key: str, *, timeout: int) -> int:
    """Atomic +1 (Redis INCR, the atomic database cache); creates the counter when missing."""
    for _ in range(3):
        try:
            return int(cache.incr(key))
        except ValueError:
            if cache.add(key, 1, timeout=timeout):
                return 1
    return int(cache.incr(key))


def _wait_seconds(limit: int, duration: int, into: float, previous: int, current: int) -> float:
    """Seconds until one more request fits: when the weighted previous window has shrunk
    enough, or else the next window starts."""
    if current < limit and previous > 0:
        # previous * (1 - t / duration) + current + 1 <= limit  ->  t >= ...
        needed = duration * (1 - (limit - current - 1) / previous)
        if needed >= into:
            return max(1.0, math.ceil(needed - into))
    return max(1.0, math.ceil(duration - into))


class AnonThrottle(SharedRateThrottle):
    """Anonymous callers, by client address (``TRUSTED_PROXIES``)."""

    rate_key = "anon"
    scope = "shop_recs_anon"

    def get_ident_for(self, request: Request) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return client_address(request) or None


class UserThrottle(SharedRateThrottle):
    """Logged-in users and tokens, by user id."""

    rate_key = "user"
    scope = "shop_recs_user"

    def get_ident_for(self, request: Request) -> str | None:
        if request.user and request.user.is_authenticated:
            return str(request.user.pk)
        return None


def check_throttle_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``THROTTLE_CACHE`` names a configured cache shared by processes; proxies parse."""
    errors: list[checks.CheckMessage] = []
    alias = recs_settings.THROTTLE_CACHE
    if alias:
        from django.conf import settings

        backend = str((settings.CACHES.get(alias) or {}).get("BACKEND", ""))
        if alias not in settings.CACHES:
            errors.append(
                checks.Error(
                    f"SHOP_RECS['THROTTLE_CACHE'] = {alias!r} is not in CACHES.",
                    hint="Name a cache of CACHES (Redis), or None for the plugin's own "
                    "database cache.",
                    id="shop_recs.E040",
                )
            )
        elif backend.endswith(("LocMemCache", "DummyCache")):
            errors.append(
                checks.Warning(
                    f"SHOP_RECS['THROTTLE_CACHE'] = {alias!r} is {backend.rsplit('.', 1)[-1]}: "
                    "throttle counts are then per process (or none), so each web worker "
                    "allows the full rate.",
                    hint="Use a shared cache (Redis), or None for the plugin's database cache.",
                    id="shop_recs.W040",
                )
            )
    try:
        trusted_proxies()
    except ValueError as exc:
        errors.append(
            checks.Error(
                f"SHOP_RECS['TRUSTED_PROXIES'] holds an invalid address or network: {exc}",
                hint='Addresses or CIDR networks, e.g. ["127.0.0.1", "10.0.0.0/8"].',
                id="shop_recs.E041",
            )
        )
    return errors


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SHOP_RECS", "CACHES"):
        _database_cache.cache_clear()


setting_changed.connect(_reload)
