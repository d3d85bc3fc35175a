"""shop_recs.encoding.fetch against real HTTP and HTTPS servers on 127.0.0.1.

No database. No traffic leaves 127.0.0.1: the autouse ``guard`` fixture fails the test if
anything tries to connect anywhere else or to look up a name in DNS (names used here are
"localhost", which resolves from /etc/hosts, or are answered by a monkeypatched getaddrinfo).
"""

from __future__ import annotations

import io
import ipaddress
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from shop_recs.encoding import addresses
from shop_recs.encoding import fetch as image_fetch
from shop_recs.encoding.fetch import FetchedImage, ImageFetchError, fetch_image

LOCAL = ["127.0.0.1/32"]
LIMIT = 100_000  # max_bytes for the size tests
HUGE = 200 * 1024 * 1024  # what the "huge" endpoints would send if nobody stopped them


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


# --- network guard ---------------------------------------------------------------------------


class ForbiddenNetworkAccess(AssertionError):
    """Raised (and recorded) when code under test tries to leave 127.0.0.1."""


@dataclass
class Guard:
    connects: list[tuple] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def guard(monkeypatch) -> Iterator[Guard]:
    g = Guard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address) -> None:
        g.connects.append(address)
        if not (
            sock.family == socket.AF_INET
            and isinstance(address, tuple)
            and address[0] == "127.0.0.1"
        ):
            g.violations.append(f"connect to {address!r}")
            raise ForbiddenNetworkAccess(f"test tried to connect to {address!r}")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost"):
            try:
                real_getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
            except socket.gaierror:
                g.violations.append(f"DNS lookup of {host!r}")
                raise ForbiddenNetworkAccess(f"test tried a DNS lookup of {host!r}") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield g
    assert not g.violations


def fake_dns(monkeypatch, table: dict[str, list[list[str]]]) -> list[str]:
    """Answer getaddrinfo for the names in ``table`` (successive answers; the last one sticks)
    and return the list of looked-up names. Other names go to the guarded resolver."""
    calls: list[str] = []
    fallback = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in table:
            return fallback(host, port, family, type, proto, flags)
        calls.append(host)
        answers = table[host]
        ips = answers.pop(0) if len(answers) > 1 else answers[0]
        result = []
        for ip in ips:
            if ipaddress.ip_address(ip).version == 4:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
            else:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


