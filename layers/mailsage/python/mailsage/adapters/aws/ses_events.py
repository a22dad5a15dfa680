"""SES event notifications (configuration set -> SNS -> SQS by default, or -> EventBridge's default
bus -> a rule -> SQS: infra's `ses_event_destination`) -> DeliveryReports.

The sender tags every message it hands to SES with `account_id`, `job_id` and `message_id` (SES
message tags); a notification is matched back by them. Mail sent through the same configuration
set without them becomes a report without ids, which moves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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


# EventBridge's detail-type of each SES eventType (SES puts every event of a configuration set with
# an EventBridge destination on the account's default bus, the event itself as `detail`).
DETAIL_TYPES = {
    "Email Sent": "Send",
    "Email Delivered": "Delivery",
    "Email Bounced": "Bounce",
    "Email Complaint Received": "Complaint",
    "Email Delivery Delayed": "DeliveryDelay",
    "Email Rejected": "Reject",
    "Email Rendering Failed": "Rendering Failure",
    "Email Opened": "Open",
    "Email Clicked": "Click",
}
_SOURCE = "aws.ses"


def event_pattern(configuration_set: str, event_types: Iterable[str]) -> dict[str, Any]:
    """The EventBridge rule pattern selecting, on the default bus, the events of `event_types` that
    SES publishes for one configuration set: SES tags each with its configuration set's name, so
    the rules of several stages (or other tools) on the same bus never take each other's events."""
    wanted = set(event_types)
    return {
        "source": [_SOURCE],
        "detail-type": [name for name, kind in DETAIL_TYPES.items() if kind in wanted],
        "detail": {"mail": {"tags": {"ses:configuration-set": [configuration_set]}}},
    }


def unwrap(body: dict[str, Any]) -> dict[str, Any]:
    """The SES notification inside its envelope: EventBridge's (`detail`), SNS's (`Message`, raw
    delivery off), or `body` itself (SNS raw delivery). All three are read whatever the stack's
    destination: records queued or dead-lettered before a switch between them are still applied."""
    if body.get("source") == _SOURCE and "detail-type" in body:
        detail = body.get("detail")
        if not isinstance(detail, dict):
            return {}
        kind = DETAIL_TYPES.get(str(body["detail-type"]))
        # The detail carries its eventType; the detail-type names the same event if it ever does not.
        return detail if "eventType" in detail or kind is None else {**detail, "eventType": kind}
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
