"""The webhooks function's work: post one event to one endpoint, signed, and keep trying.

Signing is AhaSend's variant of Standard Webhooks (specs/ahasend/webhooks.yaml): the headers
`webhook-id` (the delivery id, the same for every attempt and replay, so receivers can dedupe),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature` = "v1," +
base64(HMAC-SHA256(key = the literal UTF-8 bytes of the webhook's secret, "{id}.{timestamp}.{body}")).

Only 2xx counts as delivered; redirects are not followed (a 3xx is a failure). Every attempt is
appended to the delivery's log entry and counted on the webhook, which is disabled after
`disable_after` failures in a row. A failed attempt is retried through the queue itself: the record
is made visible again after an exponential delay and reported as a batch item failure, until
`max_attempts` receives. A replay (the API's "send it again") is one more attempt, not retried.

The connection goes only to an address that `resolve_public` returned for the URL's host at this
attempt (no second lookup that a rebinding name could answer differently); HTTPS still verifies the
certificate against the host name and sends it as SNI.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mailsage.domain.models import Webhook, WebhookDelivery, WebhookDeliveryStatus
from mailsage.domain.urls import BlockedAddress, resolve_public
from mailsage.ports import Queue, Store

log = logging.getLogger(__name__)

USER_AGENT = "MailSage-Webhooks/1"


class RetryDelivery(Exception):
    """Raised after `queue.retry_later`: the handler reports the record as a batch item failure so
    the queue delivers it again after the delay."""


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value for one attempt."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@dataclass(slots=True, frozen=True)
class WebhookPolicy:
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    retry_base_seconds: float = 30.0
    retry_factor: float = 4.0
    retry_max_seconds: float = 6 * 3600.0
    disable_after: int = 100
    log_days: int = 30

    def retry_delay(self, attempt: int) -> float:
        """How long to wait after failed attempt number `attempt` (1-based): base * factor^(attempt-1),
        capped (defaults: 30 s, 2 min, 8 min, 32 min, 2 h 8 min, 6 h, 6 h)."""
        exponent = max(0, attempt - 1)
        try:
            delay = self.retry_base_seconds * self.retry_factor**exponent
        except OverflowError:
            delay = self.retry_max_seconds
        return float(min(self.retry_max_seconds, delay))


@dataclass(slots=True, frozen=True)
class Outcome:
    """What one POST came to: a status code, or an error before any status arrived."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    def __init__(
        self,
        store: Store,
        queue: Queue,
        policy: WebhookPolicy,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.queue = queue
        self.policy = policy
        self.allow_private = allow_private
        self.clock = clock

    def dispatch(self, body: Mapping[str, Any], receipt: str, receive_count: int) -> str:
        """Deliver one queued event (an EventPublisher body). Returns the delivery's status
        (succeeded, failed); raises RetryDelivery when it will come back after a delay."""
        delivery_id = str(body["delivery_id"])
        account_id = str(body["account_id"])
        webhook_id = str(body["webhook_id"])
        replay = bool(body.get("replay", False))
        now = self.clock()
        delivery = self.store.get_webhook_delivery(account_id, webhook_id, delivery_id)
        if delivery is None:
            delivery = WebhookDelivery(
                id=delivery_id,
                account_id=account_id,
                webhook_id=webhook_id,
                event_type=str(body["event_type"]),
                payload=str(body["payload"]),
                created_at=float(body.get("created_at") or now),
                updated_at=now,
            )
        elif not replay and delivery.status in ("succeeded", "failed"):
            # The queue delivered a record again whose outcome is already final (at least once).
            log.info("webhook delivery %s already %s; not sent again", delivery_id, delivery.status)
            return delivery.status

        webhook = self.store.get_webhook(account_id, webhook_id)
        if webhook is None or not webhook.enabled:
            reason = "webhook deleted" if webhook is None else "webhook disabled"
            self._log_attempt(delivery, Outcome(None, reason, 0), now, replay)
            self._finish(delivery, WebhookDeliveryStatus.FAILED, now)
            log.info("webhook delivery %s dropped: %s", delivery_id, reason)
            return "failed"

        outcome = self.post(webhook, delivery, int(now))
        self._log_attempt(delivery, outcome, now, replay)
        counted = self.store.record_webhook_attempt(
            account_id, webhook_id, outcome.ok, now, self.policy.disable_after
        )
        log.info(
            "webhook delivery %s attempt %d to %s: %s",
            delivery_id,
            len(delivery.attempts),
            webhook_id,
            outcome.status_code if outcome.status_code is not None else outcome.error,
        )
        if outcome.ok:
            self._finish(delivery, WebhookDeliveryStatus.SUCCEEDED, now)
            return "succeeded"
        last = (
            replay
            or receive_count >= self.policy.max_attempts
            or counted is None  # deleted meanwhile
            or not counted.enabled  # this failure disabled it
        )
        if last:
            self._finish(delivery, WebhookDeliveryStatus.FAILED, now)
            return "failed"
        delay = self.policy.retry_delay(receive_count)
        delivery.status = WebhookDeliveryStatus.RETRYING
        delivery.next_attempt_at = now + delay
        self._save(delivery, now)
        self.queue.retry_later(receipt, delay)
        raise RetryDelivery(f"webhook delivery {delivery_id} retries in {delay:.0f} s")

    # -- the log -----------------------------------------------------------------------------
    def _log_attempt(self, delivery: WebhookDelivery, outcome: Outcome, at: float, replay: bool) -> None:
        delivery.attempts.append(
            {
                "time": at,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "duration_ms": outcome.duration_ms,
                "replay": replay,
            }
        )

    def _finish(self, delivery: WebhookDelivery, status: WebhookDeliveryStatus, now: float) -> None:
        delivery.status = status
        delivery.next_attempt_at = None
        self._save(delivery, now)

    def _save(self, delivery: WebhookDelivery, now: float) -> None:
        delivery.updated_at = now
        delivery.expires_at = now + self.policy.log_days * 86_400
        self.store.put_webhook_delivery(delivery)

    # -- HTTP --------------------------------------------------------------------------------
    def post(self, webhook: Webhook, delivery: WebhookDelivery, timestamp: int) -> Outcome:
        """One signed POST of the delivery's payload to the webhook's URL."""
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(webhook.secret, delivery.id, timestamp, delivery.payload),
            "user-agent": USER_AGENT,
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = post_pinned(
                webhook.url,
                headers,
                delivery.payload.encode("utf-8"),
                self.policy.timeout_seconds,
                self.allow_private,
            )
            if 300 <= status < 400:
                error = "redirects are not followed"
            elif not 200 <= status < 300:
                error = f"the endpoint answered HTTP {status}"
        except BlockedAddress as exc:
            error = exc.message
        except TimeoutError:
            error = f"no answer within {self.policy.timeout_seconds:g} s"
        except socket.gaierror as exc:
            error = f"cannot resolve the host: {exc.strerror or exc}"
        except ssl.SSLError as exc:
            error = f"TLS failed: {exc.reason or exc}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Outcome(status, error, int((time.monotonic() - started) * 1000))


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
    addresses = resolve_public(host, port, allow_private)

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
