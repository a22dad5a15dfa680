"""Sample events for a webhook's "send test event": a payload shaped exactly like a real event of
that type (the same builders as domain/events.py), with made-up values, marked `"test": true` at the
top of the payload and of the queue body.

Made-up values: example.com addresses (a scoped webhook's first domain as the sender's, so the
sample is one the webhook could really receive), a fresh message/job id that names nothing stored,
and the subject `TEST_SUBJECT`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from mailsage.domain.events import (
    Event,
    delivery_body,
    iso,
    message_event,
    suppression_event,
)
from mailsage.domain.models import EventType, Suppression, Webhook, new_message_id

TEST_SUBJECT = "MailSage test event"
SAMPLE_RECIPIENT = "recipient@example.com"
DEFAULT_TEST_EVENT = EventType.MESSAGE_DELIVERED

# What an open or click adds to a message event (domain/engagement.py)
_VISITOR = {"user_agent": "Mozilla/5.0 (MailSage test event)", "ip": "192.0.2.1", "is_bot": False}
_EXTRA: dict[str, dict[str, Any]] = {
    EventType.MESSAGE_OPENED: _VISITOR,
    EventType.MESSAGE_CLICKED: {**_VISITOR, "url": "https://example.com/"},
}
# The state a job is in when each job.* event is published
_JOB_STATES = {
    EventType.JOB_COMPLETED: "completed",
    EventType.JOB_PAUSED: "paused",
    EventType.JOB_RESUMED: "running",
    EventType.JOB_STOPPED: "stopped",
}


def sample_event(webhook: Webhook, type_: EventType, now: float) -> Event:
    """An event of `type_` for the webhook's account, with made-up values."""
    domain = webhook.domains[0] if webhook.domains else "example.com"
    sender = f"sender@{domain}"
    account_id = webhook.account_id
    if type_ in _JOB_STATES:
        data: dict[str, Any] = {
            "account_id": account_id,
            "job_id": str(uuid.uuid4()),
            "campaign_id": None,
            "state": _JOB_STATES[type_],
            "total": 1,
            "counts": {"sent": 1} if type_ is EventType.JOB_COMPLETED else {"queued": 1},
        }
        return Event(type_, account_id, now, data, domain)
    if type_ is EventType.SUPPRESSION_CREATED:
        suppression = Suppression(
            id=str(uuid.uuid4()),
            account_id=account_id,
            email=SAMPLE_RECIPIENT,
            domain=None,
            reason="test event: not a real suppression",
            created_at=now,
            expires_at=now + 30 * 86_400,
        )
        return suppression_event(suppression, domain, now)
    if type_ is EventType.DOMAIN_DNS_ERROR:
        data = {
            "domain": domain,
            "account_id": account_id,
            "spf_valid": False,
            "dkim_valid": False,
            "dmarc_valid": False,
            "dns_last_checked_at": iso(now),
        }
        return Event(type_, account_id, now, data, domain)
    return message_event(
        type_,
        account_id=account_id,
        message_id=new_message_id(),
        recipient=SAMPLE_RECIPIENT,
        from_addr=sender,
        subject=TEST_SUBJECT,
        occurred_at=now,
        extra=_EXTRA.get(type_),
    )


def sample_body(webhook: Webhook, event: Event) -> dict[str, Any]:
    """The webhook queue body that sends `event` to the webhook as a test."""
    body = delivery_body(webhook, event)
    payload = json.loads(body["payload"])
    payload["test"] = True
    return {**body, "payload": json.dumps(payload, separators=(",", ":")), "test": True}


def is_test_payload(payload: str) -> bool:
    """Whether a logged payload is a test event's (a replay of it stays a test)."""
    try:
        decoded = json.loads(payload)
    except ValueError:
        return False
    return isinstance(decoded, dict) and decoded.get("test") is True
