"""Accepting work: validate and pre-render every recipient, persist the job, enqueue its chunks.

Render before you accept: a missing variable or a bad address is reported per recipient in the
reply, never discovered later by the sender.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from mailsage.domain.addresses import check_display_name, normalize_email, parse_mailbox
from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.events import Event, EventPublisher, message_event
from mailsage.domain.mailbox import sender_domain
from mailsage.domain.milestones import milestone
from mailsage.domain.models import (
    ChunkRef,
    Content,
    Job,
    JobKind,
    JobState,
    Message,
    MessageStatus,
    new_id,
    new_message_ids,
)
from mailsage.domain.pacing import lane_of
from mailsage.domain.providers import check_provider
from mailsage.domain.rendering import CompiledContent, check_content_size
from mailsage.domain.senders import check_sender
from mailsage.errors import (
    InvalidRecipient,
    MailSageError,
    ServiceUnavailable,
    TemplateError,
    ValidationFailed,
)
from mailsage.ports import (
    AccountStore,
    JobStore,
    Meter,
    NoMeter,
    Queue,
    Scheduler,
    SuppressionStore,
    TemplateStore,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecipientInput:
    email: str
    name: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class JobRequest:
    kind: str  # a JobKind value: "send" | "batch"
    recipients: list[RecipientInput]
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    template_id: str | None = None
    from_addr: str | None = None
    reply_to: str | None = None
    campaign_id: str | None = None
    provider: str | None = None
    strict: bool = False
    # AhaSend v2 features (also open to v1 callers through the domain)
    amp: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)  # already validated
    headers: dict[str, str] = field(default_factory=dict)  # already validated
    tags: list[str] = field(default_factory=list)
    sandbox_result: str | None = None
    tracking: dict[str, bool] | None = None
    # List-Unsubscribe: None decides by the kind of mail (batches and campaigns are bulk mail).
    unsubscribe: bool | None = None
    first_attempt_at: float | None = None
    expires_at: float | None = None
    retention_metadata_days: int | None = None
    retention_data_days: int | None = None


@dataclass(slots=True, frozen=True)
class Rejection:
    index: int
    email: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "email": self.email, "code": self.code, "message": self.message}


@dataclass(slots=True)
class Accepted:
    job: Job
    messages: list[Message]
    rejected: list[Rejection]


@dataclass(slots=True, frozen=True)
class SubmissionLimits:
    chunk_size: int = 50
    max_recipients: int = 1000
    max_variables_bytes: int = 16_384
    default_from: str = "MailSage <noreply@mailsage.example>"
    providers: frozenset[str] = frozenset({"default"})
    max_content_bytes: int = 300_000


class SubmissionService:
    """The story of a submission: validate, resolve sender and provider, pre-render every recipient,
    set aside the suppressed, build the job and its messages, persist, enqueue or schedule, publish."""

    def __init__(
        self,
        jobs: JobStore,
        templates: TemplateStore,
        accounts: AccountStore,
        suppressions: SuppressionStore,
        queue: Queue,
        limits: SubmissionLimits,
        scheduler: Scheduler | None = None,
        publisher: EventPublisher | None = None,
        message_id_domain: str | None = None,
        clock: Clock = system_clock,
        meter: Meter | None = None,
    ) -> None:
        self.jobs = jobs
        self.templates = templates
        self.accounts = accounts
        self.suppressions = suppressions
        self.queue = queue
        self.limits = limits
        self.scheduler = scheduler
        self.publisher = publisher
        self.message_id_domain = message_id_domain
        self.clock = clock
        self.meter = meter or NoMeter()

    def submit(self, account_id: str, request: JobRequest, job_id: str | None = None) -> Accepted:
        """Accept a request. `job_id` makes the call idempotent for callers that retry (the ingest
        queue delivers at least once): a second submit with the same id raises Conflict."""
        self._check_size(request)
        content = self._content(account_id, request)
        compiled = CompiledContent.of(content, self.limits.max_content_bytes)
        job_id = job_id or new_id("job")
        now = self.clock()
        messages, rejected = self._prerender(account_id, job_id, request, compiled, now)
        self._check_accepted(request, messages, rejected)
        scheduled = request.first_attempt_at is not None and request.first_attempt_at > now
        self._set_aside_suppressed(account_id, content, messages, now)
        sendable = self._assign_chunks(messages, scheduled)
        job = self._job(account_id, job_id, request, content, messages, sendable, scheduled, now)
        self.jobs.create_job(job, messages)
        self.meter.count("MessagesAccepted", len(messages))  # once stored: a retried submit counts once
        self.meter.count("MessagesSuppressed", len(messages) - sendable)
        self._start(job, request.first_attempt_at if scheduled else None)
        self._events(job, messages)
        milestone(job, "scheduled" if scheduled else "accepted")
        return Accepted(job, messages, rejected)

    # -- validate ---------------------------------------------------------------------------------

    def _check_size(self, request: JobRequest) -> None:
        if len(request.recipients) > self.limits.max_recipients:
            raise ValidationFailed(
                f"at most {self.limits.max_recipients} recipients per request, got {len(request.recipients)}",
                {"field": "recipients", "max": self.limits.max_recipients},
            )

    def _content(self, account_id: str, request: JobRequest) -> Content:
        subject, text, html = self._body(account_id, request)
        check_content_size(subject, text, html, self.limits.max_content_bytes, request.amp)
        from_addr, provider = self._sender_and_provider(account_id, request)
        return Content(
            subject=subject,
            text=text,
            html=html,
            amp=request.amp,
            attachments=request.attachments,
            headers=request.headers,
            tags=request.tags,
            sandbox_result=request.sandbox_result,
            tracking=request.tracking,
            unsubscribe=(
                request.unsubscribe
                if request.unsubscribe is not None
                else request.kind == JobKind.BATCH or request.campaign_id is not None
            ),
            from_addr=from_addr,
            reply_to=parse_mailbox(request.reply_to, "reply_to") if request.reply_to else None,
            template_id=request.template_id,
            provider=provider,
        )

    def _body(self, account_id: str, request: JobRequest) -> tuple[str, str | None, str | None]:
        """(subject, text, html): the request's own, or a copy of its template's."""
        subject, text, html = request.subject, request.text, request.html
        if request.template_id is not None:
            if text is not None or html is not None:
                raise ValidationFailed("give either template_id or body/html, not both")
            template = self.templates.get_template(account_id, request.template_id)
            if template is None:
                raise TemplateError(
                    f"template {request.template_id!r} does not exist", {"field": "template_id"}
                )
            # The job keeps a copy: editing the template later does not change mail already accepted.
            subject = subject if subject is not None else template.subject
            text, html = template.text, template.html
        elif text is None and html is None:
            raise ValidationFailed("give the content: body (text), html, or template_id")
        if not subject:
            raise ValidationFailed("subject is required", {"field": "subject"})
        return subject, text, html

    # -- resolve sender and provider --------------------------------------------------------------

    def _sender_and_provider(self, account_id: str, request: JobRequest) -> tuple[str, str | None]:
        check_provider(request.provider, self.limits.providers)
        from_addr = parse_mailbox(request.from_addr or self.limits.default_from, "from")
        account = self.accounts.get_account(account_id)
        # Whoever gave the From (the caller, or the deployment's default), the account's rule holds.
        check_sender(account, from_addr, "from")
        provider = request.provider
        if provider is None:
            provider = account.default_provider if account else None
        return from_addr, provider

    # -- pre-render every recipient ---------------------------------------------------------------

    def _prerender(
        self, account_id: str, job_id: str, request: JobRequest, compiled: CompiledContent, now: float
    ) -> tuple[list[Message], list[Rejection]]:
        """A message for every recipient that checks and renders; a rejection for each other one
        (a single send has nothing else to accept: its one error is the reply)."""
        messages: list[Message] = []
        rejected: list[Rejection] = []
        seen: dict[str, int] = {}
        for index, recipient in enumerate(request.recipients):
            try:
                email = self._check_recipient(recipient, seen, index)
                rendered = compiled.render(recipient.variables)
            except ServiceUnavailable:
                raise  # the store, not this recipient
            except MailSageError as exc:
                if request.kind == JobKind.SEND:
                    raise
                rejected.append(Rejection(index, recipient.email, exc.code, exc.message))
                continue
            seen[email.lower()] = index
            messages.append(
                Message(
                    id="",  # given once its chunk is known (_assign_chunks)
                    job_id=job_id,
                    account_id=account_id,
                    seq=index,
                    chunk=0,
                    email=email,
                    name=recipient.name,
                    variables=recipient.variables,
                    updated_at=now,
                    subject=rendered.subject,
                    created_at=now,
                )
            )
        return messages, rejected

    def _check_recipient(self, recipient: RecipientInput, seen: dict[str, int], index: int) -> str:
        email = normalize_email(recipient.email, sendable=True)
        check_display_name(recipient.name)
        if email.lower() in seen:
            raise InvalidRecipient(f"duplicate address: the same as recipient {seen[email.lower()]}")
        size = len(json.dumps(recipient.variables, separators=(",", ":")))
        if size > self.limits.max_variables_bytes:
            raise ValidationFailed(
                f"variables are {size} bytes; at most {self.limits.max_variables_bytes} per recipient"
            )
        return email

    @staticmethod
    def _check_accepted(request: JobRequest, messages: list[Message], rejected: list[Rejection]) -> None:
        details = {"rejected": [r.as_dict() for r in rejected]}
        if rejected and request.strict:
            raise ValidationFailed(
                f"{len(rejected)} of {len(request.recipients)} recipients were rejected (strict validation)",
                details,
            )
        if not messages:
            raise ValidationFailed("no valid recipients: nothing was accepted", details)

    # -- suppressions, chunks, the job ------------------------------------------------------------

    def _set_aside_suppressed(
        self, account_id: str, content: Content, messages: list[Message], now: float
    ) -> None:
        """Suppressed recipients get a message that ends `suppressed` at once: visible, never sent."""
        emails = [m.email for m in messages]
        suppressed = self.suppressions.suppressed(account_id, emails, sender_domain(content.from_addr), now)
        for message in messages:
            if message.email.lower() in suppressed:
                message.status, message.chunk = MessageStatus.SUPPRESSED, -1
                message.error_code, message.error_message = (
                    "suppressed",
                    "the recipient is on the suppression list",
                )

    def _assign_chunks(self, messages: list[Message], scheduled: bool) -> int:
        """Number the sendable messages into chunks and give every message its id; returns how many
        are sendable."""
        sendable = 0
        for message in messages:
            if message.status == MessageStatus.SUPPRESSED:
                continue
            message.chunk = sendable // self.limits.chunk_size
            message.status = MessageStatus.SCHEDULED if scheduled else MessageStatus.QUEUED
            sendable += 1
        # The ids of a chunk's messages share a prefix and hold their position (new_message_ids).
        by_chunk: dict[int, list[Message]] = {}
        for message in messages:
            by_chunk.setdefault(message.chunk, []).append(message)
        for members in by_chunk.values():
            for message, message_id in zip(members, new_message_ids(len(members)), strict=True):
                message.id = message_id
        return sendable

    def _job(
        self,
        account_id: str,
        job_id: str,
        request: JobRequest,
        content: Content,
        messages: list[Message],
        sendable: int,
        scheduled: bool,
        now: float,
    ) -> Job:
        counts: dict[str, int] = {}
        for message in messages:
            counts[message.status.value] = counts.get(message.status.value, 0) + 1
        return Job(
            id=job_id,
            account_id=account_id,
            kind=JobKind(request.kind),
            state=JobState.SCHEDULED if scheduled else JobState.QUEUED,
            content=content,
            total=len(messages),
            chunks=-(-sendable // self.limits.chunk_size),
            created_at=now,
            updated_at=now,
            campaign_id=request.campaign_id,
            counts=counts,
            first_attempt_at=request.first_attempt_at,
            expires_at=request.expires_at,
            retention_metadata_days=request.retention_metadata_days,
            retention_data_days=request.retention_data_days,
        )

    # -- enqueue or schedule, publish -------------------------------------------------------------

    def _start(self, job: Job, first_attempt_at: float | None) -> None:
        """Schedule a job due later, enqueue the chunks of one due now, or complete one with nothing
        to send (every recipient was suppressed)."""
        if first_attempt_at is not None:
            if self.scheduler is None:
                raise ValidationFailed("scheduled sending is not configured in this deployment")
            self.scheduler.schedule(job.id, first_attempt_at, start_ref(job.account_id, job.id))
        elif job.chunks:
            enqueue_chunks(self.queue, job.account_id, job.id, range(job.chunks), lane=lane_of(job))
        else:
            self.jobs.complete_job_if_done(job.id)

    def _events(self, job: Job, messages: list[Message]) -> None:
        """message.reception for every accepted message, message.suppressed for those suppressed
        at once; built only if some endpoint of the account subscribes to them."""
        if self.publisher is None:
            return
        events: list[Event] = []
        for type_, wanted in (
            ("message.reception", lambda m: True),
            ("message.suppressed", lambda m: m.status == MessageStatus.SUPPRESSED),
        ):
            if self.publisher.interested(job.account_id, type_):
                events.extend(self._message_event(type_, job, m) for m in filter(wanted, messages))
        if not events:
            return
        try:
            self.publisher.publish(events)
        except Exception:  # the job is stored: a webhook failure must not fail its acceptance
            log.exception("could not enqueue %d webhook deliveries", len(events))

    def _message_event(self, type_: str, job: Job, message: Message) -> Event:
        return message_event(
            type_,
            account_id=job.account_id,
            message_id=message.id,
            recipient=message.email,
            from_addr=job.content.from_addr,
            subject=message.subject,
            message_id_domain=self.message_id_domain,
        )


START_CHUNK = -1  # a queue message with this chunk number starts a scheduled job


def start_ref(account_id: str, job_id: str) -> dict[str, Any]:
    """What the scheduler puts on the send queue at a scheduled job's first attempt."""
    return ChunkRef(account_id, job_id, START_CHUNK).to_dict()


def enqueue_chunks(
    queue: Queue,
    account_id: str,
    job_id: str,
    chunks: Any,
    delay_seconds: float = 0.0,
    lane: str = "bulk",
) -> None:
    """Put chunks on the send queue; `lane` ("transactional" or "bulk") rides in each body so the
    queue can put it in its lane."""
    refs = [ChunkRef(account_id, job_id, c) for c in chunks]
    if refs:
        bodies = [r.to_dict() | ({"lane": lane} if lane != "bulk" else {}) for r in refs]
        queue.send(bodies, [r.dedup_key for r in refs], delay_seconds=delay_seconds)
