"""What follows a message's status change, wherever it happened (the sender, a provider's
notification, a tracked click): its event for the webhooks, and for a hard bounce, a complaint or an
unsubscribe the automatic suppression of the address (with its own `suppression.created` event).

Events are collected while a unit of work runs and published together at its end (one queue call
for a whole chunk). The status itself was already stored, with the event in the message's log, by
the store's conditional transition: an event is only ever emitted for a transition that happened,
so duplicates and out-of-order notifications emit nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.events import Event, EventPublisher, job_event, message_event, suppression_event
from mailsage.domain.mailbox import sender_domain
from mailsage.domain.models import Job, Suppression
from mailsage.domain.suppressions import SuppressionService
from mailsage.ports import SuppressionStore

log = logging.getLogger(__name__)


class SuppressionKind(StrEnum):
    """Why an address is suppressed automatically; each has its own duration (SuppressionPolicy)."""

    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(slots=True, frozen=True)
class SuppressionPolicy:
    bounce_days: int = 30
    complaint_days: int = 3650
    unsubscribe_days: int = 3650

    def days(self, kind: SuppressionKind) -> int:
        return {
            SuppressionKind.BOUNCE: self.bounce_days,
            SuppressionKind.COMPLAINT: self.complaint_days,
            SuppressionKind.UNSUBSCRIBE: self.unsubscribe_days,
        }[kind]


@dataclass
class Outcomes:
    store: SuppressionStore
    publisher: EventPublisher | None
    message_id_domain: str | None = None  # None: the sender's domain
    policy: SuppressionPolicy = field(default_factory=SuppressionPolicy)
    clock: Clock = system_clock
    pending: list[Event] = field(default_factory=list)

    def message(
        self,
        type_: str,
        account_id: str,
        message_id: str,
        recipient: str,
        from_addr: str,
        subject: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.pending.append(
            message_event(
                type_,
                account_id=account_id,
                message_id=message_id,
                recipient=recipient,
                from_addr=from_addr,
                subject=subject,
                message_id_domain=self.message_id_domain,
                occurred_at=self.clock(),
                extra=extra,
            )
        )

    def job(self, type_: str, job: Job) -> None:
        self.pending.append(job_event(type_, job, self.clock()))

    def suppress(self, account_id: str, email: str, kind: str, reason: str, from_addr: str) -> Suppression:
        """Suppress the address for every sender domain of the account (kind: bounce, complaint,
        unsubscribe sets how long); a new suppression emits `suppression.created`."""
        days = self.policy.days(SuppressionKind(kind))
        now = self.clock()
        suppression = SuppressionService(self.store, self.clock).suppress(
            account_id, email, None, reason, now + days * 86_400
        )
        if suppression.created_at >= now:  # new, not an extended one
            self.pending.append(suppression_event(suppression, sender_domain(from_addr), now))
        return suppression

    def publish(self) -> None:
        """Hand the collected events to the webhooks. A failure here never undoes the work the
        events describe (that is stored); it is logged and the events are dropped."""
        events, self.pending = self.pending, []
        if not events or self.publisher is None:
            return
        try:
            self.publisher.publish(events)
        except Exception:
            log.exception("could not enqueue %d webhook deliveries", len(events))
