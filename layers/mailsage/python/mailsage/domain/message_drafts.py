"""A create-message request as the domain receives it (a draft, its shape already checked by the
API's models), and the checks that make its fields safe to store and send: custom headers,
attachments, header texts, the schedule's window.

Decisions where the contract leaves room: `Message-ID` among the custom headers is dropped (MailSage
generates it); a `content_id` in angle brackets makes an attachment inline; `sandbox_result`
applies only with `sandbox: true` (default `deliver`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailsage.domain.header_values import header_text_problem
from mailsage.errors import ValidationFailed

DAY = 86_400.0


@dataclass(slots=True)
class RecipientDraft:
    email: str
    name: str | None = None
    substitutions: dict[str, Any] | None = None


@dataclass(slots=True)
class AttachmentDraft:
    data: str
    content_type: str
    file_name: str
    base64: bool = False
    content_disposition: str | None = None
    content_id: str | None = None


@dataclass(slots=True)
class MessageDraft:
    """A create-message request, already checked for shape (types, lengths, ranges)."""

    from_email: str
    recipients: list[RecipientDraft]
    subject: str
    from_name: str | None = None
    reply_to_email: str | None = None
    reply_to_name: str | None = None
    text: str | None = None
    html: str | None = None
    amp: str | None = None
    attachments: list[AttachmentDraft] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    substitutions: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    sandbox: bool = False
    sandbox_result: str | None = None
    tracking: dict[str, bool] | None = None
    retention_metadata_days: int | None = None
    retention_data_days: int | None = None
    first_attempt: datetime | None = None
    expires: datetime | None = None


_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext: printable ASCII but ':'
# Headers MailSage writes itself (identity, envelope, MIME structure, the Feedback-ID that names
# the message in complaint reports): never the caller's.
_RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "mime-version", "return-path", "sender", "feedback-id"}
)
_CONTENT_TYPE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+(\s*;.*)?", re.ASCII)
SANDBOX_RESULTS = ("deliver", "bounce", "defer", "fail", "suppress")


def check_headers(headers: dict[str, str], reply_to_given: bool) -> dict[str, str]:
    """Custom headers as they go into every message: `Message-ID` is dropped (MailSage generates
    it); names MailSage writes itself, line breaks and control characters are a 400."""
    checked: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if not _FIELD_NAME.fullmatch(name):
            raise ValidationFailed(f"headers: {name!r} is not a valid header name", {"field": "headers"})
        if lowered == "message-id":
            continue  # the contract: ignored, MailSage generates it
        if lowered == "reply-to" and reply_to_given:
            raise ValidationFailed(
                "headers: give reply_to or a Reply-To header, not both", {"field": "headers"}
            )
        if lowered in _RESERVED_HEADERS or lowered.startswith(("content-", "x-mailsage-")):
            raise ValidationFailed(
                f"headers: {name} is set by MailSage and cannot be given", {"field": "headers"}
            )
        problem = header_text_problem(value)
        if problem:
            raise ValidationFailed(f"headers: the value of {name} contains {problem}", {"field": "headers"})
        checked[name] = value
    return checked


def check_header_texts(draft: MessageDraft) -> None:
    """The subject and the recipients' names, as written in the request, are header text."""
    fields: list[tuple[str, str | None]] = [("subject", draft.subject)]
    fields += [(f"recipients[{i}].name", r.name) for i, r in enumerate(draft.recipients)]
    for name, value in fields:
        problem = header_text_problem(value, tab=False)
        if problem:
            raise ValidationFailed(f"{name} must not contain {problem}", {"field": name})


