"""The local HTTP front door (mailsage.local.http) over a real socket, with the real api handler
behind it: what it answers itself is answered in the surface's JSON envelope with the right status,
no body is read past what it allows, and nothing it writes can split a header."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import pytest

from mailsage.local.functions import HandlerPool
from mailsage.local.http import FrontDoor, http_server
from mailsage.settings import ApiSettings
from tests.conftest import Account

ORIGIN = "https://app.example.com"
LIMIT = 4096  # MAILSAGE_MAX_REQUEST_BYTES of these servers
IDLE = 1.0  # their idle timeout, seconds


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: Any


@dataclass
class Server:
    port: int
    account: Account

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def exchange(self, raw: bytes) -> tuple[Reply, socket.socket]:
        """Send raw bytes on a new connection; the first reply, and the socket (still open)."""
        sock = self.connect()
        sock.sendall(raw)
        return read_reply(sock), sock

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {self.account.key}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        reply, sock = self.exchange(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        sock.close()
        return reply


def read_reply(sock: socket.socket, method: str = "GET") -> Reply:
    response = HTTPResponse(sock, method=method)
    response.begin()
    raw = response.read()
    ctype = response.getheader("Content-Type") or ""
    body = json.loads(raw) if raw and ctype.startswith("application/json") else raw
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def closed(sock: socket.socket, within: float = 15) -> bool:
    """True if the server closes the connection within `within` seconds (a bounded wait)."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def assert_v1(reply: Reply, status: int, code: str) -> str:
    assert reply.status == status, reply
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, reply.body
    assert reply.body["error"]["code"] == code, reply.body
    assert reply.headers["content-type"] == "application/json"
    return str(reply.body["error"]["message"])


def assert_v2(reply: Reply, status: int) -> str:
    assert reply.status == status, reply
    assert isinstance(reply.body, dict) and set(reply.body) == {"message"}, reply.body
    return str(reply.body["message"])


@contextmanager
def serving(api: Any, settings: ApiSettings, account: Account) -> Iterator[Server]:
    httpd: FrontDoor = http_server("127.0.0.1", 0, api, settings, timeout=IDLE)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(httpd.server_address[1], account)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def make_server(
    data_dir: Path, account: Account, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Server]]:
    """A front door with the real api handler pool, as `mailsage serve` builds it."""
    opened: list[Any] = []

    def make(**env: str) -> Server:
        monkeypatch.setenv("MAILSAGE_MAX_REQUEST_BYTES", str(LIMIT))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        context = serving(HandlerPool("api", size=2), ApiSettings(), account)
        opened.append(context)
        return context.__enter__()

    yield make
    for context in opened:
        context.__exit__(None, None, None)


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


def v2_path(server: Server) -> str:
    return f"/v2/accounts/{server.account.id}/messages"


# -- Content-Length and Transfer-Encoding ------------------------------------------------------


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "+5", "5, 6", "0x10", "99999999999999999999999"])
def test_an_invalid_content_length_is_400_and_no_body_is_read(server: Server, length: str) -> None:
    # Given a request whose Content-Length is not one decimal number, and no body sent
    raw = f"POST /api/v1/emails/send HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    # When it is sent / Then it is answered at once (nothing waited for), 400 in the v1 envelope,
    # and the connection is closed
    reply, sock = server.exchange(raw)
    assert "Content-Length" in assert_v1(reply, 400, "bad_request")
    assert reply.headers["connection"] == "close"
    assert closed(sock)


def test_two_different_content_lengths_are_400(server: Server) -> None:
    raw = b"POST /api/v1/emails/send HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}"
    reply, sock = server.exchange(raw)
    assert_v1(reply, 400, "bad_request")
    assert closed(sock)


def test_an_invalid_content_length_on_v2_is_the_v2_envelope(server: Server) -> None:
    raw = f"POST {v2_path(server)} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".encode()
    reply, _ = server.exchange(raw)
    assert "Content-Length" in assert_v2(reply, 400)


