"""What happened after sending: SES event notifications -> message statuses.

A status only moves forward (a late `Delivery` never undoes a `Bounce`), so duplicate and
out-of-order notifications are harmless: every update is conditional on the states it may follow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mailsage.domain.events import EventPublisher
from mailsage.domain.models import MESSAGE_UNSENT
from mailsage.domain.models import MessageStatus as S
from mailsage.domain.outcomes import Outcomes, SuppressionPolicy
from mailsage.ports import Store

log = logging.getLogger(__name__)

_AFTER_SEND = (S.SENT, S.DEFERRED)


class NotYetSent(Exception):
    """The message has not been recorded as sent yet: the notification is retried (the queue
    delivers it again after its visibility timeout)."""


@dataclass(slots=True, frozen=True)
class Transition:
    to: S
    allowed_from: tuple[S, ...]
    error_code: str | None = None
    event: str | None = None  # the webhook event it emits
    suppress: str | None = None  # "bounce" | "complaint": the address is suppressed automatically


def _bounce(event: dict[str, Any]) -> Transition:
    bounce = event.get("bounce", {})
    if bounce.get("bounceType") == "Transient":  # a soft bounce: the mail may still arrive
        return Transition(S.DEFERRED, (S.SENT,), None, "message.transient_error")
    if bounce.get("bounceType") == "Permanent":
        return Transition(S.BOUNCED, (*_AFTER_SEND, S.DELIVERED), "bounced", "message.bounced", "bounce")
    # "Undetermined": bounced, but not proof that the address is dead
    return Transition(S.BOUNCED, (*_AFTER_SEND, S.DELIVERED), "bounced", "message.bounced")


# SES eventType -> how it moves the message (None: recorded, no status change).
_TRANSITIONS: dict[str, Any] = {
    "Send": None,  # SES accepted it: the sender already marked it sent
    "Delivery": Transition(S.DELIVERED, _AFTER_SEND, None, "message.delivered"),
    "Bounce": _bounce,
    # No message.* event of its own in the contract: a complaint shows as suppression.created.
    "Complaint": Transition(S.COMPLAINED, (*_AFTER_SEND, S.DELIVERED), "complained", None, "complaint"),
    "DeliveryDelay": Transition(S.DEFERRED, (S.SENT,), None, "message.transient_error"),
    "Reject": Transition(S.FAILED, (S.SENT,), "rejected", "message.failed"),
    "Rendering Failure": Transition(S.FAILED, (S.SENT,), "rendering_failure", "message.failed"),
    "Open": None,  # engagement, not delivery state (counted by tracking)
    "Click": None,
}


@dataclass(slots=True, frozen=True)
class FeedbackOutcome:
    event_type: str
    message_id: str | None
    status: str | None  # the status it moved the message to; None if it moved nothing
    reason: str = ""


def _tag(event: dict[str, Any], name: str) -> str | None:
    values = event.get("mail", {}).get("tags", {}).get(name) or []
    return values[0] if values else None


def _detail(event: dict[str, Any]) -> str | None:
    for key, recipients_key in (("bounce", "bouncedRecipients"), ("deliveryDelay", "delayedRecipients")):
        recipients = event.get(key, {}).get(recipients_key) or []
        if recipients and recipients[0].get("diagnosticCode"):
            return str(recipients[0]["diagnosticCode"])
    if "reject" in event:
        return str(event["reject"].get("reason", "rejected by SES"))
    if "failure" in event:
        return str(event["failure"].get("errorMessage", "rendering failure"))
    if "complaint" in event:
        return f"complaint: {event['complaint'].get('complaintFeedbackType', 'unspecified')}"
    return None


def _recipient(event: dict[str, Any]) -> str:
    for key, recipients_key in (("bounce", "bouncedRecipients"), ("complaint", "complainedRecipients")):
        recipients = event.get(key, {}).get(recipients_key) or []
        if recipients and recipients[0].get("emailAddress"):
            return str(recipients[0]["emailAddress"])
    destination = event.get("mail", {}).get("destination") or [""]
    return str(destination[0])


class FeedbackService:
    def __init__(
        self,
        store: Store,
        publisher: EventPublisher | None = None,
        message_id_domain: str = "mailsage.local",
        suppression: SuppressionPolicy | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.message_id_domain = message_id_domain
        self.suppression = suppression or SuppressionPolicy()

    def apply(self, event: dict[str, Any]) -> FeedbackOutcome:
        event_type = str(event.get("eventType") or event.get("notificationType") or "")
        account_id, message_id = _tag(event, "account_id"), _tag(event, "message_id")
        if event_type not in _TRANSITIONS:
            return FeedbackOutcome(event_type, message_id, None, "unknown event type")
        if not account_id or not message_id:
            # Mail not sent by MailSage (or sent without tags) through the same configuration set.
            return FeedbackOutcome(event_type, message_id, None, "no MailSage tags")
        rule = _TRANSITIONS[event_type]
        transition = rule(event) if callable(rule) else rule
        if transition is None:
            return FeedbackOutcome(event_type, message_id, None, "no status change")
        # Both stores update only a message of `account_id`: a notification naming another
        # account's message moves nothing (and suppresses nothing, which follows a move).
        moved = self.store.update_delivery_status(
            account_id,
            message_id,
            transition.to,
            transition.allowed_from,
            transition.error_code,
            _detail(event),
        )
        if not moved:
            current = self.store.get_message(account_id, message_id)
            if current is None:
                log.warning(
                    "%s for message %s: not a message of account %s", event_type, message_id, account_id
                )
                return FeedbackOutcome(event_type, message_id, None, "no such message in this account")
            if current.status in MESSAGE_UNSENT:
                # The notification overtook the sender's own write (SES and the sink report while
                # the sender is still recording `sent`): try again later rather than lose it.
                raise NotYetSent(f"message {message_id} is still {current.status.value}")
            # A duplicate, or older news than what the message already shows: no event either.
            return FeedbackOutcome(event_type, message_id, None, "already past this state")
        self._react(event, transition, account_id, message_id)
        return FeedbackOutcome(event_type, message_id, transition.to.value)

    def _react(self, event: dict[str, Any], transition: Transition, account_id: str, message_id: str) -> None:
        """The webhook event and the automatic suppression of a transition that happened."""
        mail = event.get("mail", {})
        headers = mail.get("commonHeaders", {})
        from_addr = str((headers.get("from") or [mail.get("source", "")])[0])
        recipient = _recipient(event)
        outcomes = Outcomes(self.store, self.publisher, self.message_id_domain, self.suppression)
        if transition.event:
            outcomes.message(
                transition.event,
                account_id,
                message_id,
                recipient,
                from_addr,
                str(headers.get("subject", "")),
            )
        if transition.suppress and recipient:
            reason = "hard bounce" if transition.suppress == "bounce" else "complaint"
            detail = _detail(event)
            outcomes.suppress(
                account_id,
                recipient,
                transition.suppress,
                f"{reason}: {detail}" if detail else reason,
                from_addr,
            )
        outcomes.publish()
