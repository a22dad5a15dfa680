"""What a provider (or the built-in sink) says happened to a sent message, in MailSage's own terms.

Each source translates its own wire format at the edge (SES notifications in
adapters/aws/ses_events.py; the sink in local/sink.py), and FeedbackService reads only this. A
report travels through a queue as a JSON object (`to_dict` / `from_dict`), marked by its `type`
so the events function can tell it from a provider's notification.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

REPORT_TYPE = "mailsage.delivery_report"


class ReportOutcome(StrEnum):
    ACCEPTED = "accepted"  # the provider took the message; the sender already recorded it sent
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # a permanent bounce: the address is dead
    SOFT_BOUNCED = "soft_bounced"  # a transient bounce: the mail may still arrive
    UNDETERMINED_BOUNCE = "undetermined_bounce"  # bounced, but not proof that the address is dead
    COMPLAINED = "complained"
    DELAYED = "delayed"  # the provider keeps trying
    REJECTED = "rejected"  # the provider refused to send it
    RENDERING_FAILED = "rendering_failed"
    OPENED = "opened"  # engagement seen by the provider (counted by MailSage's own tracking)
    CLICKED = "clicked"


@dataclass(slots=True, frozen=True)
class DeliveryReport:
    outcome: ReportOutcome
    # None when the mail was not sent by MailSage (or without its ids): the report moves nothing.
    account_id: str | None
    message_id: str | None
    job_id: str | None = None
    recipient: str = ""  # the recipient the report is about
    from_addr: str = ""  # the message's From
    subject: str = ""
    detail: str | None = None  # the diagnostic: an SMTP reply, a complaint type, a reason
    occurred_at: float | None = None  # epoch seconds, when the source says

    def to_dict(self) -> dict[str, Any]:
        return {"type": REPORT_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryReport:
        occurred_at = data.get("occurred_at")
        detail = data.get("detail")
        return cls(
            outcome=ReportOutcome(data["outcome"]),
            account_id=_optional(data.get("account_id")),
            message_id=_optional(data.get("message_id")),
            job_id=_optional(data.get("job_id")),
            recipient=str(data.get("recipient") or ""),
            from_addr=str(data.get("from_addr") or ""),
            subject=str(data.get("subject") or ""),
            detail=None if detail is None else str(detail),
            occurred_at=None if occurred_at is None else float(occurred_at),
        )


def is_report(data: Any) -> bool:
    """Whether a queued JSON object is a DeliveryReport (rather than a provider's notification)."""
    return isinstance(data, dict) and data.get("type") == REPORT_TYPE


def _optional(value: Any) -> str | None:
    return str(value) if value else None
