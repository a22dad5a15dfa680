"""The webhook dispatcher through its ports: a fake WebhookClient (no network) and a ManualClock, on
the real SQLite store and webhook queue. What an answer means (2xx, redirect, error) and when the
next attempt is due are the domain's; the client only reports what happened."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from mailsage.domain.clock import ManualClock
from mailsage.domain.events import delivery_body, message_event
from mailsage.domain.models import Webhook, WebhookDeliveryStatus
from mailsage.domain.webhook_delivery import RetryDelivery, WebhookDispatcher, WebhookPolicy, sign
from mailsage.ports import Queue, WebhookResponse
from mailsage.wiring import Backends

POLICY = WebhookPolicy(timeout_seconds=3.0, max_attempts=3, retry_base_seconds=30.0, retry_factor=4.0)


@dataclass
class FakeClient:
    """Answers every POST with the next of `answers`; remembers what it was asked to send."""

    answers: list[WebhookResponse]
    posts: list[tuple[str, dict[str, str], bytes, float]] = field(default_factory=list)

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> WebhookResponse:
        self.posts.append((url, dict(headers), body, timeout))
        return self.answers.pop(0)


@pytest.fixture
def webhook(stores: Backends) -> Webhook:
    now = time.time()
    hook = Webhook(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        "n",
        "https://hooks.example.test/in",
        "whsec_k",
        True,
        ["message.delivered"],
        now,
        now,
    )
    stores.store.put_webhook(hook)
    return hook


def queued(webhook: Webhook, queue: Queue) -> tuple[dict[str, object], str]:
    event = message_event(
        "message.delivered",
        account_id=webhook.account_id,
        message_id="msg_1",
        recipient="u@example.com",
        from_addr="a@example.com",
        subject="s",
        message_id_domain="mailsage.local",
        occurred_at=1.0,
    )
    body = delivery_body(webhook, event)
    queue.send([body])
    [received] = queue.receive(max_messages=1)
    return received.body, received.receipt


def test_the_post_is_signed_at_the_clocks_time_and_a_2xx_succeeds(stores: Backends, webhook: Webhook) -> None:
    # Given a client that answers 204 and a clock at a known time
    assert stores.webhooks is not None
    client, clock = FakeClient([WebhookResponse(204, None, 5)]), ManualClock(1_800_000_000.0)
    body, receipt = queued(webhook, stores.webhooks)
    # When the delivery is dispatched
    status = WebhookDispatcher(stores.store, stores.webhooks, POLICY, client, clock).dispatch(
        body, receipt, 1
    )
    # Then it succeeded, posted to the webhook's URL, signed with the clock's time
    assert status == WebhookDeliveryStatus.SUCCEEDED
    [(url, headers, sent, timeout)] = client.posts
    assert (url, timeout) == (webhook.url, POLICY.timeout_seconds)
    assert headers["webhook-timestamp"] == "1800000000"
    assert headers["webhook-signature"] == sign(
        "whsec_k", str(body["delivery_id"]), 1_800_000_000, sent.decode()
    )


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (WebhookResponse(302, None, 3), "redirects are not followed"),
        (WebhookResponse(500, None, 3), "the endpoint answered HTTP 500"),
        (WebhookResponse(None, "cannot resolve the host: nope", 1), "cannot resolve the host: nope"),
    ],
)
def test_a_failed_attempt_is_logged_and_retried_after_the_policys_delay(
    stores: Backends, webhook: Webhook, answer: WebhookResponse, error: str
) -> None:
    # Given a client whose answer is not a 2xx
    assert stores.webhooks is not None
    clock = ManualClock(1_800_000_000.0)
    dispatcher = WebhookDispatcher(stores.store, stores.webhooks, POLICY, FakeClient([answer]), clock)
    body, receipt = queued(webhook, stores.webhooks)
    # When it is dispatched on its first receive
    with pytest.raises(RetryDelivery):
        dispatcher.dispatch(body, receipt, 1)
    # Then the attempt is logged with the domain's reading of the answer, due again in 30 s
    delivery = stores.store.get_webhook_delivery(webhook.account_id, webhook.id, str(body["delivery_id"]))
    assert delivery is not None
    assert delivery.status == WebhookDeliveryStatus.RETRYING
    assert delivery.next_attempt_at == clock.now + 30.0
    [attempt] = delivery.attempts
    assert (attempt["status_code"], attempt["error"]) == (answer.status_code, error)
