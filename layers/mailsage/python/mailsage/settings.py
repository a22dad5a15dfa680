"""One pydantic settings model per function, read from MAILSAGE_* environment variables and
validated at cold start. Domain code never reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    # defer_build: only the settings of the function that runs are built at its cold start.
    model_config = SettingsConfigDict(env_prefix="MAILSAGE_", frozen=True, extra="ignore", defer_build=True)

    # "sqlite": the embedded backends under data_dir. "aws": DynamoDB, SQS, EventBridge Scheduler.
    backend: Literal["sqlite", "aws"] = "sqlite"
    data_dir: Path = Path(".mailsage")
    # AWS backend (set by the CDK app on every function)
    table_name: str | None = None
    send_queue_url: str | None = None
    send_dlq_url: str | None = None
    # The transactional lane's queue (AWS); without it transactional chunks share the send queue.
    priority_queue_url: str | None = None
    # AWS: DynamoDB removes a job's items (job, messages, state) this many days after it was
    # accepted, through the table's TTL. None keeps them.
    retention_days: int | None = Field(None, ge=1, le=3650)
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Queue semantics of the embedded queue (on AWS these are properties of the SQS queue).
    queue_visibility_seconds: float = Field(300.0, gt=0)
    queue_max_receives: int = Field(8, ge=1)
    # The host part of every Message-ID header, `<message id@host>` (v2 replies and webhook
    # payloads show it). None: each message's sender domain (its From's), a domain the sender
    # controls; a value overrides it for every message.
    message_id_domain: str | None = None
    # Feedback: webhook deliveries go through their own queue (AWS: set by the CDK app;
    # without it events are stored with the message but no webhook is called).
    webhook_queue_url: str | None = None
    # How long a function may reuse an account's list of webhooks before reading it again: a new or
    # changed webhook takes effect within this time.
    webhook_cache_seconds: float = Field(10.0, ge=0)
    # Where recipients reach the API (tracking pixel, tracked links, one-click unsubscribe), e.g.
    # https://mail-api.example.com; None: no tracking and no List-Unsubscribe header.
    public_url: str | None = None
    # The key that signs tracking and unsubscribe URLs: the value itself, or (AWS) the name of a
    # Secrets Manager secret holding it; locally, without either, a key kept in the data directory.
    signing_secret: str | None = None
    signing_secret_name: str | None = None
    # Outgoing webhooks go only to public addresses; the embedded runtime allows loopback and private
    # addresses (None: allowed with the sqlite backend only).
    allow_private_webhook_urls: bool | None = None
    # Automatic suppressions: how long a hard bounce, a complaint and an unsubscribe suppress.
    bounce_suppression_days: int = Field(30, ge=1, le=3650)
    complaint_suppression_days: int = Field(3650, ge=1, le=36500)
    unsubscribe_suppression_days: int = Field(3650, ge=1, le=36500)

    def __hash__(self) -> int:
        # Settings key the wiring caches; dict-valued fields make the default field hash fail.
        return hash((type(self).__name__, self.model_dump_json()))

    @property
    def database_path(self) -> Path:
        return self.data_dir / "mailsage.db"

    @property
    def private_webhook_urls_allowed(self) -> bool:
        if self.allow_private_webhook_urls is not None:
            return self.allow_private_webhook_urls
        return self.backend == "sqlite"

    @model_validator(mode="after")
    def _aws_needs_resources(self) -> CommonSettings:
        if self.backend == "aws":
            missing = [n for n in ("table_name", "send_queue_url") if not getattr(self, n)]
            if missing:
                names = ", ".join(f"MAILSAGE_{n.upper()}" for n in missing)
                raise ValueError(f"MAILSAGE_BACKEND=aws needs {names}")
        return self


class ProviderSettings(CommonSettings):
    """Which transports exist. A provider is "ses" (AWS backend only) or the name of an SMTP relay."""

    # name -> where its SMTP URL comes from: the URL itself with the sqlite backend; the name of a
    # Secrets Manager secret holding {"url": "smtp://..."} with the AWS backend.
    smtp_relays: dict[str, str] = Field(default_factory=dict)
    # Locally the relay "default" is MAILSAGE_SMTP_URL (the built-in sink unless set).
    smtp_url: str = "smtp://127.0.0.1:1026"
    default_provider: str | None = None  # None: "ses" on AWS, "default" locally
    failover_provider: str | None = None  # used when the chosen provider fails transiently
    ses_configuration_set: str | None = None
    # Lowers the sending rate read from SES (GetAccount's MaxSendRate), messages per second; before
    # SES has answered, the rate used.
    ses_max_rate: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _relay_urls_are_valid(self) -> ProviderSettings:
        # Checked here so that a bad max_rate or max_connections stops the start, not the first
        # send. On AWS the relays are secret names: their URLs are checked when read.
        if self.backend == "aws":
            return self
        from mailsage.adapters.smtp import SmtpConfig

        urls = {"MAILSAGE_SMTP_URL": self.smtp_url}
        urls.update({f"MAILSAGE_SMTP_RELAYS relay {name!r}": url for name, url in self.smtp_relays.items()})
        for where, url in urls.items():
            try:
                SmtpConfig.from_url(url)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return self

    @model_validator(mode="after")
    def _providers_exist(self) -> ProviderSettings:
        for field in ("default_provider", "failover_provider"):
            name = getattr(self, field)
            if name is not None and name not in self.provider_names:
                raise ValueError(
                    f"MAILSAGE_{field.upper()}={name!r} is not a configured provider;"
                    f" configured: {', '.join(sorted(self.provider_names))}"
                )
        return self

    @property
    def provider_names(self) -> frozenset[str]:
        names = set(self.smtp_relays)
        names.add("ses" if self.backend == "aws" else "default")
        names.add("sandbox")
        return frozenset(names)

    @property
    def effective_default_provider(self) -> str:
        return self.default_provider or ("ses" if self.backend == "aws" else "default")


class ApiSettings(ProviderSettings):
    chunk_size: int = Field(50, ge=1, le=50)
    max_batch_recipients: int = Field(1000, ge=1, le=10_000)
    max_request_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_variables_bytes: int = Field(16_384, ge=256)
    # Subject + text + html of one job or template: it is stored as one item (DynamoDB: 400 KB).
    max_content_bytes: int = Field(300_000, ge=1024, le=350_000)
    # v2 create-message: all the attachments of a message together, decoded (past it: 400). The
    # request itself is bounded by max_request_bytes, and base64 makes data a third larger.
    max_attachment_bytes: int = Field(3 * 1024 * 1024, ge=0)
    default_from: str = "MailSage <noreply@mailsage.example>"
    # Browser origins allowed to call the API (CORS); empty: no CORS headers.
    allowed_origins: list[str] = Field(default_factory=list)
    # Requests a second each account may make to the API (both surfaces), `account_rate_burst` of
    # them at once; counted in the pacing store, so shared by every api process. 0 turns it off.
    account_rate_limit: float = Field(20.0, ge=0)
    account_rate_burst: int = Field(40, ge=1)
    # How long an Idempotency-Key is remembered (per account) after its first request.
    idempotency_ttl_seconds: int = Field(86_400, ge=1, le=30 * 86_400)
    # Scheduled sends on AWS: EventBridge Scheduler targets the send queue with this role.
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    send_queue_arn: str | None = None
    schedule_dlq_arn: str | None = None  # where EventBridge puts a schedule it could not deliver

    @model_validator(mode="after")
    def _scheduling_is_complete(self) -> ApiSettings:
        if self.backend == "aws" and self.schedule_group:
            missing = [n for n in ("scheduler_role_arn", "send_queue_arn") if not getattr(self, n)]
            if missing:
                names = ", ".join(f"MAILSAGE_{n.upper()}" for n in missing)
                raise ValueError(f"MAILSAGE_SCHEDULE_GROUP needs {names}")
        return self


class SenderSettings(ProviderSettings):
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    # A chunk whose sends keep failing transiently is given up after this many deliveries; keep it
    # below queue_max_receives so the sender, not the queue, decides (and marks the messages failed).
    max_attempts: int = Field(5, ge=1)
    retry_base_seconds: float = Field(5.0, ge=0)
    retry_max_seconds: float = Field(900.0, ge=0)
    claim_lease_seconds: float = Field(300.0, gt=0)


class IngestSettings(ApiSettings):
    """The ingest function accepts the same requests as the API, from a queue."""

    ingest_dlq_url: str | None = None  # AWS: where invalid records go (locally: a SQLite queue)

    @model_validator(mode="after")
    def _aws_needs_dead_letters(self) -> IngestSettings:
        if self.backend == "aws" and not self.ingest_dlq_url:
            raise ValueError("MAILSAGE_BACKEND=aws needs MAILSAGE_INGEST_DLQ_URL")
        return self


class EventsSettings(CommonSettings):
    """The events function applies delivery reports (from SES notifications, or the local sink) to the store."""


class WebhooksSettings(CommonSettings):
    """The webhooks function posts signed events to customer endpoints."""

    webhook_timeout_seconds: float = Field(10.0, gt=0, le=30)
    # Attempts per event and endpoint; retry n waits base * factor^(n-1), capped (30 s, 2 min,
    # 8 min, 32 min, 2 h, 6 h, 6 h: about 15 h over 8 attempts with the defaults).
    webhook_max_attempts: int = Field(8, ge=1, le=20)
    webhook_retry_base_seconds: float = Field(30.0, ge=0)
    webhook_retry_factor: float = Field(4.0, ge=1)
    webhook_retry_max_seconds: float = Field(6 * 3600.0, ge=0, le=12 * 3600)  # SQS: at most 12 h
    # An endpoint is disabled after this many failed attempts in a row (AhaSend: 100).
    webhook_disable_after: int = Field(100, ge=1)
    # How long the delivery log keeps an entry.
    webhook_log_days: int = Field(30, ge=1, le=365)
