"""Domain models: plain dataclasses, independent of the API and of how adapters store them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    EXPIRED = "expired"


JOB_FINAL = frozenset({JobState.COMPLETED, JobState.STOPPED, JobState.EXPIRED})


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# Statuses from which a message may still be sent. Everything else is past the point of sending.
MESSAGE_UNSENT = frozenset({MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.SENDING})


class JobKind(StrEnum):
    SEND = "send"  # one message to one or more recipients (all fail or succeed together at submit)
    BATCH = "batch"  # one message per recipient; a failing recipient does not fail the others


class IdempotencyState(StrEnum):
    IN_PROGRESS = "in_progress"
    DONE = "done"


class WebhookScope(StrEnum):
    GLOBAL = "global"  # every event of the account
    SCOPED = "scoped"  # only events of mail from one of the webhook's domains


WEBHOOK_SECRET_PREFIX = "whsec_"  # both schemes' secrets start so (domain/webhooks.py makes them)


class WebhookSigning(StrEnum):
    """How a webhook's secret becomes the HMAC key of its `webhook-signature` header."""

    # Standard Webhooks: the secret is "whsec_" + base64, the key is the decoded bytes (v1)
    STANDARD = "standard"
    # AhaSend: the key is the secret's literal UTF-8 bytes, prefix and all (v2; older webhooks)
    LITERAL = "literal"


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventType(StrEnum):
    """Every event a webhook can subscribe to (EVENT_FLAGS gives each its AhaSend flag)."""

    MESSAGE_RECEPTION = "message.reception"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_TRANSIENT_ERROR = "message.transient_error"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_BOUNCED = "message.bounced"
    MESSAGE_SUPPRESSED = "message.suppressed"
    MESSAGE_OPENED = "message.opened"
    MESSAGE_CLICKED = "message.clicked"
    SUPPRESSION_CREATED = "suppression.created"
    DOMAIN_DNS_ERROR = "domain.dns_error"
    JOB_COMPLETED = "job.completed"
    JOB_PAUSED = "job.paused"
    JOB_RESUMED = "job.resumed"  # a parked job (the provider's quota, a paused account) resumed by itself
    JOB_STOPPED = "job.stopped"


class EngagementKind(StrEnum):
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def new_message_id() -> str:
    """Message ids are plain UUIDs: the AhaSend contract types them as such, and clients parse them."""
    return str(uuid.uuid4())


MESSAGE_ID_POSITIONS = 1 << 16  # positions a chunk's message ids can tell apart (new_message_ids)


def new_message_ids(count: int) -> list[str]:
    """The ids of one chunk's messages, in position order: random UUIDv4s that share their first
    106 random bits (the chunk's prefix) and hold the position in their last 16 bits, so that a
    store can find a message from its chunk (the DynamoDB store does: adapters/aws/TABLE.md).
    Beyond MESSAGE_ID_POSITIONS, independent UUIDs."""
    if count > MESSAGE_ID_POSITIONS:
        return [new_message_id() for _ in range(count)]
    prefix = uuid.uuid4().hex[:28]  # the version and variant digits included
    return [str(uuid.UUID(hex=f"{prefix}{pos:04x}")) for pos in range(count)]


