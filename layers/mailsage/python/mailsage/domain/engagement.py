"""Opens, clicks and one-click unsubscribes: what the signed URLs of a message record.

Every hit counts (the message's open and click counts); the first open or click of a message is
what campaign stats count, and since a recipient can only open mail that arrived, it also marks a
`sent` message `delivered` (a later provider `Delivery` then changes nothing and counts nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mailsage.domain.events import EventPublisher
from mailsage.domain.models import MessageStatus
from mailsage.domain.outcomes import Outcomes, SuppressionPolicy
from mailsage.domain.tracking import CLICK, OPEN, UNSUBSCRIBE, Signer, is_bot, is_safe_redirect
from mailsage.ports import Store


@dataclass(slots=True, frozen=True)
class Visitor:
    user_agent: str
    ip: str


@dataclass
class EngagementService:
    store: Store
    signer: Signer | None  # None: tracking is not configured; every token is unknown
    publisher: EventPublisher | None
    message_id_domain: str = "mailsage.local"
    suppression: SuppressionPolicy = SuppressionPolicy()

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
        return fields is not None and self._engaged("opened", fields[1], fields[2], visitor, {})

    def clicked(self, token: str, visitor: Visitor) -> str | None:
        """Record a click; the URL to redirect to, None for a token that is not ours or whose URL is
        not one to redirect to (tokens made before links were checked at send time)."""
        fields = self._fields(token, CLICK, 4)
        if fields is None or not is_safe_redirect(fields[3]):
            return None
        url = fields[3]
        # The redirect works even if the message is gone (retention): the link is signed.
        self._engaged("clicked", fields[1], fields[2], visitor, {"url": url})
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
        now = time.time()
        self.store.record_engagement(account_id, message_id, "unsubscribed", now, "one-click unsubscribe")
        message = self.store.get_message(account_id, message_id)
        job = self.store.get_job(account_id, message.job_id, with_counts=False) if message else None
        outcomes = self._outcomes()
        outcomes.suppress(
            account_id,
            email,
            "unsubscribe",
            "unsubscribed (List-Unsubscribe one-click)",
            job.content.from_addr if job else "",
        )
        outcomes.publish()
        return email

    def _engaged(
        self, kind: str, account_id: str, message_id: str, visitor: Visitor, extra: dict[str, str]
    ) -> bool:
        count = self.store.record_engagement(account_id, message_id, kind, time.time(), visitor.user_agent)
        if count is None:
            return False
        message = self.store.get_message(account_id, message_id)
        job = self.store.get_job(account_id, message.job_id, with_counts=False) if message else None
        if message is None or job is None:
            return True
        outcomes = self._outcomes()

        def event(type_: str, data: dict[str, object] | None = None) -> None:
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
            event("message.delivered")
        event(
            f"message.{kind}",
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
        return Outcomes(self.store, self.publisher, self.message_id_domain, self.suppression)
