"""SES event notifications (configuration set event destination -> SNS -> SQS) -> DeliveryReports.

The sender tags every message it hands to SES with `account_id`, `job_id` and `message_id` (SES
message tags); a notification is matched back by them. Mail sent through the same configuration
set without them becomes a report without ids, which moves nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailsage.domain.delivery_reports import DeliveryReport, ReportOutcome

# SES eventType -> the outcome it reports (a bounce's depends on its bounceType: `_bounce`).
_OUTCOMES: dict[str, ReportOutcome | None] = {
    "Send": ReportOutcome.ACCEPTED,
    "Delivery": ReportOutcome.DELIVERED,
    "Bounce": None,
    "Complaint": ReportOutcome.COMPLAINED,
    "DeliveryDelay": ReportOutcome.DELAYED,
    "Reject": ReportOutcome.REJECTED,
    "Rendering Failure": ReportOutcome.RENDERING_FAILED,
    "Open": ReportOutcome.OPENED,
    "Click": ReportOutcome.CLICKED,
}

# Where each event type keeps its own timestamp.
_DETAIL_KEYS = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "DeliveryDelay": "deliveryDelay",
    "Reject": "reject",
    "Rendering Failure": "failure",
    "Open": "open",
    "Click": "click",
}


def unwrap(body: dict[str, Any]) -> dict[str, Any]:
    """The SES notification inside an SNS envelope (raw message delivery off), or `body` itself."""
    if body.get("Type") == "Notification" and "Message" in body:
        message = json.loads(body["Message"])
        return message if isinstance(message, dict) else {}
    return body


def event_type(notification: dict[str, Any]) -> str:
    return str(notification.get("eventType") or notification.get("notificationType") or "")


def to_report(notification: dict[str, Any]) -> DeliveryReport | None:
    """The report of one SES notification; None for an event type MailSage does not know."""
    kind = event_type(notification)
    if kind not in _OUTCOMES:
        return None
    outcome = _OUTCOMES[kind] or _bounce(notification)
    mail = notification.get("mail", {})
    headers = mail.get("commonHeaders", {})
    return DeliveryReport(
        outcome=outcome,
        account_id=_tag(notification, "account_id"),
        message_id=_tag(notification, "message_id"),
        job_id=_tag(notification, "job_id"),
        recipient=_recipient(notification),
        from_addr=str((headers.get("from") or [mail.get("source", "")])[0]),
        subject=str(headers.get("subject", "")),
        detail=_detail(notification),
        occurred_at=_time(notification.get(_DETAIL_KEYS[kind], {}).get("timestamp") or mail.get("timestamp")),
    )


def _bounce(notification: dict[str, Any]) -> ReportOutcome:
    bounce_type = notification.get("bounce", {}).get("bounceType")
    if bounce_type == "Transient":
        return ReportOutcome.SOFT_BOUNCED
    if bounce_type == "Permanent":
        return ReportOutcome.BOUNCED
    return ReportOutcome.UNDETERMINED_BOUNCE  # "Undetermined"


def _tag(notification: dict[str, Any], name: str) -> str | None:
    values = notification.get("mail", {}).get("tags", {}).get(name) or []
    return values[0] if values else None


def _detail(notification: dict[str, Any]) -> str | None:
    for key, recipients_key in (("bounce", "bouncedRecipients"), ("deliveryDelay", "delayedRecipients")):
        recipients = notification.get(key, {}).get(recipients_key) or []
        if recipients and recipients[0].get("diagnosticCode"):
            return str(recipients[0]["diagnosticCode"])
    if "reject" in notification:
        return str(notification["reject"].get("reason", "rejected by SES"))
    if "failure" in notification:
        return str(notification["failure"].get("errorMessage", "rendering failure"))
    if "complaint" in notification:
        return f"complaint: {notification['complaint'].get('complaintFeedbackType', 'unspecified')}"
    return None


def _recipient(notification: dict[str, Any]) -> str:
    for key, recipients_key in (("bounce", "bouncedRecipients"), ("complaint", "complainedRecipients")):
        recipients = notification.get(key, {}).get(recipients_key) or []
        if recipients and recipients[0].get("emailAddress"):
            return str(recipients[0]["emailAddress"])
    destination = notification.get("mail", {}).get("destination") or [""]
    return str(destination[0])


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
