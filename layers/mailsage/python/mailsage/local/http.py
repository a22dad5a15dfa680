"""The HTTP front door of `mailsage serve`: each request becomes an API Gateway event for the real
api handler (functions/api), and the reply goes back as it would through API Gateway.

On AWS, API Gateway answers some requests before the function ever runs; here this module does,
in the envelope of the surface the path belongs to (v1 `{"error": {...}}`, v2 `{"message"}` with
the statuses the v2 contract has, see `mailsage.api.errors`):
- a body larger than MAILSAGE_MAX_REQUEST_BYTES: 413 (v2: 400), before any of it is read;
- a Content-Length that is not one decimal number: 400; `Transfer-Encoding` (chunked): 411
  (v2: 400). Both close the connection, so no byte of that body is read as a next request;
- a malformed request line 400, HTTP/0.9 400, an unsupported HTTP version 505, a request line
  over 64 KiB 414, headers over MAX_HEADER_BYTES (API Gateway's 10 KiB) or 100 lines 431, an
  unknown method 501;
- CORS preflight (OPTIONS from a configured origin, MAILSAGE_ALLOWED_ORIGINS): 204, as the
  gateway's own OPTIONS methods answer it on AWS.
A connection idle (or stalled mid-request) for IDLE_TIMEOUT_SECONDS is closed. A reply header that
holds CR, LF or NUL is never written: the request is answered 500 instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from mailsage.api.errors import error_reply
from mailsage.local.events import api_gateway_event
from mailsage.local.functions import HandlerPool, LocalContext
from mailsage.local.inbox import Inbox, is_inbox_path
from mailsage.settings import ApiSettings

log = logging.getLogger("mailsage.local")
# One readable line per request for the developer's console (`mailsage serve` shows it; on Lambda
# the api function logs structured JSON instead).
requests_log = logging.getLogger("mailsage.requests")

IDLE_TIMEOUT_SECONDS = 30.0
MAX_HEADER_BYTES = 10 * 1024  # what API Gateway accepts in total
# Requests handled at once. Each request sees only itself (mailsage.api.resolver), so the pool only
# bounds memory; with 4 slots, 4 slow requests (heavy templates) made every other caller wait.
API_CONCURRENCY = 16
# Of those, at most this many write (submissions, changes); the others wait for a slot, and the rest
# of the pool is kept for reads. Writers are CPU-bound (rendering) or wait for the database's write
# lock, so on a few cores more of them at once add no throughput, only GIL contention: next to 8
# clients submitting batches, a ping's p99 was ~100-180 ms with 4 writers, ~230-360 ms with 12.
WRITE_CONCURRENCY = 4
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The API runs in threads of one interpreter. A thread waiting for the GIL gets it after at most
# this long (default 5 ms); a short request needs it dozens of times, so next to 4 CPU-bound
# requests a ping took ~100 ms at p50 and ~430 ms at p99 with 5 ms, ~30 / ~85 ms with 1 ms.
SWITCH_INTERVAL_SECONDS = 0.001
# Methods given to the api handler (it answers 405 with Allow for those a path does not have).
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"  # as infra/constructs/api.py
CORS_MAX_AGE_SECONDS = 3600

_LENGTH = re.compile(r"[0-9]{1,18}")
_UNSAFE = re.compile(r"[\r\n\x00]")
# The codes of what the standard library's request parsing refuses (its send_error).
_HTTP_ERRORS = {
    400: "bad_request",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    505: "http_version_not_supported",
}


class FrontDoor(ThreadingHTTPServer):
    """Also counts the requests being answered, so a stop can let them finish (`drain`)."""

    daemon_threads = True
    # The listen backlog: socketserver's 5 reset connections in bursts of a few clients (the
    # kernel caps it at net.core.somaxconn, 4096 on current Linux).
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = False
        self._in_flight = 0
        self._idle = threading.Condition()

    @contextmanager
    def answering(self) -> Iterator[None]:
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def drain(self, deadline: float) -> bool:
        """After `shutdown`: refuse new requests on open connections, wait for those being answered
        until `deadline` (time.monotonic()). True if none is left."""
        self.stopping = True
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, max(0.0, deadline - time.monotonic()))


# What `GET /healthz` reports: each background loop and whether it is running ("ok") or why not.
Health = Callable[[], dict[str, str]]
HEALTH_PATH = "/healthz"


def http_server(
    host: str,
    port: int,
    api: HandlerPool,
    settings: ApiSettings,
    timeout: float = IDLE_TIMEOUT_SECONDS,
    health: Health | None = None,
) -> FrontDoor:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    return FrontDoor((host, port), request_handler(api, settings, timeout, health, Inbox(settings)))


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def request_handler(
    api: HandlerPool,
    settings: ApiSettings,
    idle_timeout: float,
    health: Health | None = None,
    inbox: Inbox | None = None,
) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one front door (the standard library makes one per connection)."""
    attributes = {
        "api": api,
        "limit": settings.max_request_bytes,
        "origins": frozenset(settings.allowed_origins),
        "writers": threading.BoundedSemaphore(WRITE_CONCURRENCY),
        "health": health,
        "inbox": inbox,
        "timeout": idle_timeout,
    }
    return type("Handler", (ApiRequestHandler,), attributes)


