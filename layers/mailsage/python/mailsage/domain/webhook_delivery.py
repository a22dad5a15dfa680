"""The webhooks function's work: post one event to one endpoint, signed, and keep trying.

Signing follows Standard Webhooks: the headers `webhook-id` (the delivery id, the same for every
attempt and replay, so receivers can dedupe), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature` = "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")). The key depends
on the webhook's `signing`: STANDARD (made on v1) is the base64-decoded part of its "whsec_..."
secret, so the official `standardwebhooks` libraries verify it as documented; LITERAL (made on v2,
and every webhook stored before the scheme was) is the secret's literal UTF-8 bytes, as AhaSend
signs (specs/ahasend/webhooks.yaml).

Only 2xx counts as delivered; redirects are not followed (a 3xx is a failure). Every attempt is
appended to the delivery's log entry and counted on the webhook, which is disabled after
`disable_after` failures in a row. A failed attempt is retried through the queue itself: the record
is made visible again after an exponential delay and reported as a batch item failure, until
`max_attempts` receives. A replay (the API's "send it again") is one more attempt, not retried;
when it fails while automatic retries are still ahead, those go on as scheduled. A test event (a
sample the API's "send test event" queued, `"test": true` in its body and payload) is one attempt,
not retried, and not counted on the webhook or in the failure metric.

The POST itself goes through a `WebhookClient` (ports/webhooks.py; adapters/webhook_http.py), which
connects only to addresses the deployment allows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.models import (
    WEBHOOK_SECRET_PREFIX,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookSigning,
)
from mailsage.ports import Meter, NoMeter, Queue, WebhookClient, WebhookStores

log = logging.getLogger(__name__)

USER_AGENT = "MailSage-Webhooks/1"


class RetryDelivery(Exception):
    """Raised after `queue.retry_later`: the handler reports the record as a batch item failure so
    the queue delivers it again after the delay."""


SECRET_PREFIX = WEBHOOK_SECRET_PREFIX


def signing_key(secret: str, signing: WebhookSigning = WebhookSigning.LITERAL) -> bytes:
    """The HMAC key a webhook's secret stands for under its signing scheme."""
    if signing is WebhookSigning.STANDARD:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    return secret.encode("utf-8")


def sign(
    secret: str, msg_id: str, timestamp: int, body: str, signing: WebhookSigning = WebhookSigning.LITERAL
) -> str:
    """The `webhook-signature` header value for one attempt."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret, signing), content, hashlib.sha256).digest()
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
        store: WebhookStores,
        queue: Queue,
        policy: WebhookPolicy,
        client: WebhookClient,
        clock: Clock = system_clock,
        meter: Meter | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.policy = policy
        self.client = client
        self.clock = clock
        self.meter = meter or NoMeter()

    def dispatch(self, body: Mapping[str, Any], receipt: str, receive_count: int) -> WebhookDeliveryStatus:
        """Deliver one queued event (an EventPublisher body). Returns the delivery's status
        (succeeded, failed); raises RetryDelivery when it will come back after a delay."""
        replay = bool(body.get("replay", False))
        test = bool(body.get("test", False))  # a sample sent on request: one attempt, not counted
        now = self.clock()
        delivery = self._delivery(body, now)
        if not replay and delivery.status in (WebhookDeliveryStatus.SUCCEEDED, WebhookDeliveryStatus.FAILED):
            # The queue delivered a record again whose outcome is already final (at least once).
            log.info("webhook delivery %s already %s; not sent again", delivery.id, delivery.status)
            return delivery.status

        webhook = self.store.get_webhook(delivery.account_id, delivery.webhook_id)
        if webhook is None or not webhook.enabled:
            reason = "webhook deleted" if webhook is None else "webhook disabled"
            self._log_attempt(delivery, Outcome(None, reason, 0), now, replay)
            self._finish(delivery, WebhookDeliveryStatus.FAILED, now)
            log.info("webhook delivery %s dropped: %s", delivery.id, reason)
            return WebhookDeliveryStatus.FAILED

        outcome = self.post(webhook, delivery, int(now))
        self._log_attempt(delivery, outcome, now, replay)
        counted = self._count(webhook, outcome.ok, now, test)
        log.info(
            "webhook delivery %s attempt %d to %s: %s",
            delivery.id,
            len(delivery.attempts),
            delivery.webhook_id,
            outcome.status_code if outcome.status_code is not None else outcome.error,
        )
        if outcome.ok:
            self._finish(delivery, WebhookDeliveryStatus.SUCCEEDED, now)
            return WebhookDeliveryStatus.SUCCEEDED
        if not test:
            self.meter.count("WebhookDeliveriesFailed")  # an attempt, whether or not it is retried
        gone = counted is None or not counted.enabled  # deleted meanwhile, or this failure disabled it
        if replay and delivery.status is WebhookDeliveryStatus.RETRYING and not gone:
            # A replay is one extra attempt: the automatic retries still ahead keep their schedule.
            self._save(delivery, now)
            return WebhookDeliveryStatus.RETRYING
        if replay or test or receive_count >= self.policy.max_attempts or gone:
            self._finish(delivery, WebhookDeliveryStatus.FAILED, now)
            return WebhookDeliveryStatus.FAILED
        self._retry(delivery, receipt, receive_count, now)

    def _count(self, webhook: Webhook, ok: bool, now: float, test: bool) -> Webhook | None:
        """The webhook after this attempt is counted on it (None: deleted meanwhile). A test event
        is not counted: it neither changes the statistics nor disables the webhook."""
        if test:
            return webhook
        return self.store.record_webhook_attempt(
            webhook.account_id, webhook.id, ok, now, self.policy.disable_after
        )

    def _delivery(self, body: Mapping[str, Any], now: float) -> WebhookDelivery:
        """The delivery's log entry: the stored one (a retry, a replay), or a new one (pending)."""
        account_id, webhook_id = str(body["account_id"]), str(body["webhook_id"])
        delivery = self.store.get_webhook_delivery(account_id, webhook_id, str(body["delivery_id"]))
        if delivery is not None:
            return delivery
        return WebhookDelivery(
            id=str(body["delivery_id"]),
            account_id=account_id,
            webhook_id=webhook_id,
            event_type=str(body["event_type"]),
            payload=str(body["payload"]),
            created_at=float(body.get("created_at") or now),
            updated_at=now,
        )

    def _retry(self, delivery: WebhookDelivery, receipt: str, receive_count: int, now: float) -> NoReturn:
        delay = self.policy.retry_delay(receive_count)
        delivery.status = WebhookDeliveryStatus.RETRYING
        delivery.next_attempt_at = now + delay
        self._save(delivery, now)
        self.queue.retry_later(receipt, delay)
        raise RetryDelivery(f"webhook delivery {delivery.id} retries in {delay:.0f} s")

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
            "webhook-signature": sign(
                webhook.secret, delivery.id, timestamp, delivery.payload, webhook.signing
            ),
            "user-agent": USER_AGENT,
        }
        response = self.client.post(
            webhook.url, headers, delivery.payload.encode("utf-8"), self.policy.timeout_seconds
        )
        status, error = response.status_code, response.error
        if status is not None and error is None:
            if 300 <= status < 400:
                error = "redirects are not followed"
            elif not 200 <= status < 300:
                error = f"the endpoint answered HTTP {status}"
        return Outcome(status, error, response.duration_ms)
