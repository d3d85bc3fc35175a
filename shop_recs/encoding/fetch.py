"""SSRF-safe download of product images registered by URL (used by the Celery workers).

``fetch_image(url, ...)`` returns the raw bytes of an image served over HTTP(S), or raises
:class:`ImageFetchError` whose ``reason`` is a short machine-readable code:

- ``scheme``: the URL's scheme is not in ``allowed_schemes`` (``file:``, ``ftp:``, ...);
- ``host``: malformed URL: no host, ``user:password@`` in the URL, bad port, unresolvable name;
- ``blocked_address``: the host resolves to (or the socket reached) a non-public address;
- ``redirects``: more than ``max_redirects`` redirects;
- ``too_large``: the body (declared or actually streamed) exceeds ``max_bytes``;
- ``timeout``: a connect/read timeout, or the overall deadline of the whole fetch;
- ``http_status``: a non-2xx answer (or a redirect without ``Location``);
- ``content_type``: a Content-Type outside ``allowed_content_types`` (or a Content-Encoding);
- ``connection``: any other network/TLS/protocol failure (refused, reset, bad certificate).

Defences, in order, for every hop (the first URL and each redirect target):

1. Only ``http``/``https`` (and only those listed in ``allowed_schemes``); a host is required;
   credentials in the URL (``user:pw@``) are refused; the host must be an IP literal or a plain
   (IDNA-encoded) DNS name.
2. The host is resolved once with :func:`socket.getaddrinfo` *before* any connection, and the
   hop is refused if ANY resolved address is not globally routable: loopback, private
   (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (incl. the 169.254.169.254 cloud
   metadata endpoint), multicast, reserved, unspecified (0.0.0.0, ::), carrier-grade NAT
   (100.64/10), documentation/benchmark ranges, site-local, and IPv6 addresses wrapping such an
   IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, 6to4
   ``2002::/16``, NAT64 ``64:ff9b::/96``, Teredo).
3. The connection is *pinned* to the validated addresses: a urllib3 connection subclass opens
   the TCP socket to exactly those IPs (no second DNS lookup, so DNS rebinding between check
   and connect cannot redirect it), keeps the URL's hostname for the ``Host`` header, TLS SNI
   and certificate verification, and checks ``getpeername()`` again after connecting.
4. Redirects (301/302/303/307/308) are followed by hand, at most ``max_redirects``; each target
   goes through steps 1-3 again. Environment proxies (``HTTP_PROXY``...) are deliberately not
   used: a proxy would resolve the name itself and defeat the pinning.
5. ``timeout`` is both the per-operation (connect, TLS handshake, read) timeout and the overall
   deadline for the whole fetch, all hops included. A watchdog thread shuts the socket down
   when the deadline passes, so a server dripping one byte at a time (in the headers or the
   body) cannot keep a worker busy. Name resolution uses the system resolver, whose own timeout
   is not covered by the deadline.
6. ``Content-Length`` above ``max_bytes`` is refused before reading; the body is then streamed
   and the download aborted as soon as more than ``max_bytes`` arrived (chunked, unbounded or
   lying bodies). ``Accept-Encoding: identity`` is sent and compressed answers are refused, so
   the byte count is the real size.
7. Non-2xx answers and Content-Types (parameters ignored, case-insensitive) outside
   ``allowed_content_types`` are refused.

``allow_networks`` is the explicit escape hatch: CIDR strings (e.g. ``["10.20.0.0/16"]`` for an
internal CDN, ``["127.0.0.1/32"]`` in tests) whose addresses are permitted even though they are
not public. An address inside one of them is accepted as is (IPv4-mapped IPv6 addresses are
compared as IPv4); everything else still has to be globally routable. Keep the list as narrow as
possible: anything in it is reachable by whoever can register an image URL.

The result is only *bytes that claim to be an image*. Callers MUST validate them before storing
or using them: decode with ``catalog.validation.inspect_image`` (Pillow, pixel/decompression-bomb
limits, real format vs. claimed Content-Type). This module deliberately does not import Django,
so the limits are passed in by the caller and it can be unit-tested without a database.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

import urllib3
from requests.certs import where as ca_bundle_path
from urllib3.connection import HTTPConnection, HTTPSConnection

from shop_recs.encoding.addresses import (
    ImageFetchError,
    IPAddress,
    IPNetwork,
    Target,
    address_refusal,
    normalize,
    parse_networks,
    parse_url,
    resolve,
    validate_addresses,
)

__all__ = ["FetchedImage", "ImageFetchError", "fetch_image"]

DEFAULT_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    content_type: str  # lower-cased, without parameters, one of allowed_content_types
    final_url: str  # the URL that answered, after redirects


# --- address policy --------------------------------------------------------------------------


# --- URL parsing and resolution --------------------------------------------------------------


# --- deadline watchdog -----------------------------------------------------------------------


class _Watchdog:
    """Enforces the overall deadline: at expiry it shuts down every watched socket, which
    wakes any read blocked on it (slow-drip servers that never trip the per-read timeout).

    It watches ``dup()``-licates of the connection sockets, owned here and closed in
    :meth:`stop`, so a shutdown can never hit an unrelated socket that reused a closed fd."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.fired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            if not self.fired:
                self._socks.append(dup)
                return
        dup.close()
        raise ImageFetchError("timeout", "the fetch deadline passed while connecting")

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


