"""The webhook client: one POST to a customer endpoint over a raw HTTP(S) connection.

The connection goes only to an address that `resolve_public` (domain/urls.py) returned for the
URL's host at this attempt (no second lookup that a rebinding name could answer differently);
HTTPS still verifies the certificate against the host name and sends it as SNI. Redirects are not
followed: the status is returned as it came.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from mailsage.adapters.dns import SystemResolver
from mailsage.domain.urls import BlockedAddress, resolve_public
from mailsage.ports.webhooks import Resolver, WebhookResponse


class HttpWebhookClient:
    """The `WebhookClient` port. `allow_private`: the embedded runtime may post to loopback and
    private addresses; a deployment may not."""

    def __init__(
        self, resolver: Resolver | None = None, allow_private: bool = False, tls: ssl.SSLContext | None = None
    ) -> None:
        self.resolver = resolver or SystemResolver()
        self.allow_private = allow_private
        self.tls = tls

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> WebhookResponse:
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = post_pinned(url, headers, body, timeout, self.allow_private, self.resolver, self.tls)
        except BlockedAddress as exc:
            error = exc.message
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except socket.gaierror as exc:
            error = f"cannot resolve the host: {exc.strerror or exc}"
        except ssl.SSLError as exc:
            error = f"TLS failed: {exc.reason or exc}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return WebhookResponse(status, error, int((time.monotonic() - started) * 1000))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address; the Host header still names the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address; SNI and certificate verification use the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


_tls_context: ssl.SSLContext | None = None


def _default_tls() -> ssl.SSLContext:
    global _tls_context
    if _tls_context is None:
        _tls_context = ssl.create_default_context()
    return _tls_context


def post_pinned(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,
    allow_private: bool,
    resolver: Resolver,
    tls: ssl.SSLContext | None = None,
) -> int:
    """POST `body` to `url` and return the status code, connecting only to addresses
    `resolve_public` allows. The whole exchange is bounded by `timeout` (a server that trickles its
    answer is cut off too): raises TimeoutError past it, OSError/HTTPException on other failures."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    addresses = resolve_public(host, port, allow_private, resolver)

    last_error: OSError | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = _PinnedHTTPSConnection(host, port, address, remaining, tls or _default_tls())
        else:
            conn = _PinnedHTTPConnection(host, port, address, remaining)
        try:
            conn.connect()
        except ssl.SSLError:
            conn.close()
            raise  # a certificate problem is the same on every address
        except OSError as exc:  # refused, unreachable, timed out: try the next address
            last_error = exc
            conn.close()
            continue
        return _exchange(conn, target, headers, body, deadline)
    if last_error is not None:
        raise last_error
    raise TimeoutError("no time left to connect")


def _exchange(
    conn: http.client.HTTPConnection, target: str, headers: Mapping[str, str], body: bytes, deadline: float
) -> int:
    """Send the request on a connected connection and read the status line and headers; a watchdog
    closes the socket at the deadline so no read can outlast it."""
    timed_out = threading.Event()

    def cut() -> None:
        timed_out.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
    except (OSError, http.client.HTTPException):
        watchdog.cancel()
        conn.close()
        if timed_out.is_set():
            raise TimeoutError("timed out") from None
        raise
    try:
        # The answer's body is not used: a small one is read whole (the server's write completes), the
        # rest goes with the connection. The status decides, whatever happens to the body.
        with contextlib.suppress(OSError, http.client.HTTPException):
            response.read(65_536)
    finally:
        watchdog.cancel()
        conn.close()
    return response.status
