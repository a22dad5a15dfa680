"""Feedback on the embedded runtime: every status change becomes an event for the webhooks,
hard bounces, complaints and unsubscribes suppress the address, and the built-in sink provokes each
outcome (550, 451, complaint, delivery) through the real sender, events and api handlers."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mailsage.domain.models import EVENT_TYPES, Webhook
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from mailsage.local.sink import SmtpSink
from mailsage.ports import Received
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Worker, free_port, read_eml


class Feedback:
    """The sink's notifications, fed to the real events function like the local runtime does."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.handler = load_handler("events")

    def notify(self, notification: dict[str, Any]) -> None:
        self.notifications.append(notification)

    def apply(self, notifications: list[dict[str, Any]] | None = None) -> None:
        batch = self.notifications if notifications is None else notifications
        received = [Received(f"r{i}", n, 1, str(uuid.uuid4())) for i, n in enumerate(batch)]
        if notifications is None:
            self.notifications = []
        if received:
            result = self.handler.lambda_handler(sqs_event(received), LocalContext("mailsage-events"))
            assert result == {"batchItemFailures": []}


@pytest.fixture
def feedback() -> Feedback:
    return Feedback()


@pytest.fixture
def smtp_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feedback: Feedback) -> Iterator[SmtpSink]:
    """The built-in sink with its delivery notifications (overrides the plain one of conftest)."""
    port = free_port()
    sink = SmtpSink(tmp_path / "outbox", port, notify=feedback.notify)
    sink.start()
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{port}")
    yield sink
    sink.stop()


@pytest.fixture(autouse=True)
def _tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", "https://mail.example.test")
    monkeypatch.setenv("MAILSAGE_WEBHOOK_CACHE_SECONDS", "0")


@pytest.fixture
def hook(stores: Backends, account: Account) -> Webhook:
    """An endpoint of the account subscribed to every event."""
    now = time.time()
    webhook = Webhook(
        id=str(uuid.uuid4()),
        account_id=account.id,
        name="all",
        url="https://hooks.example.test/in",
        secret="whsec_test",
        enabled=True,
        events=sorted(EVENT_TYPES),
        created_at=now,
        updated_at=now,
    )
    stores.store.put_webhook(webhook)
    return webhook


def published(stores: Backends) -> list[dict[str, Any]]:
    """Every payload enqueued for the webhooks so far (and take them off the queue)."""
    assert stores.webhooks is not None
    payloads = []
    while batch := stores.webhooks.receive(max_messages=10):
        for received in batch:
            payloads.append(json.loads(received.body["payload"]))
            stores.webhooks.ack(received.receipt)
    return payloads


def types_for(payloads: list[dict[str, Any]], recipient: str) -> list[str]:
    return [p["type"] for p in payloads if p["data"].get("recipient") == recipient]


def batch(api: ApiClient, emails: list[str], **extra: Any) -> dict[str, Any]:
    reply = api.post(
        "/api/v1/emails/batch",
        {
            "recipients": [{"email": e, "variables": {"n": i}} for i, e in enumerate(emails)],
            "subject": "Hello {{ n }}",
            "html": '<html><body><p>Hi <a href="https://example.com/a?x=1&amp;y=2">A</a></p></body></html>',
            "from": "News <news@acme-mail.com>",
            **extra,
        },
    )
    assert reply.status == 202, reply.body
    return reply.body


def message_of(stores: Backends, account: Account, job_id: str, email: str) -> Any:
    job = stores.store.get_job(account.id, job_id)
    assert job is not None
    for chunk in (-1, *range(job.chunks)):
        for m in stores.store.chunk_messages(job_id, chunk):
            if m.email == email:
                return m
    raise AssertionError(f"no message for {email}")