@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_a_body_over_the_limit_is_refused_before_it_is_read(server: Server, surface: str) -> None:
    # Given a request announcing a body over the limit, of which no byte is sent
    path = "/api/v1/emails/send" if surface == "v1" else v2_path(server)
    raw = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n".encode()
    # When it is sent
    reply, sock = server.exchange(raw)
    # Then: v1 413 payload_too_large, v2 400 (its contract has no 413), each in its envelope; closed
    message = assert_v1(reply, 413, "payload_too_large") if surface == "v1" else assert_v2(reply, 400)
    assert str(LIMIT) in message
    assert closed(sock)


def test_a_chunked_body_is_411_and_never_read_as_a_second_request(server: Server) -> None:
    # Given a chunked request whose chunk is a whole second request (smuggling behind a proxy)
    smuggled = b"GET /api/v1/templates HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"POST /api/v1/emails/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(smuggled):x}\r\n".encode()
        + smuggled
        + b"\r\n0\r\n\r\n"
    )
    # When it is sent
    reply, sock = server.exchange(raw)
    # Then it is 411 in the envelope, the connection closes, and nothing else was answered
    assert "Transfer-Encoding" in assert_v1(reply, 411, "length_required")
    sock.settimeout(15)
    rest = b""
    while chunk := sock.recv(65536):
        rest += chunk
    assert rest == b""


def test_chunked_on_v2_is_a_400_in_the_v2_envelope(server: Server) -> None:
    raw = (
        f"POST {v2_path(server)} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
    )
    reply, _ = server.exchange(raw)
    assert_v2(reply, 400)


# -- slow, idle and malformed connections -----------------------------------------------------


def test_an_idle_connection_is_closed(server: Server) -> None:
    # Given a connection on which nothing is sent
    sock = server.connect()
    # Then the server closes it after its idle timeout (bounded wait)
    assert closed(sock)


