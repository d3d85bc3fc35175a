"""Which hosts an image URL may reach: the address policy of the SSRF-safe fetcher
(:mod:`shop_recs.encoding.fetch`, whose docstring explains the defences).

:func:`parse_url` checks a URL's form (scheme, host, no credentials); :func:`resolve` looks its
host up once; :func:`validate_addresses` refuses the hop when ANY address is not globally
routable (loopback, private, link-local and cloud metadata, multicast, reserved, carrier-grade
NAT, documentation ranges, and IPv6 forms wrapping such IPv4 addresses), unless it lies in one
of the explicitly allowed networks. No Django here: the limits are passed in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from requests.utils import requote_uri

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


SUPPORTED_SCHEMES = frozenset({"http", "https"})


_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


_SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598


_NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)


_HOSTNAME_RE = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?"
)


class ImageFetchError(Exception):
    """A refused or failed download; ``reason`` is a short code, ``str(exc)`` a message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __repr__(self) -> str:
        return f"ImageFetchError({self.reason!r}, {str(self)!r})"


def normalize(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is the IPv4 address on the wire."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_networks(allow_networks: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    networks = []
    for spec in allow_networks:
        try:
            networks.append(ipaddress.ip_network(spec))
        except ValueError as exc:
            raise ValueError(
                f"allow_networks: {spec!r} is not a valid CIDR network: {exc}"
            ) from exc
    return tuple(networks)


def _classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public destination, or None when it is globally routable."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = _classify(ip.ipv4_mapped)
            return f"an IPv4-mapped address of {ip.ipv4_mapped} ({inner})" if inner else None
        if ip in _NAT64_NETWORK:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            inner = _classify(embedded)
            return f"a NAT64 address wrapping {embedded} ({inner})" if inner else None
        if ip.sixtofour is not None:
            inner = _classify(ip.sixtofour)
            if inner:
                return f"a 6to4 address wrapping {ip.sixtofour} ({inner})"
        if ip.teredo is not None:
            server, client = ip.teredo
            return f"a Teredo address (server {server}, client {client})"
        if ip in _IPV4_COMPATIBLE and int(ip) > 1:
            return f"an IPv4-compatible address wrapping {ipaddress.IPv4Address(int(ip))}"
        if ip.is_site_local:
            return "a site-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip in _METADATA_ADDRESSES:
        return f"a {'link-local' if ip.is_link_local else 'private'} cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED_NETWORK:
        return "a carrier-grade NAT address"
    if any(ip in net for net in _PRIVATE_NETWORKS if net.version == ip.version):
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a special-purpose (non-public) address"
    return None


def address_refusal(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """None if connecting to ``ip`` is permitted, else a description of why not."""
    ip = normalize(ip)
    if any(ip in net for net in allowed if net.version == ip.version):
        return None
    return _classify(ip)


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # ASCII hostname or IP literal without brackets; used for Host/SNI/cert checks
    port: int
    request_target: str  # path?query, percent-encoded
    ip: IPAddress | None  # set when the host is an IP literal


def parse_url(url: str, allowed_schemes: frozenset[str]) -> Target:
    if not isinstance(url, str) or not url:
        raise ImageFetchError("host", f"{url!r} is not a URL")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ImageFetchError("host", f"{url!r} contains whitespace or control characters")
    try:
        parts: SplitResult = urlsplit(url)
    except ValueError as exc:
        raise ImageFetchError("host", f"{url!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in allowed_schemes or scheme not in SUPPORTED_SCHEMES:
        allowed = ", ".join(sorted(allowed_schemes & SUPPORTED_SCHEMES)) or "none"
        raise ImageFetchError(
            "scheme", f"{url}: scheme {scheme or '(none)'!r} is not allowed (allowed: {allowed})"
        )
    netloc = parts.netloc
    if not netloc:
        raise ImageFetchError("host", f"{url}: the URL has no host")
    if "@" in netloc:
        raise ImageFetchError("host", f"{url}: credentials (user:password@) in URLs are refused")
    try:
        hostname = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ImageFetchError("host", f"{url}: invalid host or port: {exc}") from exc
    if not hostname:
        raise ImageFetchError("host", f"{url}: the URL has no host")
    if port == 0:
        raise ImageFetchError("host", f"{url}: port 0 is not valid")

    ip: IPAddress | None = None
    if netloc.startswith("["):
        try:
            ip = ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise ImageFetchError("host", f"{url}: invalid IPv6 literal: {exc}") from exc
        if ip.scope_id:
            raise ImageFetchError("host", f"{url}: IPv6 zone identifiers are refused")
    else:
        with contextlib.suppress(ValueError):
            ip = ipaddress.IPv4Address(hostname)
        if ip is None:
            try:
                hostname = hostname.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise ImageFetchError("host", f"{url}: invalid host name: {exc}") from exc
            if len(hostname) > 253 or not _HOSTNAME_RE.fullmatch(hostname):
                raise ImageFetchError("host", f"{url}: invalid host name {hostname!r}")

    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Target(
        url=url,
        scheme=scheme,
        host=hostname,
        port=port or (443 if scheme == "https" else 80),
        request_target=requote_uri(target),
        ip=ip,
    )


def resolve(target: Target) -> list[IPAddress]:
    """All addresses the host resolves to (IPv4-mapped ones as IPv4), in resolver order."""
    if target.ip is not None:
        return [normalize(target.ip)]
    try:
        infos = socket.getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as exc:
        raise ImageFetchError(
            "host", f"{target.url}: host {target.host!r} could not be resolved: {exc}"
        ) from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = normalize(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ImageFetchError("host", f"{target.url}: host {target.host!r} has no IP address")
    return addresses


def validate_addresses(
    target: Target, addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]
) -> None:
    """Refuse the hop if ANY address is not permitted (never pick "the good one")."""
    for ip in addresses:
        why = address_refusal(ip, allowed)
        if why:
            raise ImageFetchError(
                "blocked_address", f"{target.url} resolves to {ip}, {why}: refused"
            )
