"""A webhook endpoint for tests: an HTTP server on 127.0.0.1 that records every request, answers
with the status codes it is told to (optionally after a delay), and verifies each request's
signature on its own, from the contract's text (specs/ahasend/webhooks.yaml, Standard Webhooks):
the HMAC-SHA256 key is the literal UTF-8 bytes of the whole secret, the signed content is
`webhook-id.webhook-timestamp.raw body`, the header carries space-separated `v1,<base64>` entries,
and a timestamp more than five minutes from now is refused.

Deliberately does not import MailSage's signing code: it checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 5 * 60


class SignatureRejected(Exception):
    pass


def verify_signature(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureRejected unless the request is signed with `secret` (headers: lower-case)."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"]
    except KeyError as exc:
        raise SignatureRejected(f"missing header {exc.args[0]}") from None
    if not timestamp.isdigit():
        raise SignatureRejected(f"malformed webhook-timestamp {timestamp!r}")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureRejected(f"webhook-timestamp {timestamp} is more than {tolerance:g} s from now")
    mac = hmac.new(bytes(secret, "utf-8"), digestmod=hashlib.sha256)
    mac.update(msg_id.encode())
    mac.update(b".")
    mac.update(timestamp.encode())
    mac.update(b".")
    mac.update(body)
    expected = base64.b64encode(mac.digest())
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise SignatureRejected("no v1 signature matches")


@dataclass
class Reply:
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float
    verified: bool
    rejection: str | None  # why the signature was refused


class WebhookReceiver:
    """`receiver.url` to register; `receiver.respond(500, 200)` to script the next answers (then 200);
    `receiver.requests` for what arrived. A request whose signature does not verify is answered 401
    (when a secret is set), as a real receiver would."""

    def __init__(self, secret: str | None = None, path: str = "/hooks") -> None:
        self.secret = secret
        self.path = path
        self.requests: list[Request] = []
        self._replies: list[Reply] = []
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def respond(self, *replies: int | Reply) -> None:
        with self._lock:
            self._replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(self.requests)} webhook requests arrived, expected {count}")
                self._lock.wait(remaining)
            return list(self.requests)

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.pop(0) if self._replies else Reply()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                rejection: str | None = None
                if receiver.secret is not None:
                    try:
                        verify_signature(receiver.secret, headers, body)
                    except SignatureRejected as exc:
                        rejection = str(exc)
                reply = receiver._next_reply()
                receiver._record(
                    Request("POST", self.path, headers, body, time.time(), rejection is None, rejection)
                )
                if reply.delay:
                    time.sleep(reply.delay)
                status = 401 if rejection is not None else reply.status
                payload = b"{}"
                try:
                    self.send_response(status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

            do_GET = do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
