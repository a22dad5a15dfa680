"""Opens, clicks and one-click unsubscribes: what the signed URLs of a message record.

Every hit counts (the message's open and click counts); the first open or click of a message is
what campaign stats count, and since a recipient can only open mail that arrived, it also marks a
`sent` message `delivered` (a later provider `Delivery` then changes nothing and counts nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.events import EventPublisher
from mailsage.domain.models import EngagementKind, EventType, MessageStatus
from mailsage.domain.outcomes import Outcomes, SuppressionKind, SuppressionPolicy
from mailsage.domain.tracking import CLICK, OPEN, UNSUBSCRIBE, Signer, is_bot, is_safe_redirect
from mailsage.ports import JobStore, MessageStore, SuppressionStore

# The webhook event of each hit.
_EVENTS = {EngagementKind.OPENED: EventType.MESSAGE_OPENED, EngagementKind.CLICKED: EventType.MESSAGE_CLICKED}


class EngagementStore(MessageStore, JobStore, SuppressionStore, Protocol):
    """What a hit touches: the message (its counts, its status), its job (the sender), and for an
    unsubscribe the account's suppressions."""


@dataclass(slots=True, frozen=True)
class Visitor:
    user_agent: str
    ip: str


@dataclass
class EngagementService:
    store: EngagementStore
    signer: Signer | None  # None: tracking is not configured; every token is unknown
    publisher: EventPublisher | None
    message_id_domain: str | None = None  # None: the sender's domain
    suppression: SuppressionPolicy = SuppressionPolicy()
    clock: Clock = system_clock

    def _fields(self, token: str, kind: str, size: int) -> list[str] | None:
        if self.signer is None:
            return None
        fields = self.signer.verify(token)
        if fields is None or len(fields) != size or fields[0] != kind:
            return None
        return fields

    def opened(self, token: str, visitor: Visitor) -> bool:
        """Record an open; False for a token that is not ours (or a message that is gone)."""
        fields = self._fields(token, OPEN, 3)
        return fields is not None and self._engaged(EngagementKind.OPENED, fields[1], fields[2], visitor, {})

    def clicked(self, token: str, visitor: Visitor) -> str | None:
        """Record a click; the URL to redirect to, None for a token that is not ours or whose URL is
        not one to redirect to (tokens made before links were checked at send time)."""
        fields = self._fields(token, CLICK, 4)
        if fields is None or not is_safe_redirect(fields[3]):
            return None
        url = fields[3]
        # The redirect works even if the message is gone (retention): the link is signed.
        self._engaged(EngagementKind.CLICKED, fields[1], fields[2], visitor, {"url": url})
        return url

    def unsubscribe_address(self, token: str) -> str | None:
        """The address a one-click token unsubscribes (for the confirmation page)."""
        fields = self._fields(token, UNSUBSCRIBE, 4)
        return fields[3] if fields else None

    def unsubscribe(self, token: str) -> str | None:
        """Suppress the token's address for its account; the address, None for a token not ours."""
        fields = self._fields(token, UNSUBSCRIBE, 4)
        if fields is None:
            return None
        _, account_id, message_id, email = fields
        now = self.clock()
        self.store.record_engagement(
            account_id, message_id, EngagementKind.UNSUBSCRIBED, now, "one-click unsubscribe"
        )
        message = self.store.get_message(account_id, message_id)
        job = self.store.get_job(account_id, message.job_id, with_counts=False) if message else None
        outcomes = self._outcomes()
        outcomes.suppress(
            account_id,
            email,
            SuppressionKind.UNSUBSCRIBE,
            "unsubscribed (List-Unsubscribe one-click)",
            job.content.from_addr if job else "",
        )
        outcomes.publish()
        return email

    def _engaged(
        self, kind: EngagementKind, account_id: str, message_id: str, visitor: Visitor, extra: dict[str, str]
    ) -> bool:
        count = self.store.record_engagement(account_id, message_id, kind, self.clock(), visitor.user_agent)
        if count is None:
            return False
        message = self.store.get_message(account_id, message_id)
        job = self.store.get_job(account_id, message.job_id, with_counts=False) if message else None
        if message is None or job is None:
            return True
        outcomes = self._outcomes()

        def event(type_: EventType, data: dict[str, object] | None = None) -> None:
            outcomes.message(
                type_, account_id, message_id, message.email, job.content.from_addr, message.subject, data
            )

        if count == 1 and self.store.update_delivery_status(
            account_id,
            message_id,
            MessageStatus.DELIVERED,
            [MessageStatus.SENT, MessageStatus.DEFERRED],
            None,
            f"{kind}: the recipient has it",
        ):
            event(EventType.MESSAGE_DELIVERED)
        event(
            _EVENTS[kind],
            {
                **extra,
                "user_agent": visitor.user_agent,
                "ip": visitor.ip,
                "is_bot": is_bot(visitor.user_agent),
            },
        )
        outcomes.publish()
        return True

    def _outcomes(self) -> Outcomes:
        return Outcomes(self.store, self.publisher, self.message_id_domain, self.suppression, self.clock)
