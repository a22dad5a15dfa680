"""Messages one at a time, independent of HTTP and of any API's names: a create-message draft
becomes a `JobRequest` for the one submission engine; a message is shown with its Message-ID
header, its retention and its content (the very message sent, domain/composition.py); listing,
lookup by either form of id, and cancelling.

Decisions where the contract leaves room:
- one entry per recipient in request order; a recipient that cannot be sent (bad address, template
  error, duplicate, suppressed) is an `error` entry while the others go out, and when every
  recipient fails the reply is still 202 with every entry an error (nothing is queued);
- `id` in the create reply is the Message-ID header `<uuid@host>` (as the contract's example
  shows), the host being the sender's domain unless the deployment sets `message_id_domain`
  (domain/mailbox.py); lookups and cancels accept it with any host, or the bare UUID.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from mailsage.domain.addresses import format_mailbox
from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.header_values import header_text_problem
from mailsage.domain.mailbox import Mailbox, message_id_header, sender_domain
from mailsage.domain.message_drafts import (
    DAY,
    SANDBOX_RESULTS,
    MessageDraft,
    check_attachments,
    check_header_texts,
    check_headers,
    check_schedule,
)
from mailsage.domain.models import MESSAGE_UNSENT, Job, Message, MessageQuery, MessageStatus
from mailsage.domain.rendering import CompiledContent
from mailsage.domain.senders import ascii_mailbox, check_sender
from mailsage.domain.submission import Accepted, JobRequest, RecipientInput, SubmissionService
from mailsage.domain.suppressions import check_email
from mailsage.domain.tracking import Signer, TrackedLinks
from mailsage.errors import MailSageError, NotFound, ValidationFailed
from mailsage.ports import AccountStore, JobStore, MessageStore, Scheduler


def bare_message_id(value: str) -> str:
    """The message id from a path or filter value: `<uuid@host>` (raw or URL-encoded) or `uuid`."""
    text = unquote(value).strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text.partition("@")[0] if "@" in text else text


def domain_id(domain: str) -> str:
    """A stable UUID for a sender domain (the contract's `domain_id`)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, domain.lower() or "unknown.invalid"))


# -- queries, results and views ---------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class StatusFilter:
    statuses: frozenset[MessageStatus]
    sandbox: bool | None  # None: sandbox or not

    def matches(self, status: MessageStatus, sandbox: bool) -> bool:
        return status in self.statuses and (self.sandbox is None or self.sandbox == sandbox)


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
    """A message as it is shown: with its job's sender, tags and sandbox flag."""

    message: Message
    sandbox: bool  # sent (or to be sent) by the sandbox transport
    message_id_header: str
    sender: str
    sender_domain_id: str
    tags: list[str]
    retain_until: float | None  # None: kept until deleted
    content: bytes | None = None  # the RFC 5322 message, while retention keeps the data


@dataclass(slots=True, frozen=True)
class MessageListQuery:
    statuses: tuple[StatusFilter, ...] = ()  # any of them; () for every status
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
class MessagesLimits:
    max_attachment_bytes: int = 3 * 1024 * 1024
    message_id_domain: str | None = None  # None: the sender's domain
    retention_days: int | None = None  # the deployment's retention when a job sets none
    max_tag_filters: int = 20


class NotCancellable(ValidationFailed):
    """A cancel that came too late: the message is past `scheduled` (its status says where)."""

    def __init__(self, status: MessageStatus, sandbox: bool) -> None:
        super().__init__(
            f"the message is {status.value}: only a scheduled message can be cancelled, before its first attempt",
            {"status": status.value},
        )
        self.status = status
        self.sandbox = sandbox


_SCAN_PAGE = 100  # messages per store call when the listing filters further than the store can


class MessagesService:
    def __init__(
        self,
        accounts: AccountStore,
        jobs: JobStore,
        messages: MessageStore,
        submission: SubmissionService,
        limits: MessagesLimits,
        scheduler: Scheduler | None = None,
        links: TrackedLinks | None = None,
        clock: Clock = system_clock,
        request_signer: Signer | None = None,
    ) -> None:
        self.accounts = accounts
        self.jobs = jobs
        self.messages = messages
        self.submission = submission
        self.limits = limits
        self.scheduler = scheduler
        self.links = links  # what the sender tracks with: the content shown is the one sent
        self.clock = clock
        # Without `links`: the key the sender signs with when its public URL is the one each
        # request reaches this API at (on AWS, where the api function is not told its own URL).
        self.request_signer = request_signer

    # -- create ------------------------------------------------------------------------------------
    def create(self, account_id: str, draft: MessageDraft) -> Created:
        request = self._job_request(account_id, draft, self.clock())
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
            first_attempt_at=request.first_attempt_at,
            expires_at=request.expires_at,
            scheduled=scheduled,
        )

    def _job_request(self, account_id: str, draft: MessageDraft, now: float) -> JobRequest:
        """The draft checked (a 400 for what the request itself got wrong), as a batch request."""
        from_addr, reply_to = self._envelope(account_id, draft)
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
        return JobRequest(
            kind="batch",  # one message per recipient; a failing recipient does not fail the others
            recipients=[
                RecipientInput(r.email, r.name, {**draft.substitutions, **(r.substitutions or {})})
                for r in draft.recipients
            ],
            subject=draft.subject,
            text=draft.text or None,
            html=draft.html or None,
            amp=draft.amp or None,
            from_addr=from_addr,
            reply_to=reply_to,
            attachments=attachments,
            headers=headers,
            tags=list(draft.tags),
            sandbox_result=(draft.sandbox_result or "deliver") if draft.sandbox else None,
            tracking=draft.tracking,
            # A message to several recipients is bulk mail; to one, transactional.
            unsubscribe=len(draft.recipients) > 1,
            first_attempt_at=first_attempt_at,
            expires_at=expires_at,
            retention_metadata_days=draft.retention_metadata_days,
            retention_data_days=draft.retention_data_days,
        )

    def _envelope(self, account_id: str, draft: MessageDraft) -> tuple[str, str | None]:
        """(From, Reply-To) as stored mailboxes, checked in the order the fields are reported."""
        from_email = ascii_mailbox(check_email(draft.from_email, "from.email"), "from.email")
        # Checked first (as before any other field), then again by submission on every way in.
        check_sender(self.accounts.get_account(account_id), from_email, "from.email")
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
        return format_mailbox(draft.from_name, from_email), reply_to

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
            elif message.status == MessageStatus.SUPPRESSED:
                # Kept (listed with status Suppressed) but never sent: an error entry with its id.
                status, error = "error", message.error_message or "the recipient is suppressed"
                message_id = self.message_id_header(message.id, draft.from_email)
            else:
                status = "scheduled" if message.status == MessageStatus.SCHEDULED else "queued"
                error, message_id = None, self.message_id_header(message.id, draft.from_email)
            entries.append(
                CreatedEntry(
                    recipient.email, recipient.name, recipient.substitutions, status, message_id, error
                )
            )
        return entries

    # -- read --------------------------------------------------------------------------------------
    def message_id_header(self, message_id: str, from_addr: str) -> str:
        """The Message-ID the message is (or was) sent with: the same as the sender composes."""
        return message_id_header(message_id, from_addr, self.limits.message_id_domain)

    def get(self, account_id: str, message_id: str, base_url: str | None = None) -> MessageView:
        """One message with its content (composed again while retention keeps the data).
        `base_url`: the API's URL as the request reached it, which tracked links use when the
        service was given no `links` but a `request_signer`."""
        message = self._find(account_id, message_id)
        job = self.jobs.get_job(account_id, message.job_id, with_counts=False)
        view = self._view(message, job)
        view.content = self._content(message, job, self.clock(), self._links(base_url))
        return view

    def _links(self, base_url: str | None) -> TrackedLinks | None:
        if self.links is not None or self.request_signer is None or not base_url:
            return self.links
        return TrackedLinks(self.request_signer, base_url.rstrip("/"))

    def list_messages(self, account_id: str, query: MessageListQuery) -> MessagePage:
        if query.after and query.before:
            raise ValidationFailed("give either after or before, not both", {"field": "after"})
        if len(query.tags) > self.limits.max_tag_filters:
            raise ValidationFailed(
                f"tags: at most {self.limits.max_tag_filters} tags per filter", {"field": "tags"}
            )
        cursor = query.after or query.before
        if cursor is not None:
            cursor = bare_message_id(cursor)
            if self.messages.get_message(account_id, cursor) is None:
                which = "after" if query.after else "before"
                raise ValidationFailed(f"{which}: not a cursor of this listing", {"field": which})
        # Senders are stored with A-label domains (ascii_mailbox): a Unicode filter finds them too.
        sender = (
            ascii_mailbox(query.sender.strip(), "sender").lower()
            if query.sender and query.sender.strip()
            else None
        )
        jobs = _JobCache(self.jobs, account_id)
        keep = _listed(query.statuses, sender, jobs)
        backwards = query.before is not None
        found, extra = self._scan(
            account_id, _store_query(query, sender), cursor, backwards, query.limit, keep
        )
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
            page, more = self.messages.list_messages(
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
        message = self.messages.get_message(account_id, bare_message_id(message_id))
        if message is None:
            raise NotFound(f"message {message_id} not found")
        return message

    def _view(self, message: Message, job: Job | None) -> MessageView:
        sender = _sender(job) if job is not None else ""
        return MessageView(
            message=message,
            sandbox=bool(job and job.content.sandbox_result),
            message_id_header=self.message_id_header(message.id, job.content.from_addr if job else ""),
            sender=sender,
            sender_domain_id=domain_id(sender_domain(sender) or ""),
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

    def _content(
        self, message: Message, job: Job | None, now: float, links: TrackedLinks | None
    ) -> bytes | None:
        """The message as it was sent (or will be): composed as the sender composes it."""
        if job is None or (job.content.text is None and job.content.html is None):
            return None  # purged with the job's data
        finished = _finished_at(message)
        days = job.retention_data_days
        if days is not None and finished is not None and now >= finished + days * DAY:
            return None  # past retention.data: purged, or about to be
        from mailsage.domain.composition import Composer  # only a message lookup needs MIME

        try:
            composer = Composer(self.limits.message_id_domain, links)
            return composer.compose(job, message, CompiledContent.of(job.content))
        except (MailSageError, ValueError):
            return None  # the data is not all there any more

    # -- cancel ------------------------------------------------------------------------------------
    def cancel(self, account_id: str, message_id: str) -> Message:
        """Cancel a scheduled message before its first attempt; NotCancellable (a 400) otherwise."""
        message = self._find(account_id, message_id)
        if not self.messages.cancel_message(account_id, message.id):
            current = self.messages.get_message(account_id, message.id) or message
            job = self.jobs.get_job(account_id, message.job_id, with_counts=False)
            raise NotCancellable(current.status, bool(job and job.content.sandbox_result))
        if self.jobs.complete_job_if_done(message.job_id) and self.scheduler is not None:
            self.scheduler.delete(message.job_id)  # nothing left to start
        return self.messages.get_message(account_id, message.id) or message


class _JobCache:
    def __init__(self, jobs: JobStore, account_id: str) -> None:
        self.store = jobs
        self.account_id = account_id
        self.jobs: dict[str, Job | None] = {}

    def get(self, job_id: str) -> Job | None:
        if job_id not in self.jobs:
            self.jobs[job_id] = self.store.get_job(self.account_id, job_id, with_counts=False)
        return self.jobs[job_id]


def _store_query(query: MessageListQuery, sender: str | None) -> MessageQuery:
    """What the store filters itself; the rest is `_listed`'s."""
    return MessageQuery(
        statuses=tuple(sorted({s.value for f in query.statuses for s in f.statuses})),
        sender=sender,
        recipient=query.recipient.strip() if query.recipient and query.recipient.strip() else None,
        subject=query.subject or None,
        message_id=bare_message_id(query.message_id_header) if query.message_id_header else None,
        tags=query.tags,
        from_time=query.from_time,
        to_time=query.to_time,
    )


def _listed(
    filters: tuple[StatusFilter, ...], sender: str | None, jobs: _JobCache
) -> Callable[[Message], bool]:
    """Whether a message the store found is listed: its status with its job's sandbox flag, and
    its job's sender address (the store matches the sender as a substring of From)."""

    def keep(m: Message) -> bool:
        job = jobs.get(m.job_id)
        sandbox = bool(job and job.content.sandbox_result)
        if filters and not any(f.matches(m.status, sandbox) for f in filters):
            return False
        return sender is None or (job is not None and _sender(job).lower() == sender)

    return keep


def _sender(job: Job) -> str:
    return Mailbox.parse(job.content.from_addr).address


def _finished_at(message: Message) -> float | None:
    """When the sender was done with the message (retention.data counts from then)."""
    if message.sent_at is not None:
        return message.sent_at
    if message.status not in MESSAGE_UNSENT and message.events:
        return message.updated_at
    return None
