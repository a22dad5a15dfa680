"""The AhaSend v2 wire format: request and response models named and shaped as the contract's
schemas (`../shared/specs/ahasend/openapi.yaml`), and the mapping between them and the domain.

Requests ignore fields they do not know (an AhaSend client may send more than this surface uses)
and accept `null` for every optional field. Replies leave out optional fields that have no value
(`schedule`, `next_cursor`, `content`, ...) rather than sending `null`, where the contract types
them as non-nullable.
"""

from __future__ import annotations

import base64
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from mailsage.api.model import Model
from mailsage.api.v2.ahasend_names import iso, parse_rfc3339, status_name
from mailsage.domain.message_drafts import AttachmentDraft, MessageDraft, RecipientDraft
from mailsage.domain.messages import Created, MessageView
from mailsage.domain.models import Suppression as DomainSuppression
from mailsage.errors import ValidationFailed

# When a message's data is kept until deleted (no retention configured), `retain_until` (a required
# date-time) says so with the largest RFC 3339 date-time.
FOREVER = "9999-12-31T23:59:59Z"


def _single_line(value: str | None) -> str | None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError("must not contain a line break (CR or LF)")
    return value


def _check_rfc3339(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2023-12-25T10:30:00Z")
    try:
        return parse_rfc3339(value, "date-time")
    except ValidationFailed:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2023-12-25T10:30:00Z") from None


SingleLine = Annotated[str, AfterValidator(_single_line)]
Rfc3339 = Annotated[datetime, BeforeValidator(_check_rfc3339)]
Body = Annotated[str, Field(max_length=1_000_000)]


def _omitted_when_none(value: Any) -> bool:
    return value is None


def omitted_if_none(description: str = "") -> Any:
    """An optional reply field that is left out rather than sent as null."""
    return Field(None, exclude_if=_omitted_when_none, description=description or None)


class Lenient(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# -- requests ----------------------------------------------------------------------------------------


class Address(Lenient):
    email: str = Field(max_length=320, description="An address of one of the account's sender domains.")
    name: Annotated[SingleLine, Field(max_length=256)] | None = None


class Recipient(Lenient):
    # The address is checked per recipient by the domain: a bad one is an error entry in the reply
    # while the other recipients go out.
    email: str = Field(max_length=320)
    name: str | None = Field(None, max_length=256)
    substitutions: dict[str, Any] | None = Field(
        None, description="Template variables of this recipient; they override the global ones."
    )


class Attachment(Lenient):
    base64: bool | None = Field(False, description="true: data is base64; otherwise UTF-8 text.")
    data: str
    content_type: str = Field(max_length=255)
    content_disposition: str | None = Field(None, max_length=32, description="attachment or inline")
    content_id: str | None = Field(
        None,
        max_length=255,
        description="`<name@domain>`: an inline part the HTML refers to as cid:name@domain.",
    )
    file_name: str = Field(max_length=255)


class Tracking(Lenient):
    open: bool | None = None
    click: bool | None = None


class Retention(Lenient):
    metadata: int | None = Field(None, ge=1, le=30, description="Days the message record is kept.")
    data: int | None = Field(
        None, ge=0, le=30, description="Days the content is kept after sending (0: removed once sent)."
    )


class MessageSchedule(Lenient):
    first_attempt: Rfc3339 | None = Field(None, description="RFC 3339; in the future, within 7 days.")
    expires: Rfc3339 | None = Field(
        None, description="RFC 3339; within 8 days; a message not sent by then is dropped."
    )


class CreateMessageRequest(Lenient):
    from_: Address = Field(alias="from")
    recipients: list[Recipient] = Field(
        min_length=1, max_length=100, description="One separate message per recipient."
    )
    reply_to: Address | None = None
    subject: Annotated[SingleLine, Field(max_length=998)]
    text_content: Body | None = None
    html_content: Body | None = None
    amp_content: Body | None = None
    attachments: list[Attachment] | None = Field(None, max_length=100)
    headers: dict[str, str] | None = Field(
        None, description="Custom headers; message-id is ignored; no reply-to together with reply_to."
    )
    substitutions: dict[str, Any] | None = None
    tags: list[Annotated[str, Field(max_length=255)]] | None = Field(None, max_length=100)
    sandbox: bool | None = False
    sandbox_result: Literal["deliver", "bounce", "defer", "fail", "suppress"] | None = None
    tracking: Tracking | None = None
    retention: Retention | None = None
    schedule: MessageSchedule | None = None


class CreateSuppressionRequest(Lenient):
    email: str = Field(max_length=320)
    domain: str | None = Field(None, max_length=253, description="Only mail from this sender domain.")
    reason: str | None = Field(None, max_length=255)
    expires_at: Rfc3339


def draft(body: CreateMessageRequest) -> MessageDraft:
    """Request -> the domain's draft."""
    tracking = None
    if body.tracking is not None:
        tracking = {k: v for k, v in body.tracking.model_dump().items() if v is not None} or None
    return MessageDraft(
        from_email=body.from_.email,
        from_name=body.from_.name,
        recipients=[RecipientDraft(r.email, r.name, r.substitutions) for r in body.recipients],
        subject=body.subject,
        reply_to_email=body.reply_to.email if body.reply_to else None,
        reply_to_name=body.reply_to.name if body.reply_to else None,
        text=body.text_content,
        html=body.html_content,
        amp=body.amp_content,
        attachments=[
            AttachmentDraft(
                data=a.data,
                content_type=a.content_type,
                file_name=a.file_name,
                base64=bool(a.base64),
                content_disposition=a.content_disposition,
                content_id=a.content_id,
            )
            for a in body.attachments or []
        ],
        headers=dict(body.headers or {}),
        substitutions=dict(body.substitutions or {}),
        tags=list(body.tags or []),
        sandbox=bool(body.sandbox),
        sandbox_result=body.sandbox_result,
        tracking=tracking,
        retention_metadata_days=body.retention.metadata if body.retention else None,
        retention_data_days=body.retention.data if body.retention else None,
        first_attempt=body.schedule.first_attempt if body.schedule else None,
        expires=body.schedule.expires if body.schedule else None,
    )


# -- replies -----------------------------------------------------------------------------------------


class ErrorResponse(Model):
    message: str


class SuccessResponse(Model):
    message: str


class PaginationInfo(Model):
    has_more: bool
    next_cursor: str | None = omitted_if_none("Pass as `after` to fetch the next page.")
    previous_cursor: str | None = omitted_if_none("Pass as `before` to fetch the previous page.")


class RecipientReply(Model):
    email: str
    name: str
    substitutions: dict[str, Any] | None = omitted_if_none()


class ScheduleReply(Model):
    first_attempt: str | None = omitted_if_none()
    expires: str | None = omitted_if_none()


class CreateSingleMessageResponse(Model):
    object: Literal["message"] = "message"
    id: str | None = Field(description="The Message-ID `<uuid@domain>`; null if nothing was created.")
    recipient: RecipientReply
    status: Literal["queued", "scheduled", "error"]
    error: str | None
    schedule: ScheduleReply | None = omitted_if_none("Present when the request had a schedule.")


class CreateMessageResponse(Model):
    object: Literal["list"] = "list"
    data: list[CreateSingleMessageResponse]


class DeliveryEvent(Model):
    time: str
    log: str
    status: str


class MessageSummary(Model):
    object: Literal["message"] = "message"
    created_at: str
    updated_at: str
    sent_at: str | None
    delivered_at: str | None
    retain_until: str
    direction: Literal["inbound", "outbound"] = "outbound"
    is_bounce_notification: bool = False
    bounce_classification: str
    delivery_attempts: list[DeliveryEvent]
    message_id: str = Field(description="The Message-ID header.")
    id: str | None
    subject: str
    tags: list[str]
    sender: str
    recipient: str
    status: str
    num_attempts: int
    click_count: int
    open_count: int
    reference_message_id: int | None = None
    domain_id: str
    account_id: str


class MessageContentPart(Model):
    content_type: str
    content: str


class MessageAttachment(Model):
    filename: str
    content: str
    content_type: str
    content_id: str


class MessageContentParsed(Model):
    parts: list[MessageContentPart]
    attachments: list[MessageAttachment]
    headers: dict[str, list[str]]


class Message(MessageSummary):
    content: str | None = omitted_if_none("The RFC 5322 message; left out once retention removed the data.")
    content_parsed: MessageContentParsed | None = omitted_if_none()


class PaginatedMessagesResponse(Model):
    object: Literal["list"] = "list"
    data: list[MessageSummary]
    pagination: PaginationInfo


class Suppression(Model):
    object: Literal["suppression"] = "suppression"
    id: str
    created_at: str
    email: str
    domain: str = Field(description='The sender domain; "" when it applies to every domain.')
    reason: str
    expires_at: str


class CreateSuppressionResponse(Model):
    object: Literal["list"] = "list"
    data: list[Suppression]


class PaginatedSuppressionsResponse(Model):
    object: Literal["list"] = "list"
    data: list[Suppression]
    pagination: PaginationInfo


# -- domain -> replies -----------------------------------------------------------------------------


def created_reply(created: Created) -> CreateMessageResponse:
    schedule = None
    if created.scheduled:
        schedule = ScheduleReply(
            first_attempt=iso(created.first_attempt_at) if created.first_attempt_at else None,
            expires=iso(created.expires_at) if created.expires_at else None,
        )
    return CreateMessageResponse(
        data=[
            CreateSingleMessageResponse(
                id=e.message_id,
                recipient=RecipientReply(email=e.email, name=e.name or "", substitutions=e.substitutions),
                status=e.status,  # type: ignore[arg-type]  # one of the literal values
                error=e.error,
                schedule=schedule,
            )
            for e in created.entries
        ]
    )


def _summary_fields(view: MessageView, account_id: str) -> dict[str, Any]:
    m = view.message
    return {
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at or m.created_at),
        "sent_at": iso(m.sent_at) if m.sent_at is not None else None,
        "delivered_at": iso(m.delivered_at) if m.delivered_at is not None else None,
        "retain_until": iso(view.retain_until) if view.retain_until is not None else FOREVER,
        "bounce_classification": "hard" if m.status == "bounced" else "",
        "delivery_attempts": [
            DeliveryEvent(
                time=iso(float(e.get("time") or 0)),
                log=str(e.get("log") or ""),
                status=str(e.get("status") or ""),
            )
            for e in m.events
        ],
        "message_id": view.message_id_header,
        "id": m.id,
        "subject": m.subject,
        "tags": view.tags,
        "sender": view.sender,
        "recipient": m.email,
        "status": status_name(m.status, view.sandbox),
        "num_attempts": m.attempts,
        "click_count": sum(1 for e in m.events if e.get("status") in ("click", "clicked")),
        "open_count": sum(1 for e in m.events if e.get("status") in ("open", "opened")),
        "domain_id": view.sender_domain_id,
        "account_id": account_id,
    }


def summary_reply(view: MessageView, account_id: str) -> MessageSummary:
    return MessageSummary(**_summary_fields(view, account_id))


def message_reply(view: MessageView, account_id: str) -> Message:
    reply = Message(**_summary_fields(view, account_id))
    if view.content is not None:
        reply.content = view.content.decode("utf-8", errors="replace")
        reply.content_parsed = parsed_content(view.content)
    return reply


def parsed_content(data: bytes) -> MessageContentParsed:
    """The contract's `content_parsed`: body parts, attachments (base64) and the top-level headers."""
    message: EmailMessage = message_from_bytes(data, policy=policy.default)  # type: ignore[assignment]
    headers: dict[str, list[str]] = {}
    for name, value in message.items():
        headers.setdefault(name, []).append(str(value))
    parts: list[MessageContentPart] = []
    attachments: list[MessageAttachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        if disposition in ("attachment", "inline") and (part.get_filename() or part["Content-ID"]):
            payload = part.get_payload(decode=True)
            attachments.append(
                MessageAttachment(
                    filename=part.get_filename() or "",
                    content=base64.b64encode(payload if isinstance(payload, bytes) else b"").decode("ascii"),
                    content_type=part.get_content_type(),
                    content_id=str(part["Content-ID"] or "").strip().removeprefix("<").removesuffix(">"),
                )
            )
        else:
            content = part.get_content()  # type: ignore[attr-defined]
            parts.append(
                MessageContentPart(
                    content_type=part.get_content_type(),
                    content=content
                    if isinstance(content, str)
                    else base64.b64encode(content).decode("ascii"),
                )
            )
    return MessageContentParsed(parts=parts, attachments=attachments, headers=headers)


def suppression_reply(s: DomainSuppression) -> Suppression:
    return Suppression(
        id=s.id,
        created_at=iso(s.created_at),
        email=s.email,
        domain=s.domain or "",
        reason=s.reason,
        expires_at=iso(s.expires_at),
    )


# -- OpenAPI -----------------------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "Bad request: the message names what is wrong",
    401: "Missing or invalid API key",
    403: "The key's account is not account_id, or the sender domain is not allowed",
    404: "Not found (also another account's)",
    409: "Conflict (or an Idempotency-Key request still in progress)",
    422: "The Idempotency-Key was used with a different request",
    429: "Too many requests: over the account's request limit (Retry-After, RateLimit)",
}


def responses(status: int, model: type[Model] | None, *errors: int) -> dict[int, Any]:
    """The OpenAPI `responses` of a v2 route: its success reply and the ErrorResponses it can give."""
    success: dict[str, Any] = {"description": "Success"}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    out: dict[int, Any] = {status: success}
    for code in (400, 401, 403, 429, *errors):
        out[code] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return out