@dataclass(slots=True)
class Content:
    """What a job sends: Jinja2 sources for subject, text and HTML, plus envelope headers."""

    subject: str
    text: str | None = None
    html: str | None = None
    from_addr: str = ""
    reply_to: str | None = None
    template_id: str | None = None
    provider: str | None = None  # the transport chosen at submit time; None: the default
    amp: str | None = None
    # [{file_name, content_type, data (base64), disposition "attachment"|"inline", content_id?}]
    attachments: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # extra headers, already checked
    tags: list[str] = field(default_factory=list)
    sandbox_result: str | None = None  # set: the sandbox transport, ending in this outcome
    tracking: dict[str, bool] | None = None  # {"open": bool, "click": bool}
    unsubscribe: bool = False  # carries List-Unsubscribe (RFC 8058 one-click): bulk mail does

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "from": self.from_addr,
            "reply_to": self.reply_to,
            "template_id": self.template_id,
            "provider": self.provider,
            "amp": self.amp,
            "attachments": self.attachments,
            "headers": self.headers,
            "tags": self.tags,
            "sandbox_result": self.sandbox_result,
            "tracking": self.tracking,
            "unsubscribe": self.unsubscribe,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Content:
        return cls(
            subject=data["subject"],
            text=data.get("text"),
            html=data.get("html"),
            from_addr=data.get("from") or "",
            reply_to=data.get("reply_to"),
            template_id=data.get("template_id"),
            provider=data.get("provider"),
            amp=data.get("amp"),
            attachments=list(data.get("attachments") or []),
            headers=dict(data.get("headers") or {}),
            tags=list(data.get("tags") or []),
            sandbox_result=data.get("sandbox_result"),
            tracking=data.get("tracking"),
            unsubscribe=bool(data.get("unsubscribe")),
        )


@dataclass(slots=True)
class Job:
    id: str
    account_id: str
    kind: JobKind
    state: JobState
    content: Content
    total: int
    created_at: float
    updated_at: float
    campaign_id: str | None = None
    chunks: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    # Scheduled sends: nothing goes out before first_attempt_at, and nothing after expires_at.
    first_attempt_at: float | None = None
    expires_at: float | None = None
    # Retention in days: metadata (the message record) and data (bodies, variables, attachments).
    retention_metadata_days: int | None = None
    retention_data_days: int | None = None
    # Set while the job is parked by the provider ("daily_quota", "sending_paused"): it resumes by
    # itself. None when running, or paused by a caller.
    paused_reason: str | None = None
    throttled: int = 0  # how many times the provider asked this job's sends to slow down
    send_rate: float | None = None  # messages/s this job's sends are paced at (None: not paced)


@dataclass(slots=True)
class Message:
    id: str
    job_id: str
    account_id: str
    seq: int  # position in the request, 0-based
    chunk: int
    email: str
    name: str | None
    variables: dict[str, Any]
    status: MessageStatus = MessageStatus.QUEUED
    attempts: int = 0
    error_code: str | None = None
    error_message: str | None = None
    updated_at: float = 0.0
    subject: str = ""  # rendered at submit (listing and filtering show what the recipient sees)
    created_at: float = 0.0
    sent_at: float | None = None
    delivered_at: float | None = None
    # Every delivery attempt and event: [{"time": epoch, "status": ..., "log": ...}]
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Account:
    """The tenant boundary and its sending preferences."""

    id: str
    default_provider: str | None = None  # None: the deployment's default provider
    sender_domains: list[str] | None = None  # None: any sender domain is allowed


@dataclass(slots=True)
class Suppression:
    """An address (optionally for one sender domain) that must not receive mail until expires_at."""

    id: str
    account_id: str
    email: str
    domain: str | None
    reason: str
    created_at: float
    expires_at: float


# A request still "in progress" after this long died (API Gateway gives up after 29 s): its key
# may be taken over, instead of answering 409 until the key expires.
IDEMPOTENCY_LEASE_SECONDS = 120.0


@dataclass(slots=True)
class IdempotencyRecord:
    account_id: str
    key: str
    fingerprint: str  # method, path and body hash of the first request
    state: IdempotencyState
    created_at: float
    expires_at: float
    status: int | None = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class MessageQuery:
    """Filters of a message listing (every field optional) and its cursor."""

    statuses: tuple[str, ...] = ()
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    message_id: str | None = None
    tags: tuple[str, ...] = ()
    from_time: float | None = None
    to_time: float | None = None
    limit: int = 100
    after: str | None = None  # newest first: the page after (older than) this message id
    before: str | None = None  # the page before (newer than) this message id