def test_each_sink_outcome_emits_its_event_and_status(
    api: ApiClient, worker: Worker, feedback: Feedback, stores: Backends, account: Account, hook: Webhook
) -> None:
    emails = ["ok@example.com", "bounce-1@example.com", "defer-1@example.com", "complain-1@example.com"]
    job = batch(api, emails)
    worker.drain()
    feedback.apply()
    payloads = published(stores)

    statuses = {e: message_of(stores, account, job["job_id"], e).status.value for e in emails}
    assert statuses == {
        "ok@example.com": "delivered",
        "bounce-1@example.com": "bounced",
        "defer-1@example.com": "failed",  # 451 on every one of the 3 attempts
        "complain-1@example.com": "complained",
    }
    assert types_for(payloads, "ok@example.com") == ["message.reception", "message.delivered"]
    assert types_for(payloads, "bounce-1@example.com") == [
        "message.reception",
        "message.bounced",
        "suppression.created",
    ]
    # Soft failures are retried and each one counted, then the message fails.
    assert types_for(payloads, "defer-1@example.com") == [
        "message.reception",
        "message.transient_error",
        "message.transient_error",
        "message.failed",
    ]
    assert message_of(stores, account, job["job_id"], "defer-1@example.com").attempts == 3
    assert types_for(payloads, "complain-1@example.com") == [
        "message.reception",
        "message.delivered",
        "suppression.created",
    ]
    assert [p["type"] for p in payloads if p["type"].startswith("job.")] == ["job.completed"]

    # Payloads as the contract shapes them, addressed to this endpoint.
    delivered = next(p for p in payloads if p["type"] == "message.delivered")
    assert delivered["webhook_id"] == hook.id
    assert delivered["data"]["event"] == "on_delivered"
    assert delivered["data"]["from"] == "news@acme-mail.com"
    assert delivered["data"]["subject"] == "Hello 0"
    message_id = message_of(stores, account, job["job_id"], "ok@example.com").id
    assert delivered["data"]["id"] == message_id
    assert delivered["data"]["message_id_header"] == f"<{message_id}@acme-mail.com>"  # the sender's domain

    # Hard bounce and complaint suppressed the address for the account; the others are not.
    now = time.time()
    assert stores.store.suppressed(account.id, emails, "acme-mail.com", now) == {
        "bounce-1@example.com",
        "complain-1@example.com",
    }
    created = [p["data"] for p in payloads if p["type"] == "suppression.created"]
    assert {c["recipient"] for c in created} == {"bounce-1@example.com", "complain-1@example.com"}
    assert all(c["sending_domain"] == "acme-mail.com" for c in created)
    bounce_reason = next(c["reason"] for c in created if c["recipient"].startswith("bounce"))
    assert bounce_reason.startswith("hard bounce") and "550" in bounce_reason


def test_a_second_batch_skips_bounced_addresses_with_status_suppressed(
    api: ApiClient, worker: Worker, feedback: Feedback, stores: Backends, account: Account, hook: Webhook
) -> None:
    batch(api, ["bounce-2@example.com", "ok@example.com"])
    worker.drain()
    feedback.apply()
    published(stores)
    second = batch(api, ["bounce-2@example.com", "ok@example.com"])
    worker.drain()
    feedback.apply()
    assert message_of(stores, account, second["job_id"], "bounce-2@example.com").status.value == "suppressed"
    assert message_of(stores, account, second["job_id"], "ok@example.com").status.value == "delivered"
    assert types_for(published(stores), "bounce-2@example.com") == ["message.reception", "message.suppressed"]


def test_duplicate_and_out_of_order_notifications_move_nothing_and_emit_nothing(
    api: ApiClient, worker: Worker, feedback: Feedback, stores: Backends, account: Account, hook: Webhook
) -> None:
    job = batch(api, ["ok@example.com", "complain-2@example.com"])
    worker.drain()
    notifications = list(feedback.notifications)
    feedback.apply()
    first = published(stores)
    # The same notifications again (SNS and SQS deliver at least once), and in reverse order.
    feedback.apply(notifications)
    feedback.apply(list(reversed(notifications)))
    assert published(stores) == []
    assert message_of(stores, account, job["job_id"], "complain-2@example.com").status.value == "complained"
    assert types_for(first, "complain-2@example.com").count("suppression.created") == 1
    counts = stores.store.get_job(account.id, job["job_id"]).counts  # type: ignore[union-attr]
    assert counts == {"delivered": 1, "complained": 1}


def links_in(eml: Path) -> tuple[str, str, str | None]:
    """(open pixel URL, first tracked link URL, List-Unsubscribe URL) of a received message."""
    message = read_eml(eml)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html)
    link = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
    assert pixel and link, html
    unsubscribe = message.get("List-Unsubscribe")
    return pixel.group(1), link.group(1), unsubscribe.strip("<>") if unsubscribe else None


def test_opens_and_clicks_are_counted_every_time_and_once_for_the_status(
    api: ApiClient,
    worker: Worker,
    smtp_sink: SmtpSink,
    stores: Backends,
    account: Account,
    hook: Webhook,
) -> None:
    # No delivery notification applied: the open itself proves the delivery.
    job = batch(api, ["reader@example.com"], tracking={"open": True, "click": True})
    worker.drain()
    [eml] = smtp_sink.messages()
    pixel, link, _ = links_in(eml)
    assert pixel.startswith("https://mail.example.test/t/o/")
    published(stores)

    for _ in range(2):
        reply = api.get(urlsplit(pixel).path, headers={"User-Agent": "Mail/1.0"}, key=None)
        assert reply.status == 200
    reply = api.get(urlsplit(link).path, headers={"User-Agent": "Mail/1.0"}, key=None)
    assert reply.status == 302
    assert reply.headers["location"] == "https://example.com/a?x=1&y=2"  # unescaped, as written

    message = message_of(stores, account, job["job_id"], "reader@example.com")
    assert message.status.value == "delivered"
    assert [e["status"] for e in message.events].count("opened") == 2
    payloads = published(stores)
    assert types_for(payloads, "reader@example.com") == [
        "message.delivered",
        "message.opened",
        "message.opened",
        "message.clicked",
    ]
    clicked = payloads[-1]["data"]
    assert clicked["url"] == "https://example.com/a?x=1&y=2"
    assert clicked["user_agent"] == "Mail/1.0" and clicked["is_bot"] is False

    v2 = api.get(f"/v2/accounts/{account.id}/messages/{message.id}")
    assert (v2.body["open_count"], v2.body["click_count"]) == (2, 1)