# --- local servers ---------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        self.server.requests.append(
            {
                "path": path,
                "host": self.headers.get("Host"),
                "user-agent": self.headers.get("User-Agent"),
                "accept-encoding": self.headers.get("Accept-Encoding"),
            }
        )
        port = self.server.server_port
        redirects = {
            "/loop": "/loop",
            "/to-relative": "ok.png",
            "/to-private": "http://10.0.0.1/x",
            "/to-metadata": "http://169.254.169.254/latest/meta-data",
            "/to-localhost": f"http://localhost:{port}/ok.png",
            "/to-file": "file:///etc/passwd",
        }
        if path in redirects:
            return self.respond(302, headers={"Location": redirects[path]})
        if path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n > 0:
                return self.respond(302, headers={"Location": f"/chain/{n - 1}"})
            return self.respond(200, "image/png", PNG)
        handler = getattr(
            self, "route_" + path.strip("/").replace("-", "_").replace(".", "_"), None
        )
        if handler is None:
            return self.respond(404, "text/plain", b"not found")
        return handler()

    def respond(self, status, content_type=None, body=b"", headers=None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def route_ok_png(self):
        self.respond(200, "image/png", PNG)

    def route_ok_upper_png(self):
        self.respond(200, "Image/PNG; charset=binary", PNG)

    def route_page_html(self):
        self.respond(200, "text/html; charset=utf-8", b"<html>not an image</html>")

    def route_no_type(self):
        self.respond(200, None, PNG)

    def route_gzip_png(self):
        self.respond(200, "image/png", PNG, headers={"Content-Encoding": "gzip"})

    def route_redirect_no_location(self):
        self.respond(302)

    def route_huge_declared(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(HUGE))
        self.send_header("Connection", "close")
        self.end_headers()
        self._stream_forever(chunked=False)

    def _stream_forever(self, *, chunked: bool):
        self.close_connection = True
        chunk = b"\x89PNG" * (16 * 1024)  # 64 KiB
        sent = 0
        try:
            while sent < HUGE:
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:  # the client hung up: what the test expects
            self.server.aborted.set()

    def route_huge_no_length(self):
        # HTTP/1.1 + Connection: close, no Content-Length: the body ends when the socket does.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")
        self.end_headers()
        self._stream_forever(chunked=False)

    def route_huge_lying_length(self):
        # Content-Length claims 100 bytes but Transfer-Encoding: chunked wins (RFC 9112) and
        # the chunks never end: only counting the streamed bytes catches this.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream_forever(chunked=True)

    def _drip(self, data: bytes, *, interval: float = 0.05, limit: float = 10.0):
        self.close_connection = True
        stop = time.monotonic() + limit
        try:
            for byte in data:
                if time.monotonic() > stop:
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            return

    def route_drip_body(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self._drip(PNG)

    def route_drip_headers(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Pad: " + b"x" * 500
        self._drip(head)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[dict] = []
        self.aborted = threading.Event()
        self.server_names: list[str | None] = []
        self.tls = tls
        super().__init__(("127.0.0.1", 0), Handler)

    def server_bind(self):
        # HTTPServer.server_bind would call socket.getfqdn() (a reverse DNS lookup): skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address):  # aborted downloads are expected
        pass

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.server_port}{path}"


def _serve(server: LocalServer) -> Iterator[LocalServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def _http_server() -> Iterator[LocalServer]:
    yield from _serve(LocalServer())


@pytest.fixture
def server(_http_server) -> LocalServer:
    _http_server.requests.clear()
    _http_server.aborted.clear()
    return _http_server


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory) -> Path:
    """A self-signed certificate for "images.test" (made with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
            "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def _https_server(tls_cert) -> Iterator[LocalServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_cert / "cert.pem", tls_cert / "key.pem")
    server = LocalServer(tls=context)
    context.sni_callback = lambda _sock, name, _ctx: server.server_names.append(name)
    yield from _serve(server)


@pytest.fixture
def https_server(_https_server) -> LocalServer:
    _https_server.requests.clear()
    _https_server.server_names.clear()
    return _https_server


def refused(url: str, **kwargs) -> ImageFetchError:
    with pytest.raises(ImageFetchError) as info:
        fetch_image(url, **kwargs)
    return info.value


# --- 1. fetching from the explicitly allowed local server ------------------------------------


def test_fetches_png_from_allowed_local_server(server, guard):
    url = server.url("/ok.png")
    result = fetch_image(url, allow_networks=LOCAL)
    assert result == FetchedImage(data=PNG, content_type="image/png", final_url=url)
    assert guard.connects == [("127.0.0.1", server.server_port)]
    [request] = server.requests
    assert request["host"] == f"127.0.0.1:{server.server_port}"
    assert request["user-agent"] == "shop_recs-image-fetcher/1.0"
    assert request["accept-encoding"] == "identity"


def test_content_type_parameters_and_case_are_ignored(server):
    result = fetch_image(server.url("/ok-upper.png"), allow_networks=LOCAL)
    assert (result.data, result.content_type) == (PNG, "image/png")


def test_relative_redirect_is_followed_and_final_url_reported(server, guard):
    result = fetch_image(server.url("/to-relative"), allow_networks=LOCAL)
    assert result.data == PNG
    assert result.final_url == server.url("/ok.png")
    assert [r["path"] for r in server.requests] == ["/to-relative", "/ok.png"]
    assert len(guard.connects) == 2  # one fresh, re-validated connection per hop


def test_exactly_max_bytes_is_accepted_one_less_is_not(server):
    assert fetch_image(server.url("/ok.png"), allow_networks=LOCAL, max_bytes=len(PNG)).data == PNG
    error = refused(server.url("/ok.png"), allow_networks=LOCAL, max_bytes=len(PNG) - 1)
    assert error.reason == "too_large"


# --- 2. non-public destinations are refused before any connection ----------------------------


BLOCKED_URLS = [
    "http://127.0.0.1:{port}/ok.png",
    "http://localhost:{port}/ok.png",
    "http://[::1]:{port}/ok.png",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/a.jpg",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://100.64.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:a00:1::1]/",  # 6to4 wrapping 10.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 wrapping 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://240.0.0.1/",
    "https://10.1.2.3/a.png",
]


@pytest.mark.parametrize("template", BLOCKED_URLS)
def test_non_public_addresses_are_refused_without_connecting(template, server, guard):
    error = refused(template.format(port=server.server_port))
    assert error.reason == "blocked_address", error
    assert "refused" in str(error)
    assert guard.connects == []
    assert server.requests == []


def test_refusal_message_names_url_and_address():
    error = refused("http://10.0.0.1/a.jpg")
    assert str(error) == "http://10.0.0.1/a.jpg resolves to 10.0.0.1, a private address: refused"
    error = refused("http://169.254.169.254/latest/meta-data")
    assert "169.254.169.254" in str(error) and "metadata" in str(error)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1", "0"])
def test_legacy_numeric_ipv4_forms_are_resolved_and_refused(host, guard):
    try:  # only where the C resolver treats the form as numeric (no DNS query)
        socket.getaddrinfo(host, 80, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pytest.skip(f"resolver does not parse {host!r} numerically")
    assert refused(f"http://{host}/a.png").reason == "blocked_address"
    assert guard.connects == []


def test_any_bad_address_in_the_answer_refuses_the_hop(monkeypatch, server, guard):
    fake_dns(monkeypatch, {"mixed.test": [["127.0.0.1", "10.0.0.1"]]})
    error = refused(f"http://mixed.test:{server.server_port}/ok.png", allow_networks=LOCAL)
    assert error.reason == "blocked_address"
    assert "10.0.0.1" in str(error)
    assert guard.connects == []


def test_allow_networks_only_opens_the_listed_networks(server, guard):
    error = refused(server.url("/ok.png"), allow_networks=["10.0.0.0/8"])
    assert error.reason == "blocked_address"
    assert refused("http://10.0.0.2/a.png", allow_networks=LOCAL).reason == "blocked_address"
    assert guard.connects == []
    with pytest.raises(ValueError, match="allow_networks"):
        fetch_image(server.url("/ok.png"), allow_networks=["10.0.0.1/8"])  # host bits set
    with pytest.raises(ValueError, match="allow_networks"):
        fetch_image(server.url("/ok.png"), allow_networks=["not-a-network"])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.0.1", "a private address"),
        ("fc00::1", "a private address"),
        ("127.0.0.2", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local cloud metadata address"),
        ("fd00:ec2::254", "a private cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("100.127.255.254", "a carrier-grade NAT address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::127.0.0.1", "an IPv4-compatible address wrapping 127.0.0.1"),
        ("2002:a00:1::1", "a 6to4 address wrapping 10.0.0.1 (a private address)"),
        ("2002:7f00:1::", "a 6to4 address wrapping 127.0.0.1 (a loopback address)"),
        ("64:ff9b::7f00:1", "a NAT64 address wrapping 127.0.0.1 (a loopback address)"),
        ("fec0::1", "a site-local address"),
        ("255.255.255.255", "a reserved address"),
        ("240.0.0.1", "a reserved address"),
        ("192.0.2.1", "a special-purpose (non-public) address"),
        ("198.18.0.1", "a special-purpose (non-public) address"),
        ("2001:db8::1", "a special-purpose (non-public) address"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("64:ff9b::808:808", None),  # NAT64 of a public address
    ],
)
def test_address_policy(address, expected):
    # A pure classification: no socket is involved.
    assert addresses.address_refusal(ipaddress.ip_address(address)) == expected


def test_address_policy_allow_networks():
    allowed = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.20.0.0/16")]
    check = addresses.address_refusal
    assert check(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert check(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None  # mapped = IPv4
    assert check(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert check(ipaddress.ip_address("127.0.0.2"), allowed) == "a loopback address"
    assert check(ipaddress.ip_address("::1"), allowed) == "a loopback address"
    assert check(ipaddress.ip_address("10.21.0.1"), allowed) == "a private address"


# --- 3. schemes, credentials and malformed hosts ---------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "gopher://127.0.0.1:70/_GET%20/",
        "dict://127.0.0.1:11211/stats",
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "//example.com/a.jpg",
        "example.com/a.jpg",
    ],
)
def test_disallowed_schemes_are_refused(url, guard):
    assert refused(url).reason == "scheme"
    assert guard.connects == []


def test_allowed_schemes_can_be_narrowed(server, guard):
    error = refused(server.url("/ok.png"), allow_networks=LOCAL, allowed_schemes=("https",))
    assert error.reason == "scheme"
    assert guard.connects == []
    # Scheme matching is case-insensitive.
    url = server.url("/ok.png").replace("http://", "HTTP://")
    assert fetch_image(url, allow_networks=LOCAL).data == PNG


@pytest.mark.parametrize(
    "template",
    [
        "http://user:pw@example.com/a.jpg",
        "http://user@127.0.0.1:{port}/ok.png",
        "http://:@127.0.0.1:{port}/ok.png",
        "http://example.com\\@127.0.0.1:{port}/ok.png",
        "http://127.0.0.1:{port}\\.example.com/ok.png",
        "http:///a.jpg",
        "http://",
        "http://exa mple.com/a.jpg",
        "http://example.com/a\r\nX-Injected: 1",
        "http://[fe80::1%25eth0]/",
        "http://[not-ipv6]/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:0/",
        "http://exa%2Fmple.com/",
    ],
)
def test_credentials_and_malformed_hosts_are_refused(template, server, guard):
    # Refused even where the address itself would be allowed.
    error = refused(template.format(port=server.server_port), allow_networks=LOCAL)
    assert error.reason == "host", error
    assert guard.connects == []


# --- 4. redirects are followed by hand and re-validated --------------------------------------


@pytest.mark.parametrize(
    ("path", "address"), [("/to-private", "10.0.0.1"), ("/to-metadata", "169.254.169.254")]
)
def test_redirect_to_non_public_address_is_refused(path, address, server, guard):
    error = refused(server.url(path), allow_networks=LOCAL)
    assert error.reason == "blocked_address"
    assert address in str(error)
    assert guard.connects == [("127.0.0.1", server.server_port)]  # only the first hop


def test_redirect_to_other_scheme_is_refused(server):
    assert refused(server.url("/to-file"), allow_networks=LOCAL).reason == "scheme"


def test_redirect_to_dual_stack_localhost_is_refused_when_only_ipv4_loopback_allowed(
    monkeypatch, server, guard
):
    # Many systems resolve localhost to both 127.0.0.1 and ::1; ::1 is not in 127.0.0.1/32,
    # and one bad address refuses the hop. Pinned here so the test does not depend on /etc/hosts.
    fake_dns(monkeypatch, {"localhost": [["127.0.0.1", "::1"]]})
    error = refused(server.url("/to-localhost"), allow_networks=LOCAL)
    assert error.reason == "blocked_address"
    assert "::1" in str(error)
    assert guard.connects == [("127.0.0.1", server.server_port)]


def test_redirect_to_ipv4_only_localhost_is_followed(monkeypatch, server):
    fake_dns(monkeypatch, {"localhost": [["127.0.0.1"]]})
    result = fetch_image(server.url("/to-localhost"), allow_networks=LOCAL)
    assert result.data == PNG
    assert result.final_url == server.url("/ok.png", host="localhost")
    assert server.requests[-1]["host"] == f"localhost:{server.server_port}"


def test_redirect_loop_is_cut_off(server):
    error = refused(server.url("/loop"), allow_networks=LOCAL, max_redirects=3)
    assert error.reason == "redirects"
    assert len(server.requests) == 4  # the first request + 3 redirects, then stop


def test_max_redirects_is_exact(server):
    assert fetch_image(server.url("/chain/3"), allow_networks=LOCAL, max_redirects=3).data == PNG
    server.requests.clear()
    assert refused(server.url("/chain/3"), allow_networks=LOCAL, max_redirects=2).reason == (
        "redirects"
    )
    assert [r["path"] for r in server.requests] == ["/chain/3", "/chain/2", "/chain/1"]
    assert refused(server.url("/chain/1"), allow_networks=LOCAL, max_redirects=0).reason == (
        "redirects"
    )


def test_redirect_without_location_is_an_http_status_error(server):
    assert refused(server.url("/redirect-no-location"), allow_networks=LOCAL).reason == (
        "http_status"
    )


# --- 5. size, type, status and time limits ---------------------------------------------------


def test_body_without_content_length_is_cut_at_max_bytes(server):
    started = time.monotonic()
    error = refused(server.url("/huge-no-length"), allow_networks=LOCAL, max_bytes=LIMIT)
    assert error.reason == "too_large"
    assert time.monotonic() - started < 5
    assert server.aborted.wait(5), "the client kept the connection open"


def test_declared_content_length_over_limit_is_refused_before_reading(server):
    error = refused(server.url("/huge-declared"), allow_networks=LOCAL, max_bytes=LIMIT)
    assert error.reason == "too_large"
    assert "Content-Length" in str(error)


def test_lying_content_length_with_endless_chunked_body_is_cut_at_max_bytes(server):
    error = refused(server.url("/huge-lying-length"), allow_networks=LOCAL, max_bytes=LIMIT)
    assert error.reason == "too_large"
    assert "Content-Length" not in str(error)  # caught while streaming, not from the header
    assert server.aborted.wait(5), "the client kept the connection open"


@pytest.mark.parametrize("path", ["/page.html", "/no-type", "/gzip.png"])
def test_wrong_content_type_or_encoding_is_refused(path, server):
    assert refused(server.url(path), allow_networks=LOCAL).reason == "content_type"


def test_narrower_content_types(server):
    error = refused(
        server.url("/ok.png"), allow_networks=LOCAL, allowed_content_types=["image/jpeg"]
    )
    assert error.reason == "content_type"


def test_non_2xx_is_refused(server):
    error = refused(server.url("/missing"), allow_networks=LOCAL)
    assert error.reason == "http_status"
    assert "404" in str(error)


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_slow_drip_hits_the_overall_deadline(path, server):
    # Bytes arrive every 50 ms, so no single read ever times out: only the deadline stops it.
    started = time.monotonic()
    error = refused(server.url(path), allow_networks=LOCAL, timeout=1.0)
    elapsed = time.monotonic() - started
    assert error.reason == "timeout", error
    assert 0.9 < elapsed < 3.0


# --- 6. the connection is pinned to the validated address ------------------------------------


def test_dns_rebinding_after_the_check_cannot_redirect_the_connection(monkeypatch, server, guard):
    # First answer is allowed, every later one points at 10.0.0.1. A fetcher that resolved again
    # when connecting (plain requests/urllib3) would connect to 10.0.0.1: the guard would fail.
    calls = fake_dns(monkeypatch, {"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    url = f"http://rebind.test:{server.server_port}/ok.png"
    result = fetch_image(url, allow_networks=LOCAL)
    assert result == FetchedImage(data=PNG, content_type="image/png", final_url=url)
    assert calls == ["rebind.test"]  # resolved exactly once
    assert guard.connects == [("127.0.0.1", server.server_port)]
    assert server.requests[0]["host"] == f"rebind.test:{server.server_port}"  # Host kept


def test_each_redirect_hop_is_resolved_and_checked_again(monkeypatch, server, guard):
    calls = fake_dns(monkeypatch, {"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    error = refused(f"http://rebind.test:{server.server_port}/to-relative", allow_networks=LOCAL)
    assert error.reason == "blocked_address"
    assert "10.0.0.1" in str(error)
    assert calls == ["rebind.test", "rebind.test"]
    assert guard.connects == [("127.0.0.1", server.server_port)]


def test_peer_address_is_checked_after_connecting(monkeypatch, server, guard):
    # Defence in depth: if the socket ever reached another address than the pinned one
    # (it cannot be made to happen for real here), the fetch is refused.
    monkeypatch.setattr(socket.socket, "getpeername", lambda self: ("10.0.0.1", 80))
    error = refused(server.url("/ok.png"), allow_networks=LOCAL)
    assert error.reason == "blocked_address"
    assert "reached 10.0.0.1" in str(error)
    assert guard.connects == [("127.0.0.1", server.server_port)]


def test_https_connection_is_built_for_the_hostname_with_verification():
    target = addresses.parse_url("https://images.example/a.png", frozenset({"https"}))
    watchdog = image_fetch._Watchdog(5.0)
    conn = image_fetch._connection(
        target, [ipaddress.ip_address("93.184.216.34")], (), watchdog, 5.0
    )
    try:
        assert isinstance(conn, image_fetch._PinnedHTTPSConnection)
        assert (conn.host, conn.port) == ("images.example", 443)  # Host header, SNI, cert name
        assert conn.server_hostname is None  # urllib3 then uses conn.host
        assert conn.cert_reqs == "CERT_REQUIRED"
        assert conn.ssl_context.verify_mode == ssl.CERT_REQUIRED
        assert conn.ssl_context.check_hostname is True
        assert conn._pinned == (ipaddress.ip_address("93.184.216.34"),)
        assert conn.sock is None  # nothing was connected
    finally:
        conn.close()
        watchdog.stop()


def test_https_is_pinned_with_sni_and_certificate_checked_for_the_hostname(
    monkeypatch, https_server, tls_cert, guard
):
    trusting = ssl.create_default_context(cafile=str(tls_cert / "cert.pem"))
    monkeypatch.setattr(image_fetch, "_ssl_context", lambda: trusting)
    calls = fake_dns(
        monkeypatch, {"images.test": [["127.0.0.1"], ["10.0.0.1"]], "other.test": [["127.0.0.1"]]}
    )
    url = https_server.url("/ok.png", host="images.test", scheme="https")
    result = fetch_image(url, allow_networks=LOCAL)
    assert result == FetchedImage(data=PNG, content_type="image/png", final_url=url)
    assert calls == ["images.test"]
    assert https_server.server_names == ["images.test"]  # SNI is the hostname, not the IP
    assert https_server.requests[0]["host"] == f"images.test:{https_server.server_port}"
    assert guard.connects == [("127.0.0.1", https_server.server_port)]

    # Same server, same pinned IP, but a name the certificate does not cover.
    other = https_server.url("/ok.png", host="other.test", scheme="https")
    error = refused(other, allow_networks=LOCAL)
    assert error.reason == "connection"
    assert "certificate" in str(error).lower()


def test_https_default_trust_store_rejects_unknown_certificates(monkeypatch, https_server):
    fake_dns(monkeypatch, {"images.test": [["127.0.0.1"]]})
    url = https_server.url("/ok.png", host="images.test", scheme="https")
    error = refused(url, allow_networks=LOCAL)
    assert error.reason == "connection"
    assert "certificate" in str(error).lower()
    assert https_server.requests == []