def _result_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The reply headers of an API Gateway proxy result."""
    multi = result.get("multiValueHeaders") or {}  # as API Gateway: these win over `headers`
    listed = {name.lower() for name in multi}
    headers = [(k, v) for k, v in (result.get("headers") or {}).items() if k.lower() not in listed]
    headers += [(name, v) for name, values in multi.items() for v in values]
    return headers


def _result_payload(result: dict[str, Any]) -> bytes:
    raw = result.get("body") or ""
    return base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()


class ApiRequestHandler(BaseHTTPRequestHandler):
    """One connection of the front door: each request on it becomes an API Gateway event for the
    api handler. What it answers with is set per server by `request_handler`."""

    api: HandlerPool
    limit: int  # MAILSAGE_MAX_REQUEST_BYTES
    origins: frozenset[str]  # MAILSAGE_ALLOWED_ORIGINS, answered at preflight
    writers: threading.BoundedSemaphore  # the slots of requests that write (WRITE_CONCURRENCY)
    health: Health | None = None
    inbox: Inbox | None = None  # the local inbox page (/inbox), outside the API and its key
    _status = 0  # the reply's status, for the request line

    protocol_version = "HTTP/1.1"
    server_version = "MailSage-local"
    # Headers and body leave in two writes; with Nagle's algorithm the second waited for the
    # client's delayed ACK, 40 ms on every reply.
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_SECONDS  # every read and write of the connection (idle keep-alive too)
    raw_requestline: bytes

    def handle_one_request(self) -> None:
        # Not the previous request's, if this request line cannot be parsed.
        self.path, self.command, self.request_version = "", "", self.protocol_version
        self.requestline = ""
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away

    def parse_request(self) -> bool:
        if len(self.raw_requestline.split()) == 2:  # the standard library would wait for headers
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        if not super().parse_request():
            return False
        size = sum(len(name) + len(value) + 4 for name, value in self.headers.items())
        if size > MAX_HEADER_BYTES:
            self.send_error(431, f"the request headers are {size} bytes; the limit is {MAX_HEADER_BYTES}")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's refusals, in the JSON envelope instead of an HTML page."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # the standard library's default
            self.request_version = self.protocol_version  # so that a status line is written
        text = message or self.responses.get(code, ("error",))[0]
        self._error(code, _HTTP_ERRORS.get(code, "bad_request"), text[:200])

    def _handle(self) -> None:
        server = self.server
        assert isinstance(server, FrontDoor)
        if server.stopping:  # a request on a connection kept open across the stop
            self.close_connection = True
            message = "the server is stopping; try again shortly"
            self._error(503, "service_unavailable", message, (("Retry-After", "5"),))
            return
        started, self._status = time.monotonic(), 0
        with server.answering():
            self._answer()
        elapsed_ms = (time.monotonic() - started) * 1000
        requests_log.info(
            "%s %s %s %.0f ms", self.command, urlsplit(self.path).path, self._status, elapsed_ms
        )

    def _answer(self) -> None:
        try:
            body = self._read_body()
        except _Refused as refused:
            self.close_connection = True
            self._error(refused.status, _HTTP_ERRORS[refused.status], refused.message)
            return
        if body is None:
            self.close_connection = True  # the client closed before sending the whole body
            return
        if self.command == "OPTIONS" and self.headers.get("Origin") in self.origins:
            self._preflight()
            return
        if self.health is not None and self.command == "GET" and urlsplit(self.path).path == HEALTH_PATH:
            self._health(self.health())
            return
        if self.inbox is not None and is_inbox_path(self.path):
            headers = dict(self.headers.items())
            page = self.inbox.answer(self.command, self.path, headers, body, self.client_address[0])
            self._reply(page.status, page.headers, page.body)
            return
        self._call_api(body)

    def _call_api(self, body: bytes) -> None:
        """The request as an API Gateway event to the api handler; its result as the reply."""
        event = api_gateway_event(
            self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
        )
        try:
            slot = contextlib.nullcontext() if self.command in READ_METHODS else self.writers
            with slot, self.api.acquire() as handler:
                result = handler.lambda_handler(event, LocalContext("mailsage-api"))
        except Exception:
            log.exception("the api handler failed")
            self._error(500, "internal_error", "an unexpected error occurred; it has been logged")
            return
        self._reply(int(result["statusCode"]), _result_headers(result), _result_payload(result))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _handle

    def _read_body(self) -> bytes | None:
        """The body, or None if the client stopped sending it; never more than the limit."""
        if "Transfer-Encoding" in self.headers:
            raise _Refused(411, "Transfer-Encoding is not supported; send the body with a Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return b""
        if len(values) > 1 or not _LENGTH.fullmatch(next(iter(values))):
            raise _Refused(400, "Content-Length must be one non-negative decimal number")
        length = int(values.pop())
        if length > self.limit:
            raise _Refused(413, f"the request body is {length} bytes; the limit is {self.limit}")
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _preflight(self) -> None:
        self._reply(
            204,
            [
                ("Access-Control-Allow-Origin", self.headers["Origin"]),
                ("Access-Control-Allow-Methods", ", ".join(sorted(METHODS))),
                ("Access-Control-Allow-Headers", CORS_HEADERS),
                ("Access-Control-Max-Age", str(CORS_MAX_AGE_SECONDS)),
                ("Vary", "Origin"),
            ],
            b"",
        )

    def _health(self, loops: dict[str, str]) -> None:
        """200 when every loop runs; 503 when one is dead or failing (mail may be waiting)."""
        healthy = all(state == "ok" for state in loops.values())
        body = {"status": "ok" if healthy else "unhealthy", "loops": loops}
        self._reply(200 if healthy else 503, [("Cache-Control", "no-store")], json.dumps(body).encode())

    def _error(self, status: int, code: str, message: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        reply = error_reply(urlsplit(self.path).path, status, code, message)
        headers = [(k, v) for k, v in reply.headers.items() if isinstance(v, str)] + list(extra)
        self._reply(reply.status_code, headers, json.dumps(reply.body).encode())

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "connection")]
        unsafe = [k for k, v in kept if _UNSAFE.search(k) or _UNSAFE.search(str(v))]
        if unsafe:
            # Written as is, CR/LF would let a value start headers (or a body) of its own.
            log.error("refused to write the reply headers %s: they hold CR, LF or NUL", unsafe)
            self.close_connection = True
            self._error(500, "internal_error", "the reply could not be written; it has been logged")
            return
        self._status = status
        self.send_response(status)
        for key, value in kept:
            self.send_header(key, str(value))
        if payload and not any(k.lower() == "content-type" for k, _ in kept):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)