def check_attachments(drafts: list[AttachmentDraft], max_bytes: int) -> list[dict[str, Any]]:
    """Attachments as `Content.attachments` stores them: {file_name, content_type, data (base64),
    disposition, content_id}. `base64: true` data must decode; otherwise it is UTF-8 text. A
    `content_id` in angle brackets makes the attachment inline (the contract's rule); the decoded
    total is limited to `max_bytes`."""
    checked: list[dict[str, Any]] = []
    total = 0
    for index, draft in enumerate(drafts):
        where = f"attachments[{index}]"
        if draft.base64:
            compact = "".join(draft.data.split())  # line-wrapped base64 is common
            try:
                raw = base64.b64decode(compact, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationFailed(
                    f"{where}.data is not valid base64 (base64 is true)", {"field": f"{where}.data"}
                ) from None
        else:
            raw = draft.data.encode("utf-8")
        total += len(raw)
        if total > max_bytes:
            raise ValidationFailed(
                f"attachments: {total} bytes or more once decoded; the limit is {max_bytes} bytes"
                " for all the attachments of a message",
                {"field": "attachments", "max": max_bytes},
            )
        file_name = draft.file_name.strip()
        if not file_name or header_text_problem(file_name, tab=False):
            raise ValidationFailed(
                f"{where}.file_name must be a non-empty name without control characters",
                {"field": f"{where}.file_name"},
            )
        content_type = draft.content_type.strip()
        if not _CONTENT_TYPE.fullmatch(content_type) or header_text_problem(content_type, tab=False):
            raise ValidationFailed(
                f"{where}.content_type is not a MIME type (type/subtype): {draft.content_type!r}",
                {"field": f"{where}.content_type"},
            )
        _check_content_type_params(content_type, where)
        content_id, disposition = _content_id(draft.content_id, where)
        if draft.content_disposition:
            disposition = draft.content_disposition.strip().lower()
            if disposition not in ("attachment", "inline"):
                raise ValidationFailed(
                    f"{where}.content_disposition must be attachment or inline",
                    {"field": f"{where}.content_disposition"},
                )
        checked.append(
            {
                "file_name": file_name,
                "content_type": content_type,
                "data": base64.b64encode(raw).decode("ascii"),
                "disposition": disposition,
                "content_id": content_id,
            }
        )
    return checked


def _check_content_type_params(content_type: str, where: str) -> None:
    """Parameters decode (RFC 2231 and encoded words) to text the MIME builder can write."""
    if ";" not in content_type:
        return
    from mailsage.domain.mime import content_type_parts  # only attachments with parameters need it

    try:
        content_type_parts(content_type)
    except ValueError as exc:
        raise ValidationFailed(f"{where}.content_type: {exc}", {"field": f"{where}.content_type"}) from None


def _content_id(value: str | None, where: str) -> tuple[str | None, str]:
    """(content id without brackets, default disposition)."""
    if value is None or not value.strip():
        return None, "attachment"
    text = value.strip()
    bracketed = text.startswith("<") and text.endswith(">")
    inner = text[1:-1].strip() if bracketed else text
    # Printable ASCII, and no '=?': parsers decode encoded words even in a Content-ID.
    if (
        not inner
        or not (inner.isascii() and inner.isprintable())
        or re.search(r"[\s<>]", inner)
        or "=?" in inner
    ):
        raise ValidationFailed(
            f"{where}.content_id must look like <name@domain>, got {value!r}",
            {"field": f"{where}.content_id"},
        )
    # Without angle brackets the contract delivers the file as a regular attachment.
    return inner, "inline" if bracketed else "attachment"


def check_schedule(
    first_attempt: datetime | None, expires: datetime | None, now: float
) -> tuple[float | None, float | None]:
    """`first_attempt` in the future and within 7 days; `expires` in the future, within 8 days
    and after `first_attempt`. A minute of clock skew is tolerated for `first_attempt`."""
    first = first_attempt.timestamp() if first_attempt else None
    until = expires.timestamp() if expires else None
    if first is not None:
        if first < now - 60:
            raise ValidationFailed(
                "schedule.first_attempt must be in the future", {"field": "schedule.first_attempt"}
            )
        if first > now + 7 * DAY:
            raise ValidationFailed(
                "schedule.first_attempt must be within 7 days of the request",
                {"field": "schedule.first_attempt"},
            )
    if until is not None:
        if until <= now:
            raise ValidationFailed("schedule.expires must be in the future", {"field": "schedule.expires"})
        if until > now + 8 * DAY:
            raise ValidationFailed(
                "schedule.expires must be within 8 days of the request", {"field": "schedule.expires"}
            )
        if first is not None and until <= first:
            raise ValidationFailed(
                "schedule.expires must be after schedule.first_attempt", {"field": "schedule.expires"}
            )
    return first, until