# --- pinned connections ----------------------------------------------------------------------


class _PinnedConnectionMixin:
    """Overrides urllib3's ``_new_conn`` so the TCP connection goes to the already validated
    addresses instead of resolving ``host`` again. Everything else (``host`` for the Host
    header, TLS SNI and hostname verification in ``HTTPSConnection.connect``) is untouched."""

    host: str
    port: int
    timeout: float | None
    socket_options: Any

    def __init__(
        self,
        *args: Any,
        pinned: Sequence[IPAddress],
        allowed: Sequence[IPNetwork],
        watchdog: _Watchdog,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._pinned = tuple(pinned)
        self._allowed = tuple(allowed)
        self._watchdog = watchdog

    def _new_conn(self) -> socket.socket:
        failures: list[str] = []
        timed_out = True
        for ip in self._pinned:
            remaining = self._watchdog.remaining()
            if remaining <= 0:
                break
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(min(self.timeout or remaining, remaining))
                sock.connect((str(ip), self.port))
                self._check_peer(sock, ip)
                self._watchdog.watch(sock)
            except TimeoutError:
                sock.close()
                failures.append(f"{ip}: timed out")
            except OSError as exc:
                sock.close()
                timed_out = False
                failures.append(f"{ip}: {exc}")
            except BaseException:
                sock.close()
                raise
            else:
                sys.audit("http.client.connect", self, self.host, self.port)
                return sock
        detail = "; ".join(failures) or "deadline passed"
        raise ImageFetchError(
            "timeout" if timed_out else "connection",
            f"could not connect to {self.host}:{self.port} ({detail})",
        )

    def _check_peer(self, sock: socket.socket, expected: IPAddress) -> None:
        peer = normalize(ipaddress.ip_address(str(sock.getpeername()[0]).split("%", 1)[0]))
        why = address_refusal(peer, self._allowed)
        if peer != expected or why:
            raise ImageFetchError(
                "blocked_address",
                f"connection to {self.host}:{self.port} reached {peer} "
                f"(expected {expected}){', ' + why if why else ''}: refused",
            )


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """Certificate verification against the certifi bundle (as requests does), hostname checked
    against the URL's host (not the pinned IP), TLS >= 1.2."""
    context = ssl.create_default_context(cafile=ca_bundle_path())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _connection(
    target: Target,
    pinned: Sequence[IPAddress],
    allowed: Sequence[IPNetwork],
    watchdog: _Watchdog,
    timeout: float,
) -> HTTPConnection:
    common: dict[str, Any] = {
        "timeout": timeout,
        "pinned": pinned,
        "allowed": allowed,
        "watchdog": watchdog,
    }
    if target.scheme == "https":
        return _PinnedHTTPSConnection(
            target.host,
            target.port,
            ssl_context=_ssl_context(),
            cert_reqs="CERT_REQUIRED",
            **common,
        )
    return _PinnedHTTPConnection(target.host, target.port, **common)


# --- the fetch -------------------------------------------------------------------------------


def _network_error(exc: BaseException, watchdog: _Watchdog, url: str) -> ImageFetchError:
    if watchdog.fired or watchdog.remaining() <= 0:
        return ImageFetchError("timeout", f"{url}: the fetch exceeded its deadline")
    if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
        return ImageFetchError("timeout", f"{url}: timed out ({exc})")
    return ImageFetchError("connection", f"{url}: {type(exc).__name__}: {exc}")


def _op_timeout(watchdog: _Watchdog, timeout: float, url: str) -> float:
    remaining = watchdog.remaining()
    if remaining <= 0 or watchdog.fired:
        raise ImageFetchError("timeout", f"{url}: the fetch exceeded its deadline")
    return min(timeout, remaining)


def fetch_image(
    url: str,
    *,
    max_bytes: int = 20 * 1024 * 1024,
    timeout: float = 10.0,
    max_redirects: int = 3,
    allowed_schemes: Sequence[str] = ("http", "https"),
    allowed_content_types: Sequence[str] = DEFAULT_CONTENT_TYPES,
    allow_networks: Sequence[str] = (),
    user_agent: str = "shop_recs-image-fetcher/1.0",
) -> FetchedImage:
    """Download the image at ``url`` without letting the URL reach internal services.

    ``timeout`` (seconds) bounds each connect/read and the whole fetch including redirects.
    ``allow_networks`` lists CIDR networks permitted although not public (see module docstring).
    The returned bytes are NOT validated as an image: pass them to
    ``shop_recs.catalog.validation.inspect_image`` before use.
    """
    if max_bytes <= 0 or timeout <= 0 or max_redirects < 0:
        raise ValueError("max_bytes and timeout must be positive, max_redirects >= 0")
    schemes = frozenset(s.lower() for s in allowed_schemes)
    content_types = frozenset(c.lower() for c in allowed_content_types)
    allowed = parse_networks(allow_networks)
    headers = {
        "User-Agent": user_agent,
        "Accept": ", ".join(allowed_content_types) or "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }

    watchdog = _Watchdog(timeout)
    watchdog.start()
    try:
        current = url
        for hop in range(max_redirects + 1):
            target = parse_url(current, schemes)
            addresses = resolve(target)
            validate_addresses(target, addresses, allowed)
            conn = _connection(
                target, addresses, allowed, watchdog, _op_timeout(watchdog, timeout, current)
            )
            response: urllib3.HTTPResponse | None = None
            try:
                try:
                    conn.connect()
                    io_sock = conn.sock  # kept: http.client drops conn.sock on "will close"
                    conn.request(
                        "GET",
                        target.request_target,
                        headers=headers,
                        preload_content=False,
                        decode_content=False,
                    )
                    conn.timeout = _op_timeout(watchdog, timeout, current)
                    response = conn.getresponse()
                    if watchdog.fired:  # the shutdown cut the headers short: looks like EOF
                        raise ImageFetchError(
                            "timeout", f"{current}: the fetch exceeded its deadline"
                        )
                except ImageFetchError:
                    raise
                except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as exc:
                    raise _network_error(exc, watchdog, current) from exc

                status = response.status
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("Location", "").strip()
                    if not location:
                        raise ImageFetchError(
                            "http_status", f"{current} answered HTTP {status} without Location"
                        )
                    if hop == max_redirects:
                        raise ImageFetchError(
                            "redirects", f"{url}: more than {max_redirects} redirects"
                        )
                    current = urljoin(current, location)
                    continue
                if not 200 <= status < 300:
                    raise ImageFetchError(
                        "http_status", f"{current} answered HTTP {status} {response.reason}"
                    )
                content_type = _check_headers(
                    response, current, content_types, allowed_content_types, max_bytes
                )
                data = _read_body(response, io_sock, current, watchdog, timeout, max_bytes)
                return FetchedImage(data=data, content_type=content_type, final_url=current)
            finally:
                if response is not None:
                    response.close()
                conn.close()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
    finally:
        watchdog.stop()


def _check_headers(
    response: urllib3.HTTPResponse,
    url: str,
    content_types: frozenset[str],
    allowed_content_types: Sequence[str],
    max_bytes: int,
) -> str:
    raw_type = response.headers.get("Content-Type", "")
    content_type = raw_type.split(";", 1)[0].strip().lower()
    if content_type not in content_types:
        raise ImageFetchError(
            "content_type",
            f"{url}: Content-Type {raw_type or '(missing)'!r} is not allowed "
            f"(allowed: {', '.join(allowed_content_types)})",
        )
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ImageFetchError(
            "content_type", f"{url}: Content-Encoding {encoding!r} is not accepted"
        )
    declared = response.length_remaining  # None when chunked, absent or invalid
    if declared is not None and declared > max_bytes:
        raise ImageFetchError(
            "too_large", f"{url}: Content-Length {declared} exceeds the limit of {max_bytes} bytes"
        )
    return content_type


def _read_body(
    response: urllib3.HTTPResponse,
    io_sock: socket.socket | None,
    url: str,
    watchdog: _Watchdog,
    timeout: float,
    max_bytes: int,
) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            op_timeout = _op_timeout(watchdog, timeout, url)
            if io_sock is not None:
                with contextlib.suppress(OSError):
                    io_sock.settimeout(op_timeout)
            # read1: at most one socket read, so the deadline is checked between drips.
            chunk = response.read1(min(CHUNK_SIZE, max_bytes - total + 1), decode_content=False)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ImageFetchError(
                    "too_large", f"{url}: body exceeds the limit of {max_bytes} bytes"
                )
            chunks.append(chunk)
    except ImageFetchError:
        raise
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as exc:
        raise _network_error(exc, watchdog, url) from exc
    if watchdog.fired:  # the shutdown looks like EOF to a close-delimited body
        raise ImageFetchError("timeout", f"{url}: the fetch exceeded its deadline")
    return b"".join(chunks)
