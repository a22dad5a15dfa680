"""Events: every status change of a message (and of a v1 job, and every automatic suppression)
becomes an event, fanned out to the account's webhooks through the webhook queue.

The event itself is stored with the message by the store's transition (its `events` log); this
module only builds the payloads (shaped like AhaSend's webhooks.yaml) and enqueues one delivery per
subscribed endpoint. Publishing never blocks sending: with no webhook subscribed it costs one cached
read of the account's webhooks.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.mailbox import Mailbox, message_id_header, sender_domain
from mailsage.domain.models import EVENT_FLAGS, EventType, Job, Suppression, Webhook, WebhookScope
from mailsage.ports import Queue, WebhookStore

log = logging.getLogger(__name__)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True, frozen=True)
class Event:
    type: EventType
    account_id: str
    occurred_at: float
    data: dict[str, Any]  # the payload's `data`
    sender_domain: str | None = None  # scoped webhooks get only events of mail from their domains


def message_event(
    type_: EventType | str,
    *,
    account_id: str,
    message_id: str,
    recipient: str,
    from_addr: str,
    subject: str,
    message_id_domain: str | None = None,
    occurred_at: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    """A `message.*` event with the contract's MessageWebhookData."""
    sender = parseaddr(from_addr)[1] or from_addr
    data: dict[str, Any] = {
        "account_id": account_id,
        "event": EVENT_FLAGS[type_],
        "from": sender,
        "recipient": recipient,
        "subject": subject,
        "message_id_header": message_id_header(message_id, sender, message_id_domain),
        "id": message_id,
        "is_bot": False,
    }
    data.update(extra or {})
    return Event(
        EventType(type_),
        account_id,
        system_clock() if occurred_at is None else occurred_at,
        data,
        Mailbox(sender).domain or None,
    )


def suppression_event(
    suppression: Suppression, sending_domain: str | None, occurred_at: float | None = None
) -> Event:
    data = {
        "account_id": suppression.account_id,
        "recipient": suppression.email,
        "created_at": iso(suppression.created_at),
        "expires_at": iso(suppression.expires_at),
        "reason": suppression.reason,
        "sending_domain": sending_domain or suppression.domain or "",
    }
    return Event(
        EventType.SUPPRESSION_CREATED,
        suppression.account_id,
        system_clock() if occurred_at is None else occurred_at,
        data,
        sending_domain,
    )


def job_event(type_: EventType | str, job: Job, occurred_at: float | None = None) -> Event:
    """`job.completed` / `job.paused` / `job.resumed` / `job.stopped` (MailSage v1 only)."""
    data = {
        "account_id": job.account_id,
        "job_id": job.id,
        "campaign_id": job.campaign_id,
        "state": job.state.value,
        "total": job.total,
        "counts": dict(job.counts),
    }
    if job.paused_reason is not None:
        data["paused_reason"] = job.paused_reason
    return Event(
        EventType(type_),
        job.account_id,
        system_clock() if occurred_at is None else occurred_at,
        data,
        sender_domain(job.content.from_addr),
    )


def subscribed(webhook: Webhook, event: Event) -> bool:
    if not webhook.enabled or event.type not in webhook.events:
        return False
    if webhook.scope == WebhookScope.SCOPED:
        return event.sender_domain is not None and event.sender_domain in webhook.domains
    return True


@dataclass
class EventPublisher:
    store: WebhookStore
    queue: Queue | None  # the webhook queue; None: events are not sent anywhere
    cache_seconds: float = 10.0
    clock: Clock = system_clock
    _cache: dict[str, tuple[float, list[Webhook]]] = field(default_factory=dict)

    def publish(self, events: Iterable[Event]) -> int:
        """Enqueue one delivery per event and subscribed endpoint; returns how many."""
        if self.queue is None:
            return 0
        bodies = []
        for event in events:
            for webhook in self._webhooks(event.account_id):
                if subscribed(webhook, event):
                    bodies.append(delivery_body(webhook, event))
        if bodies:
            self.queue.send(bodies)
        return len(bodies)

    def interested(self, account_id: str, type_: EventType | str) -> bool:
        """Whether any endpoint of the account may want this event type (skip building events that
        nobody receives: a batch's reception events, say)."""
        return self.queue is not None and any(
            w.enabled and type_ in w.events for w in self._webhooks(account_id)
        )

    def _webhooks(self, account_id: str) -> list[Webhook]:
        now = self.clock()
        cached = self._cache.get(account_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        found: list[Webhook] = []
        after: str | None = None
        while True:
            page, more = self.store.list_webhooks(account_id, 100, after)
            found.extend(w for w in page if w.enabled)
            if not more or not page:
                break
            after = page[-1].id
        self._cache[account_id] = (now, found)
        return found


def delivery_body(webhook: Webhook, event: Event) -> dict[str, Any]:
    """The webhook queue's message: everything the webhooks function needs to post it."""
    payload = {
        "type": event.type,
        "webhook_id": webhook.id,
        "timestamp": iso(event.occurred_at),
        "data": event.data,
    }
    return {
        "delivery_id": f"msg_{uuid.uuid4().hex}",
        "account_id": webhook.account_id,
        "webhook_id": webhook.id,
        "event_type": event.type,
        "payload": json.dumps(payload, separators=(",", ":")),
        "created_at": event.occurred_at,
    }