def test_forged_or_altered_tracking_links_are_404(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    batch(api, ["reader@example.com"], tracking={"open": True, "click": True})
    worker.drain()
    pixel, link, unsubscribe = links_in(smtp_sink.messages()[0])
    path = urlsplit(link).path
    token = path.rsplit("/", 1)[1]
    forged = path[: -len(token)] + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert api.get(forged, key=None).status == 404
    assert api.get("/t/o/not-a-token", key=None).status == 404
    # A click token is not an open token, and neither unsubscribes.
    assert api.get("/t/o/" + token, key=None).status == 404
    assert api.post("/u/" + token, key=None).status == 404


def test_bulk_mail_carries_one_click_unsubscribe_that_suppresses_the_address(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends, account: Account, hook: Webhook
) -> None:
    job = batch(api, ["leaver@example.com"], tracking={"open": True, "click": True})
    worker.drain()
    message = read_eml(smtp_sink.messages()[0])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    _, _, unsubscribe = links_in(smtp_sink.messages()[0])
    assert unsubscribe is not None and unsubscribe.startswith("https://mail.example.test/u/")
    # The unsubscribe link itself is not rewritten into a tracked link.
    path = urlsplit(unsubscribe).path
    published(stores)

    page = api.get(path, key=None)
    assert page.status == 200 and "leaver@example.com" in page.body
    assert stores.store.suppressed(account.id, ["leaver@example.com"], None, time.time()) == set()  # GET: no
    reply = api.post(
        path,
        key=None,
        raw_body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200
    assert stores.store.suppressed(account.id, ["leaver@example.com"], None, time.time()) == {
        "leaver@example.com"
    }
    assert [p["type"] for p in published(stores)] == ["suppression.created"]
    events = message_of(stores, account, job["job_id"], "leaver@example.com").events
    assert [e["status"] for e in events].count("unsubscribed") == 1


def test_single_sends_carry_no_list_unsubscribe_unless_asked(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink
) -> None:
    for asked in (None, True):
        body: dict[str, Any] = {"recipient": {"email": "one@example.com"}, "subject": "s", "body": "b"}
        if asked is not None:
            body["list_unsubscribe"] = asked
        assert api.post("/api/v1/emails/send", body).status == 202
        worker.drain()
    first, second = (read_eml(p) for p in smtp_sink.messages())
    assert first["List-Unsubscribe"] is None
    assert second["List-Unsubscribe"] is not None


def test_job_control_emits_job_events(
    api: ApiClient, worker: Worker, stores: Backends, account: Account, hook: Webhook
) -> None:
    job = batch(api, [f"r{i}@example.com" for i in range(3)])
    published(stores)
    api.post(f"/api/v1/emails/jobs/{job['job_id']}/control", {"action": "pause"})
    api.post(f"/api/v1/emails/jobs/{job['job_id']}/control", {"action": "resume"})
    api.post(f"/api/v1/emails/jobs/{job['job_id']}/control", {"action": "stop"})
    payloads = published(stores)
    assert [p["type"] for p in payloads] == ["job.paused", "job.stopped"]
    assert payloads[1]["data"]["job_id"] == job["job_id"]
    assert payloads[1]["data"]["state"] == "stopped"


def test_v2_sandbox_failure_emits_message_failed(
    api: ApiClient, worker: Worker, stores: Backends, account: Account, hook: Webhook
) -> None:
    reply = api.post(
        f"/v2/accounts/{account.id}/messages",
        {
            "from": {"email": "news@acme-mail.com"},
            "recipients": [{"email": "x@example.com"}],
            "subject": "s",
            "text_content": "t",
            "sandbox": True,
            "sandbox_result": "fail",
        },
    )
    assert reply.status == 202, reply.body
    worker.drain()
    assert types_for(published(stores), "x@example.com") == ["message.reception", "message.failed"]


def test_no_webhook_no_queue_traffic(
    api: ApiClient, worker: Worker, feedback: Feedback, stores: Backends
) -> None:
    batch(api, ["ok@example.com", "bounce-3@example.com"])
    worker.drain()
    feedback.apply()
    assert published(stores) == []
