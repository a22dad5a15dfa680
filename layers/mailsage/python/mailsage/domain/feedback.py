"""What happened after sending: delivery reports (domain/delivery_reports.py) -> message statuses.

A status only moves forward (a late delivery never undoes a bounce), so duplicate and out-of-order
reports are harmless: every update is conditional on the states it may follow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.delivery_reports import DeliveryReport, ReportOutcome
from mailsage.domain.events import EventPublisher
from mailsage.domain.models import MESSAGE_UNSENT, EventType
from mailsage.domain.models import MessageStatus as S
from mailsage.domain.outcomes import Outcomes, SuppressionKind, SuppressionPolicy
from mailsage.ports import MessageStore, Meter, NoMeter, SuppressionStore

log = logging.getLogger(__name__)

_AFTER_SEND = (S.SENT, S.DEFERRED)


class FeedbackStore(MessageStore, SuppressionStore, Protocol):
    """What feedback changes: message statuses, and suppressions after a bounce or a complaint."""


class NotYetSent(Exception):
    """The message has not been recorded as sent yet: the report is retried (the queue delivers it
    again after its visibility timeout)."""


@dataclass(slots=True, frozen=True)
class Transition:
    to: S
    allowed_from: tuple[S, ...]
    error_code: str | None = None
    event: EventType | None = None  # the webhook event it emits
    suppress: SuppressionKind | None = None  # the address is suppressed automatically


_BOUNCED = Transition(
    S.BOUNCED, (*_AFTER_SEND, S.DELIVERED), "bounced", EventType.MESSAGE_BOUNCED, SuppressionKind.BOUNCE
)

# How each outcome moves the message (None: recorded, no status change).
_TRANSITIONS: dict[ReportOutcome, Transition | None] = {
    ReportOutcome.ACCEPTED: None,  # the sender already marked it sent
    ReportOutcome.DELIVERED: Transition(S.DELIVERED, _AFTER_SEND, None, EventType.MESSAGE_DELIVERED),
    ReportOutcome.BOUNCED: _BOUNCED,
    # A soft bounce: the mail may still arrive.
    ReportOutcome.SOFT_BOUNCED: Transition(S.DEFERRED, (S.SENT,), None, EventType.MESSAGE_TRANSIENT_ERROR),
    # Bounced, but not proof that the address is dead: nothing is suppressed.
    ReportOutcome.UNDETERMINED_BOUNCE: Transition(
        S.BOUNCED, (*_AFTER_SEND, S.DELIVERED), "bounced", EventType.MESSAGE_BOUNCED
    ),
    # No message.* event of its own in the contract: a complaint shows as suppression.created.
    ReportOutcome.COMPLAINED: Transition(
        S.COMPLAINED, (*_AFTER_SEND, S.DELIVERED), "complained", None, SuppressionKind.COMPLAINT
    ),
    ReportOutcome.DELAYED: Transition(S.DEFERRED, (S.SENT,), None, EventType.MESSAGE_TRANSIENT_ERROR),
    ReportOutcome.REJECTED: Transition(S.FAILED, (S.SENT,), "rejected", EventType.MESSAGE_FAILED),
    ReportOutcome.RENDERING_FAILED: Transition(
        S.FAILED, (S.SENT,), "rendering_failure", EventType.MESSAGE_FAILED
    ),
    ReportOutcome.OPENED: None,  # engagement, not delivery state (counted by tracking)
    ReportOutcome.CLICKED: None,
}

# The business metric of each status a report moves a message to (counted once: only a move is).
_METRICS: dict[S, str] = {
    S.DELIVERED: "MessagesDelivered",
    S.BOUNCED: "MessagesBounced",
    S.COMPLAINED: "MessagesComplained",
    S.FAILED: "MessagesFailed",
}


@dataclass(slots=True, frozen=True)
class FeedbackOutcome:
    event_type: str  # the report's outcome
    message_id: str | None
    status: str | None  # the status it moved the message to; None if it moved nothing
    reason: str = ""


class FeedbackService:
    def __init__(
        self,
        store: FeedbackStore,
        publisher: EventPublisher | None = None,
        message_id_domain: str | None = None,
        suppression: SuppressionPolicy | None = None,
        clock: Clock = system_clock,
        meter: Meter | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.message_id_domain = message_id_domain
        self.suppression = suppression or SuppressionPolicy()
        self.clock = clock
        self.meter = meter or NoMeter()

    def apply(self, report: DeliveryReport) -> FeedbackOutcome:
        kind, account_id, message_id = report.outcome.value, report.account_id, report.message_id
        if not account_id or not message_id:
            # Mail not sent by MailSage (or sent without its ids) through the same channel.
            return FeedbackOutcome(kind, message_id, None, "no MailSage tags")
        transition = _TRANSITIONS[report.outcome]
        if transition is None:
            return FeedbackOutcome(kind, message_id, None, "no status change")
        # Both stores update only a message of `account_id`: a report naming another account's
        # message moves nothing (and suppresses nothing, which follows a move).
        moved = self.store.update_delivery_status(
            account_id,
            message_id,
            transition.to,
            transition.allowed_from,
            transition.error_code,
            report.detail,
        )
        if not moved:
            current = self.store.get_message(account_id, message_id)
            if current is None:
                log.warning("%s for message %s: not a message of account %s", kind, message_id, account_id)
                return FeedbackOutcome(kind, message_id, None, "no such message in this account")
            if current.status in MESSAGE_UNSENT:
                # The report overtook the sender's own write (SES and the sink report while the
                # sender is still recording `sent`): try again later rather than lose it.
                raise NotYetSent(f"message {message_id} is still {current.status.value}")
            # A duplicate, or older news than what the message already shows: no event either.
            return FeedbackOutcome(kind, message_id, None, "already past this state")
        if transition.to in _METRICS:
            self.meter.count(_METRICS[transition.to])
        self._react(report, transition, account_id, message_id)
        return FeedbackOutcome(kind, message_id, transition.to.value)

    def _react(
        self, report: DeliveryReport, transition: Transition, account_id: str, message_id: str
    ) -> None:
        """The webhook event and the automatic suppression of a transition that happened."""
        outcomes = Outcomes(self.store, self.publisher, self.message_id_domain, self.suppression, self.clock)
        if transition.event:
            outcomes.message(
                transition.event,
                account_id,
                message_id,
                report.recipient,
                report.from_addr,
                report.subject,
            )
        if transition.suppress and report.recipient:
            reason = "hard bounce" if transition.suppress == SuppressionKind.BOUNCE else "complaint"
            outcomes.suppress(
                account_id,
                report.recipient,
                transition.suppress,
                f"{reason}: {report.detail}" if report.detail else reason,
                report.from_addr,
            )
        outcomes.publish()