def test_a_request_stalled_in_its_headers_is_closed(server: Server) -> None:
    sock = server.connect()
    sock.sendall(b"GET /v2/ping HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
    assert closed(sock)


def test_a_request_stalled_in_its_body_is_closed(server: Server) -> None:
    sock = server.connect()
    sock.sendall(b"POST /api/v1/emails/send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert closed(sock)


def test_a_kept_alive_connection_serves_several_requests(server: Server) -> None:
    # Given one connection / When two requests are sent on it / Then both are answered
    sock = server.connect()
    ping = f"GET /v2/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.account.key}\r\n\r\n".encode()
    for _ in range(2):
        sock.sendall(ping)
        assert read_reply(sock).body == {"message": "pong"}
    sock.close()


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /v2/ping HTTP/1.1 extra\r\n\r\n", 400, "bad_request"),
        (b"GET /\r\n", 400, "bad_request"),  # HTTP/0.9
        (b"GET /v2/ping HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET /api/v1/templates HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (b"GET /api/v1/templates HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431, "headers_too_large"),
        (
            b"GET /api/v1/templates HTTP/1.1\r\nX-Big: " + b"a" * 11_000 + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (b"BREW /api/v1/templates HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented"),
    ],
    ids=[
        "garbage",
        "four-words",
        "http-0.9",
        "http-2",
        "long-line",
        "long-header",
        "101-headers",
        "11k-headers",
        "brew",
    ],
)
def test_what_http_parsing_refuses_gets_the_json_envelope(
    server: Server, raw: bytes, status: int, code: str
) -> None:
    # Given a malformed request / When it is sent / Then a status line, and the v1 JSON envelope
    reply, sock = server.exchange(raw)
    assert_v1(reply, status, code)
    assert closed(sock)


def test_header_limits_on_v2_answer_in_the_v2_envelope(server: Server) -> None:
    raw = f"GET {v2_path(server)} HTTP/1.1\r\nX-Big: {'a' * 11_000}\r\n\r\n".encode()
    reply, _ = server.exchange(raw)
    assert_v2(reply, 400)  # 431 is not a status of the v2 contract


# -- methods and CORS ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "DELETE"])
def test_a_method_a_path_does_not_have_is_405_with_allow(server: Server, method: str) -> None:
    reply = server.request(method, "/api/v1/templates")
    assert_v1(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "GET, POST"


def test_head_is_405_with_allow_and_no_body(server: Server) -> None:
    sock = server.connect()
    sock.sendall(
        f"HEAD /v2/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.account.key}\r\n\r\n".encode()
    )
    reply = read_reply(sock, method="HEAD")
    assert reply.status == 405 and reply.headers["allow"] == "GET"
    assert reply.body == b""
    # and the connection is still usable: no stray body bytes were written
    sock.sendall(
        f"GET /v2/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.account.key}\r\n\r\n".encode()
    )
    assert read_reply(sock).body == {"message": "pong"}


def test_a_v2_path_with_a_method_it_does_not_have_is_405_in_the_v2_envelope(server: Server) -> None:
    reply = server.request("TRACE", v2_path(server))
    assert_v2(reply, 405)
    assert reply.headers["allow"] == "GET, POST"


def test_preflight_from_a_configured_origin_is_answered(make_server: Callable[..., Server]) -> None:
    # Given a server with a configured CORS origin
    server = make_server(MAILSAGE_ALLOWED_ORIGINS=json.dumps([ORIGIN]))
    # When a browser sends its preflight (no credentials)
    raw = (
        f"OPTIONS {v2_path(server)} HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
        "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n\r\n"
    ).encode()
    reply, _ = server.exchange(raw)
    # Then it is allowed, for that origin, the methods and the headers the API reads
    assert reply.status == 204, reply
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert {"Authorization", "Content-Type", "Idempotency-Key"} <= {
        h.strip() for h in reply.headers["access-control-allow-headers"].split(",")
    }
    # and the request itself carries the origin back
    reply = server.request("GET", "/v2/ping", {"Origin": ORIGIN})
    assert reply.status == 200 and reply.headers["access-control-allow-origin"] == ORIGIN


def test_preflight_from_another_origin_is_not_allowed(make_server: Callable[..., Server]) -> None:
    server = make_server(MAILSAGE_ALLOWED_ORIGINS=json.dumps([ORIGIN]))
    raw = b"OPTIONS /v2/ping HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n"
    reply, _ = server.exchange(raw)
    assert reply.status in (401, 405)
    assert "access-control-allow-origin" not in reply.headers


# -- bodies the api handler cannot read, over the socket ----------------------------------------


@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_a_body_that_is_not_utf8_is_400_over_http(server: Server, surface: str) -> None:
    path = "/api/v1/emails/send" if surface == "v1" else v2_path(server)
    reply = server.request("POST", path, {"Content-Type": "application/json"}, b'{"subject": "caf\xe9"}')
    if surface == "v1":
        assert "UTF-8" in assert_v1(reply, 400, "validation_error")
    else:
        assert "UTF-8" in assert_v2(reply, 400)


# -- headers the server writes ------------------------------------------------------------------


class _EvilHandler:
    """Stands in for an api handler whose reply carries a header with CR/LF (a bug elsewhere)."""

    @staticmethod
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "statusCode": 302,
            "headers": {"Location": "https://example.com/\r\nSet-Cookie: x=1", "Content-Type": "text/plain"},
            "body": "",
        }


class _EvilPool:
    @contextmanager
    def acquire(self) -> Iterator[_EvilHandler]:
        yield _EvilHandler()


def test_a_header_with_crlf_is_never_written(data_dir: Path, account: Account) -> None:
    # Given a handler whose reply has a header value with CR/LF in it
    with serving(_EvilPool(), ApiSettings(), account) as server:
        # When a request gets that reply
        reply, sock = server.exchange(b"GET /t/c/x HTTP/1.1\r\nHost: x\r\n\r\n")
        # Then the server refuses to write it: a 500 in the envelope, no injected header
        assert_v1(reply, 500, "internal_error")
        assert "set-cookie" not in reply.headers and "location" not in reply.headers
        assert closed(sock)


def test_a_burst_of_connections_is_accepted(server: Server) -> None:
    # Given 40 clients connecting at the same moment (more than socketserver's default backlog of 5)
    replies: list[int] = []
    start = threading.Barrier(40)

    def ping() -> None:
        start.wait()
        replies.append(server.request("GET", "/v2/ping").status)

    threads = [threading.Thread(target=ping) for _ in range(40)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    # Then every one is answered
    assert replies == [200] * 40
