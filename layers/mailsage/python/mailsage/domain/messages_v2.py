"""The AhaSend v2 message surface as domain logic, independent of HTTP: a create-message draft
becomes a `JobRequest` for the one submission engine; messages are shown with the v2 status names,
Message-ID headers and retention; listing, lookup by either form of id, and cancelling.

Decisions where the contract leaves room:
- one entry per recipient in request order; a recipient that cannot be sent (bad address, template
  error, duplicate, suppressed) is an `error` entry while the others go out, and when every
  recipient fails the reply is still 202 with every entry an error (nothing is queued);
- `id` in the create reply is the Message-ID header `<uuid@message_id_domain>` (as the contract's
  example shows); lookups and cancels accept it or the bare UUID;
- `sandbox_result` applies only with `sandbox: true` (default `deliver`).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import unquote

from mailsage.domain.addresses import format_mailbox
from mailsage.domain.header_values import header_text_problem
from mailsage.domain.models import MESSAGE_UNSENT, Job, Message, MessageQuery, MessageStatus
from mailsage.domain.rendering import CompiledContent
from mailsage.domain.senders import ascii_mailbox, check_sender
from mailsage.domain.submission import Accepted, JobRequest, RecipientInput, SubmissionService
from mailsage.domain.suppressions import check_email
from mailsage.errors import MailSageError, NotFound, ValidationFailed
from mailsage.ports import Scheduler, Store

DAY = 86_400.0


# -- status names -------------------------------------------------------------------------------

S = MessageStatus
STATUS_NAMES: dict[MessageStatus, str] = {
    S.QUEUED: "Queued",
    S.SCHEDULED: "Scheduled",
    S.SENDING: "Processing",
    S.SENT: "Sent",
    S.DELIVERED: "Delivered",
    S.DEFERRED: "Deferred",
    S.BOUNCED: "Bounced",
    S.COMPLAINED: "Complained",
    S.FAILED: "Failed",
    S.SUPPRESSED: "Suppressed",
    S.CANCELLED: "Cancelled",
    S.EXPIRED: "Expired",
}
# Outcomes a sandbox message reports as "Sandbox <name>" (the contract's five).
SANDBOX_OUTCOMES = frozenset({S.DELIVERED, S.DEFERRED, S.BOUNCED, S.FAILED, S.SUPPRESSED})


def status_name(status: MessageStatus, sandbox: bool) -> str:
    name = STATUS_NAMES[status]
    return f"Sandbox {name}" if sandbox and status in SANDBOX_OUTCOMES else name


@dataclass(slots=True, frozen=True)
class StatusFilter:
    statuses: frozenset[MessageStatus]
    sandbox: bool | None  # None: sandbox or not

    def matches(self, status: MessageStatus, sandbox: bool) -> bool:
        return status in self.statuses and (self.sandbox is None or self.sandbox == sandbox)


def _status_filters() -> dict[str, StatusFilter]:
    names: dict[str, StatusFilter] = {}
    for status, name in STATUS_NAMES.items():
        if status in SANDBOX_OUTCOMES:
            names[name.lower()] = StatusFilter(frozenset({status}), False)
            names[f"sandbox {name.lower()}"] = StatusFilter(frozenset({status}), True)
        else:
            names[name.lower()] = StatusFilter(frozenset({status}), None)
    names["canceled"] = names["cancelled"]
    # AhaSend's "Received": accepted, not yet handed to a provider.
    names["received"] = StatusFilter(frozenset({S.QUEUED, S.SCHEDULED, S.SENDING}), None)
    return names


_STATUS_FILTERS = _status_filters()


def parse_status_filter(value: str) -> tuple[StatusFilter, ...]:
    """`status=Bounced,Sandbox Delivered` -> filters; unknown names are a 400 listing the known ones."""
    filters = []
    for raw in value.split(","):
        name = " ".join(raw.split()).lower()
        if not name:
            continue
        found = _STATUS_FILTERS.get(name)
        if found is None:
            known = ", ".join(
                [
                    "Received",
                    *STATUS_NAMES.values(),
                    *(f"Sandbox {STATUS_NAMES[s]}" for s in SANDBOX_OUTCOMES),
                ]
            )
            raise ValidationFailed(
                f"status: unknown status {raw.strip()!r}; known: {known}", {"field": "status"}
            )
        filters.append(found)
    return tuple(filters)


# -- values ----------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: str, field: str) -> datetime:
    """An RFC 3339 date-time with its offset (`2023-12-25T10:30:00Z`), or ValidationFailed."""
    text = value.strip()
    try:
        if not _RFC3339.fullmatch(text):
            raise ValueError(text)
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValidationFailed(
            f"{field} must be an RFC 3339 date-time with an offset, e.g. 2023-12-25T10:30:00Z; got {value!r}",
            {"field": field},
        ) from None


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 in UTC (`2023-12-25T10:30:00.123456Z`)."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def bare_message_id(value: str) -> str:
    """The message id from a path or filter value: `<uuid@host>` (raw or URL-encoded) or `uuid`."""
    text = unquote(value).strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text.partition("@")[0] if "@" in text else text


def domain_id(domain: str) -> str:
    """A stable UUID for a sender domain (the contract's `domain_id`)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, domain.lower() or "unknown.invalid"))


# -- the create-message draft ----------------------------------------------------------------------


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


# -- results and views ------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class CreatedEntry:
    """One recipient of a create-message request, in request order."""

    email: str
    name: str | None
    substitutions: dict[str, Any] | None
    status: str  # "queued" | "scheduled" | "error"
    message_id: str | None  # the Message-ID header `<uuid@domain>`; None when nothing was created
    error: str | None


@dataclass(slots=True, frozen=True)
class Created:
    entries: list[CreatedEntry]
    first_attempt_at: float | None
    expires_at: float | None
    scheduled: bool  # the request had a schedule (the reply echoes it)


@dataclass(slots=True)
class MessageView:
    """A message as the v2 surface shows it."""

    message: Message
    status: str  # the v2 name: Delivered, Sandbox Bounced, ...
    message_id_header: str
    sender: str
    sender_domain_id: str
    tags: list[str]
    retain_until: float | None  # None: kept until deleted
    content: bytes | None = None  # the RFC 5322 message, while retention keeps the data


@dataclass(slots=True, frozen=True)
class MessageListQuery:
    statuses: str | None = None  # comma-separated v2 names
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    message_id_header: str | None = None
    tags: tuple[str, ...] = ()
    from_time: float | None = None
    to_time: float | None = None
    limit: int = 100
    after: str | None = None
    before: str | None = None


@dataclass(slots=True, frozen=True)
class MessagePage:
    items: list[MessageView]
    has_more: bool
    next_cursor: str | None
    previous_cursor: str | None


@dataclass(slots=True, frozen=True)
class MessagesV2Limits:
    max_attachment_bytes: int = 3 * 1024 * 1024
    message_id_domain: str = "mailsage.local"
    retention_days: int | None = None  # the deployment's retention when a job sets none
    max_tag_filters: int = 20


_SCAN_PAGE = 100  # messages per store call when the listing filters further than the store can


class MessagesV2Service:
    def __init__(
        self,
        store: Store,
        submission: SubmissionService,
        limits: MessagesV2Limits,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.store = store
        self.submission = submission
        self.limits = limits
        self.scheduler = scheduler

    # -- create ------------------------------------------------------------------------------------
    def create(self, account_id: str, draft: MessageDraft, now: float | None = None) -> Created:
        now = time.time() if now is None else now
        from_email = ascii_mailbox(check_email(draft.from_email, "from.email"), "from.email")
        # Checked first (as before any other field), then again by submission on every way in.
        check_sender(self.store.get_account(account_id), from_email, "from.email")
        for name, value in (("from.name", draft.from_name), ("reply_to.name", draft.reply_to_name)):
            problem = header_text_problem(value, tab=False)
            if problem:
                raise ValidationFailed(f"{name} must not contain {problem}", {"field": name})
        # The request's own text is a 400; only what a substitution renders is per recipient.
        check_header_texts(draft)
        reply_to = None
        if draft.reply_to_email is not None:
            reply_to = format_mailbox(
                draft.reply_to_name,
                ascii_mailbox(check_email(draft.reply_to_email, "reply_to.email"), "reply_to.email"),
            )
        if not (draft.text or draft.html):
            raise ValidationFailed(
                "either text_content or html_content is required", {"field": "text_content"}
            )
        headers = check_headers(draft.headers, reply_to is not None)
        attachments = check_attachments(draft.attachments, self.limits.max_attachment_bytes)
        first_attempt_at, expires_at = check_schedule(draft.first_attempt, draft.expires, now)
        if draft.sandbox_result is not None and draft.sandbox_result not in SANDBOX_RESULTS:
            raise ValidationFailed(
                f"sandbox_result must be one of {', '.join(SANDBOX_RESULTS)}", {"field": "sandbox_result"}
            )
        sandbox_result = (draft.sandbox_result or "deliver") if draft.sandbox else None

        request = JobRequest(
            kind="batch",  # one message per recipient; a failing recipient does not fail the others
            recipients=[
                RecipientInput(r.email, r.name, {**draft.substitutions, **(r.substitutions or {})})
                for r in draft.recipients
            ],
            subject=draft.subject,
            text=draft.text or None,
            html=draft.html or None,
            amp=draft.amp or None,
            from_addr=format_mailbox(draft.from_name, from_email),
            reply_to=reply_to,
            attachments=attachments,
            headers=headers,
            tags=list(draft.tags),
            sandbox_result=sandbox_result,
            tracking=draft.tracking,
            # A message to several recipients is bulk mail; to one, transactional.
            unsubscribe=len(draft.recipients) > 1,
            first_attempt_at=first_attempt_at,
            expires_at=expires_at,
            retention_metadata_days=draft.retention_metadata_days,
            retention_data_days=draft.retention_data_days,
        )
        accepted: Accepted | None = None
        all_failed: dict[int, str] = {}
        try:
            accepted = self.submission.submit(account_id, request)
        except ValidationFailed as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            if not details.get("rejected"):
                raise
            # Every recipient failed: still one error entry each (nothing was accepted).
            all_failed = {r["index"]: r["message"] for r in details["rejected"]}
        scheduled = draft.first_attempt is not None or draft.expires is not None
        return Created(
            entries=self._entries(draft, accepted, all_failed),
            first_attempt_at=first_attempt_at,
            expires_at=expires_at,
            scheduled=scheduled,
        )

    def _entries(
        self, draft: MessageDraft, accepted: Accepted | None, all_failed: dict[int, str]
    ) -> list[CreatedEntry]:
        by_index: dict[int, Message] = {}
        errors: dict[int, str] = dict(all_failed)
        if accepted is not None:
            by_index = {m.seq: m for m in accepted.messages}
            errors.update({r.index: r.message for r in accepted.rejected})
        entries = []
        for index, recipient in enumerate(draft.recipients):
            message = by_index.get(index)
            if message is None:
                status, error, message_id = "error", errors.get(index, "not accepted"), None
            elif message.status == S.SUPPRESSED:
                # Kept (listed with status Suppressed) but never sent: an error entry with its id.
                status, error = "error", message.error_message or "the recipient is suppressed"
                message_id = self.message_id_header(message.id)
            else:
                status = "scheduled" if message.status == S.SCHEDULED else "queued"
                error, message_id = None, self.message_id_header(message.id)
            entries.append(
                CreatedEntry(
                    recipient.email, recipient.name, recipient.substitutions, status, message_id, error
                )
            )
        return entries

    # -- read --------------------------------------------------------------------------------------
    def message_id_header(self, message_id: str) -> str:
        return f"<{message_id}@{self.limits.message_id_domain}>"

    def get(self, account_id: str, message_id: str, now: float | None = None) -> MessageView:
        """One message with its content (rebuilt from the job while retention keeps the data)."""
        message = self._find(account_id, message_id)
        job = self.store.get_job(account_id, message.job_id, with_counts=False)
        view = self._view(message, job)
        view.content = self._content(message, job, time.time() if now is None else now)
        return view

    def list_messages(self, account_id: str, query: MessageListQuery) -> MessagePage:
        if query.after and query.before:
            raise ValidationFailed("give either after or before, not both", {"field": "after"})
        if len(query.tags) > self.limits.max_tag_filters:
            raise ValidationFailed(
                f"tags: at most {self.limits.max_tag_filters} tags per filter", {"field": "tags"}
            )
        filters = parse_status_filter(query.statuses) if query.statuses else ()
        cursor = query.after or query.before
        if cursor is not None:
            cursor = bare_message_id(cursor)
            if self.store.get_message(account_id, cursor) is None:
                which = "after" if query.after else "before"
                raise ValidationFailed(f"{which}: not a cursor of this listing", {"field": which})
        # Senders are stored with A-label domains (ascii_mailbox): a Unicode filter finds them too.
        sender = (
            ascii_mailbox(query.sender.strip(), "sender").lower()
            if query.sender and query.sender.strip()
            else None
        )
        base = MessageQuery(
            statuses=tuple(sorted({s.value for f in filters for s in f.statuses})),
            sender=sender,
            recipient=query.recipient.strip() if query.recipient and query.recipient.strip() else None,
            subject=query.subject or None,
            message_id=bare_message_id(query.message_id_header) if query.message_id_header else None,
            tags=query.tags,
            from_time=query.from_time,
            to_time=query.to_time,
        )
        jobs = _JobCache(self.store, account_id)

        def keep(m: Message) -> bool:
            job = jobs.get(m.job_id)
            sandbox = bool(job and job.content.sandbox_result)
            if filters and not any(f.matches(m.status, sandbox) for f in filters):
                return False
            # The store matches the sender as a substring of From; the filter is the address.
            return sender is None or (job is not None and _sender(job).lower() == sender)

        backwards = query.before is not None
        found, extra = self._scan(account_id, base, cursor, backwards, query.limit, keep)
        items = [self._view(m, jobs.get(m.job_id)) for m in found]
        if backwards:
            return MessagePage(
                items=items,
                has_more=bool(items),  # the cursor's message itself comes after this page
                next_cursor=found[-1].id if found else None,
                previous_cursor=found[0].id if extra and found else None,
            )
        return MessagePage(
            items=items,
            has_more=extra,
            next_cursor=found[-1].id if extra and found else None,
            previous_cursor=found[0].id if query.after and found else None,
        )

    def _scan(
        self,
        account_id: str,
        base: MessageQuery,
        cursor: str | None,
        backwards: bool,
        limit: int,
        keep: Callable[[Message], bool],
    ) -> tuple[list[Message], bool]:
        """Up to `limit` kept messages going away from `cursor` (newest first, or, backwards, oldest
        first), and whether more would follow. Store pages are read until the page is full."""
        found: list[Message] = []
        while True:
            page, more = self.store.list_messages(
                account_id,
                replace(
                    base,
                    limit=_SCAN_PAGE,
                    after=None if backwards else cursor,
                    before=cursor if backwards else None,
                ),
            )
            ordered = list(reversed(page)) if backwards else page  # away from the cursor
            for message in ordered:
                if keep(message):
                    if len(found) == limit:
                        return (found[::-1] if backwards else found), True
                    found.append(message)
            if not more or not page:
                return (found[::-1] if backwards else found), False
            cursor = ordered[-1].id

    def _find(self, account_id: str, message_id: str) -> Message:
        message = self.store.get_message(account_id, bare_message_id(message_id))
        if message is None:
            raise NotFound(f"message {message_id} not found")
        return message

    def _view(self, message: Message, job: Job | None) -> MessageView:
        sender = _sender(job) if job is not None else ""
        return MessageView(
            message=message,
            status=status_name(message.status, bool(job and job.content.sandbox_result)),
            message_id_header=self.message_id_header(message.id),
            sender=sender,
            sender_domain_id=domain_id(sender.rpartition("@")[2]),
            tags=list(job.content.tags) if job is not None else [],
            retain_until=self._retain_until(message, job),
        )

    def _retain_until(self, message: Message, job: Job | None) -> float | None:
        """When the message's data goes: `retention.data` days after it was sent (or is due to be),
        else with the whole record after `retention.metadata` days, else the deployment's."""
        if job is not None and job.retention_data_days is not None:
            start = _finished_at(message) or job.first_attempt_at or message.created_at
            return start + job.retention_data_days * DAY
        if job is not None and job.retention_metadata_days is not None:
            return message.created_at + job.retention_metadata_days * DAY
        if self.limits.retention_days:
            return message.created_at + self.limits.retention_days * DAY
        return None

    def _content(self, message: Message, job: Job | None, now: float) -> bytes | None:
        if job is None or (job.content.text is None and job.content.html is None):
            return None  # purged with the job's data
        finished = _finished_at(message)
        days = job.retention_data_days
        if days is not None and finished is not None and now >= finished + days * DAY:
            return None  # past retention.data: purged, or about to be
        from mailsage.domain.mime import build_message  # only a message lookup needs it

        try:
            rendered = CompiledContent.of(job.content).render(message.variables)
            return build_message(
                rendered,
                from_addr=job.content.from_addr,
                to_email=message.email,
                to_name=message.name,
                reply_to=job.content.reply_to,
                message_id=self.message_id_header(message.id),
                headers={
                    **job.content.headers,
                    "X-MailSage-Job-ID": job.id,
                    "X-MailSage-Message-ID": message.id,
                },
                attachments=job.content.attachments,
            )
        except (MailSageError, ValueError):
            return None  # the data is not all there any more

    # -- cancel ------------------------------------------------------------------------------------
    def cancel(self, account_id: str, message_id: str) -> Message:
        """Cancel a scheduled message before its first attempt; 400 saying why otherwise."""
        message = self._find(account_id, message_id)
        if not self.store.cancel_message(account_id, message.id):
            current = self.store.get_message(account_id, message.id) or message
            job = self.store.get_job(account_id, message.job_id, with_counts=False)
            name = status_name(current.status, bool(job and job.content.sandbox_result))
            raise ValidationFailed(
                f"the message is {name}: only a scheduled message can be cancelled, before its first attempt",
                {"status": current.status.value},
            )
        if self.store.complete_job_if_done(message.job_id) and self.scheduler is not None:
            self.scheduler.delete(message.job_id)  # nothing left to start
        return self.store.get_message(account_id, message.id) or message


class _JobCache:
    def __init__(self, store: Store, account_id: str) -> None:
        self.store = store
        self.account_id = account_id
        self.jobs: dict[str, Job | None] = {}

    def get(self, job_id: str) -> Job | None:
        if job_id not in self.jobs:
            self.jobs[job_id] = self.store.get_job(self.account_id, job_id, with_counts=False)
        return self.jobs[job_id]


def _sender(job: Job) -> str:
    return parseaddr(job.content.from_addr)[1]


def _finished_at(message: Message) -> float | None:
    """When the sender was done with the message (retention.data counts from then)."""
    if message.sent_at is not None:
        return message.sent_at
    if message.status not in MESSAGE_UNSENT and message.events:
        return message.updated_at
    return None


def split_list(values: Iterable[str]) -> tuple[str, ...]:
    """`tags=a,b&tags=c` -> ("a", "b", "c"): comma-separated, repeated, or both."""
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())