@dataclass(slots=True)
class Template:
    id: str
    account_id: str
    name: str
    subject: str
    html: str | None
    text: str | None
    created_at: float
    updated_at: float


@dataclass(slots=True)
class ChunkRef:
    """The body of one queue message: a pointer to up to 50 messages of one job."""

    account_id: str
    job_id: str
    chunk: int

    def to_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "job_id": self.job_id, "chunk": self.chunk}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ChunkRef:
        """The pointer in a queue body (which may carry more, such as its lane)."""
        return cls(body["account_id"], body["job_id"], int(body["chunk"]))

    @property
    def dedup_key(self) -> str:
        return f"{self.job_id}:{self.chunk}"


# -- feedback: events, webhooks, campaigns ---------------------------------------------------------

# Every event a webhook can subscribe to, with its AhaSend `on_*` flag (v2) where the contract has one.
# job.* events are MailSage's own (v1 only).
EVENT_FLAGS: dict[str, str | None] = {
    EventType.MESSAGE_RECEPTION: "on_reception",
    EventType.MESSAGE_DELIVERED: "on_delivered",
    EventType.MESSAGE_TRANSIENT_ERROR: "on_transient_error",
    EventType.MESSAGE_FAILED: "on_failed",
    EventType.MESSAGE_BOUNCED: "on_bounced",
    EventType.MESSAGE_SUPPRESSED: "on_suppressed",
    EventType.MESSAGE_OPENED: "on_opened",
    EventType.MESSAGE_CLICKED: "on_clicked",
    EventType.SUPPRESSION_CREATED: "on_suppression_created",
    EventType.DOMAIN_DNS_ERROR: "on_dns_error",
    EventType.JOB_COMPLETED: None,
    EventType.JOB_PAUSED: None,
    EventType.JOB_RESUMED: None,
    EventType.JOB_STOPPED: None,
}
EVENT_TYPES = frozenset(EVENT_FLAGS)

# Engagement recorded per message (`Store.record_engagement`), each also an event in its log.
ENGAGEMENT_KINDS = tuple(EngagementKind)


@dataclass(slots=True)
class Webhook:
    """An endpoint of an account that receives signed event notifications."""

    id: str  # a UUID (the AhaSend contract types it so)
    account_id: str
    name: str
    url: str
    secret: str  # shown once, at creation; `signing` says how it becomes the HMAC key
    enabled: bool
    events: list[str]  # subscribed event types (EVENT_TYPES), sorted
    created_at: float
    updated_at: float
    scope: WebhookScope = WebhookScope.GLOBAL
    domains: list[str] = field(default_factory=list)
    success_count: int = 0
    error_count: int = 0
    errors_since_last_success: int = 0
    last_request_at: float | None = None
    disabled_reason: str | None = None  # set when it was disabled automatically
    # Fixed at creation by the surface that made it; webhooks stored before it existed are literal.
    signing: WebhookSigning = WebhookSigning.LITERAL


@dataclass(slots=True)
class WebhookDelivery:
    """One event sent to one endpoint: every attempt, retry and replay of it, newest last."""

    id: str  # the `webhook-id` header: the same for every attempt and replay (receivers dedupe on it)
    account_id: str
    webhook_id: str
    event_type: str
    payload: str  # the exact JSON body that is signed and posted
    created_at: float
    updated_at: float
    status: WebhookDeliveryStatus = WebhookDeliveryStatus.PENDING
    # [{"time", "status_code" (int|None), "error" (str|None), "duration_ms", "replay" (bool)}]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    next_attempt_at: float | None = None
    expires_at: float | None = None  # the log entry is dropped after this


@dataclass(slots=True)
class CampaignStats:
    """Totals over every job of an account that carries a campaign id."""

    campaign_id: str
    jobs: int
    counts: dict[str, int]  # messages per MessageStatus value, over all those jobs
    opened: int  # messages opened at least once
    clicked: int  # messages with at least one tracked click
    unsubscribed: int  # messages whose one-click unsubscribe was used
