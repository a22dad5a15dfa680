"""Build the domain services for a function from its settings. Cached per settings value, so the
API and the sender in one local process share one database and one queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, cast

from mailsage.settings import ApiSettings

if TYPE_CHECKING:
    # Types only: each builder imports what it builds, so a function loads only its own services
    # (the api never loads delivery, AWS never loads SQLite) and cold starts stay short.
    from mailsage.domain.auth import AuthService
    from mailsage.domain.campaigns import CampaignService
    from mailsage.domain.delivery import DeliveryService
    from mailsage.domain.engagement import EngagementService
    from mailsage.domain.events import EventPublisher
    from mailsage.domain.feedback import FeedbackService
    from mailsage.domain.idempotency import IdempotencyService
    from mailsage.domain.ingest import IngestService
    from mailsage.domain.jobs import JobService
    from mailsage.domain.messages import MessagesLimits, MessagesService
    from mailsage.domain.outcomes import SuppressionPolicy
    from mailsage.domain.pacing import Limits, RouteLimit
    from mailsage.domain.providers import Providers
    from mailsage.domain.rate_limits import AccountRateLimiter
    from mailsage.domain.submission import SubmissionService
    from mailsage.domain.suppressions import SuppressionService
    from mailsage.domain.templates import TemplateService
    from mailsage.domain.tracking import Signer, TrackedLinks
    from mailsage.domain.webhook_delivery import WebhookDispatcher
    from mailsage.domain.webhooks import WebhookService
    from mailsage.ports import Meter, Queue, Scheduler, Store, Transport
    from mailsage.settings import (
        CommonSettings,
        EventsSettings,
        IngestSettings,
        ProviderSettings,
        SenderSettings,
        WebhooksSettings,
    )


@dataclass(slots=True, frozen=True)
class Backends:
    store: Store
    queue: Queue
    scheduler: Scheduler | None  # None on AWS when the function does not schedule
    webhooks: Queue | None = None  # webhook deliveries; None on AWS without a webhook queue


@lru_cache(maxsize=8)
def _sqlite_backends(path: str, synchronous: str, visibility: float, max_receives: int) -> Backends:
    from mailsage.adapters.lanes import LanedQueue
    from mailsage.adapters.sqlite.db import Database
    from mailsage.adapters.sqlite.queue import SqliteQueue
    from mailsage.adapters.sqlite.scheduler import SqliteScheduler
    from mailsage.adapters.sqlite.store import SqliteStore

    db = Database(path, synchronous)
    return Backends(
        store=SqliteStore(db),
        queue=LanedQueue(
            SqliteQueue(db, "send-priority", visibility_timeout=visibility, max_receives=max_receives),
            SqliteQueue(db, "send", visibility_timeout=visibility, max_receives=max_receives),
        ),
        scheduler=SqliteScheduler(db),
        # The webhooks function decides when a delivery is given up (webhook_max_attempts); the
        # queue's own limit is only a backstop.
        webhooks=SqliteQueue(db, "webhooks", visibility_timeout=60.0, max_receives=50),
    )


@lru_cache(maxsize=8)
def _aws_backends(settings: CommonSettings) -> Backends:
    # Imported here: the embedded runtime never needs boto3. Clients are created on first use.
    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.eventbridge_scheduler import EventBridgeScheduler
    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from mailsage.adapters.lanes import LanedQueue

    assert settings.table_name and settings.send_queue_url  # checked by the settings validator
    scheduler = None
    if isinstance(settings, ApiSettings) and settings.schedule_group:
        assert settings.send_queue_arn and settings.scheduler_role_arn  # checked by the settings validator
        scheduler = EventBridgeScheduler(
            group_name=settings.schedule_group,
            target_arn=settings.send_queue_arn,
            role_arn=settings.scheduler_role_arn,
            dead_letter_arn=settings.schedule_dlq_arn,
        )
    return Backends(
        store=DynamoStore(
            settings.table_name,
            retention_seconds=settings.retention_days * 86_400 if settings.retention_days else None,
        ),
        # Without a priority queue (a deployment from before the lanes) both lanes share the bulk one.
        queue=LanedQueue(
            SqsQueue(settings.priority_queue_url) if settings.priority_queue_url else None,
            SqsQueue(settings.send_queue_url, dead_letter_url=settings.send_dlq_url),
        ),
        scheduler=scheduler,
        webhooks=SqsQueue(settings.webhook_queue_url) if settings.webhook_queue_url else None,
    )


def backends(settings: CommonSettings) -> Backends:
    if settings.backend == "aws":
        return _aws_backends(settings)
    return _sqlite_backends(
        str(settings.database_path),
        settings.sqlite_synchronous,
        settings.queue_visibility_seconds,
        settings.queue_max_receives,
    )


def providers(settings: ProviderSettings, smtp_timeout: float = 30.0) -> Providers:
    """Every configured transport by name, each built on first use."""
    from mailsage.adapters.smtp import SmtpConfig, SmtpTransport
    from mailsage.domain.providers import Providers

    def smtp(url: str) -> Callable[[], Transport]:
        return lambda: SmtpTransport(SmtpConfig.from_url(url, smtp_timeout))

    def smtp_from_secret(secret_name: str) -> Callable[[], Transport]:
        def build() -> Transport:
            from mailsage.adapters.aws.secrets import smtp_url_from_secret

            return SmtpTransport(SmtpConfig.from_url(smtp_url_from_secret(secret_name), smtp_timeout))

        return build

    from mailsage.adapters.sandbox import SandboxTransport

    # "sandbox" is always there: the whole pipeline, nothing leaves the process.
    factories: dict[str, Callable[[], Transport]] = {"sandbox": SandboxTransport}
    if settings.backend == "aws":
        from mailsage.adapters.aws.ses_transport import SesTransport

        factories["ses"] = lambda: SesTransport(settings.ses_configuration_set)
        factories.update({name: smtp_from_secret(secret) for name, secret in settings.smtp_relays.items()})
    else:
        factories["default"] = smtp(settings.smtp_url)
        factories.update({name: smtp(url) for name, url in settings.smtp_relays.items()})
    return Providers(factories, settings.effective_default_provider, settings.failover_provider)


@lru_cache(maxsize=8)
def route_limits(settings: ProviderSettings) -> Limits:
    """Each provider's limits by route name: "ses" from SES's quota (lowered by ses_max_rate), an
    SMTP relay from its URL's max_rate and max_connections (None when it has neither), anything
    else (the sandbox) None. A relay's URL is read once (on AWS from its secret, on first use)."""
    relays = dict(settings.smtp_relays)
    ses: Callable[[], RouteLimit] | None = None
    if settings.backend == "aws":
        from mailsage.adapters.aws.ses_limits import SesLimits

        ses = SesLimits(settings.ses_max_rate)
    else:
        relays["default"] = settings.smtp_url
    known: dict[str, RouteLimit | None] = {}

    def limit(route: str) -> RouteLimit | None:
        if route == "ses" and ses is not None:
            return ses()
        if route not in relays:
            return None
        if route not in known:
            known[route] = _relay_limit(settings, route, relays[route])
        return known[route]

    return limit


def _relay_limit(settings: ProviderSettings, name: str, where: str) -> RouteLimit | None:
    from mailsage.adapters.smtp import SmtpConfig
    from mailsage.domain.pacing import RouteLimit

    if settings.backend != "aws":
        config = SmtpConfig.from_url(where)  # checked by the settings validator
    else:
        from mailsage.adapters.aws.secrets import smtp_url_from_secret

        try:
            config = SmtpConfig.from_url(smtp_url_from_secret(where))
        except ValueError as exc:
            raise ValueError(f"SMTP relay {name!r} (secret {where!r}): {exc}") from None
    if config.max_rate is None and config.max_connections is None:
        return None
    return RouteLimit(config.max_rate, config.max_connections)


@dataclass(slots=True, frozen=True)
class ApiServices:
    """What the API's routes are given (through `mailsage.api.dependencies`)."""

    auth: AuthService
    templates: TemplateService
    submission: SubmissionService
    jobs: JobService
    messages: MessagesService  # messages one by one (the AhaSend-compatible surface)
    suppressions: SuppressionService
    engagement: EngagementService  # opens, clicks, one-click unsubscribes
    webhooks: WebhookService
    campaigns: CampaignService
    idempotency: IdempotencyService  # Idempotency-Key records
    rate_limits: AccountRateLimiter | None = None  # requests per account; None: no limit


@lru_cache(maxsize=8)
def api_services(settings: ApiSettings) -> ApiServices:
    return build_api_services(settings)


def build_api_services(settings: ApiSettings, submission: SubmissionService | None = None) -> ApiServices:
    """The API's services; `submission` replaces the one built from the settings (a test's stand-in
    reaches every route that submits, v1 and v2 alike)."""
    from mailsage.domain.auth import AuthService
    from mailsage.domain.campaigns import CampaignService
    from mailsage.domain.engagement import EngagementService
    from mailsage.domain.idempotency import IdempotencyService
    from mailsage.domain.jobs import JobService
    from mailsage.domain.messages import MessagesService
    from mailsage.domain.suppressions import SuppressionService
    from mailsage.domain.templates import TemplateService

    b = backends(settings)
    publisher = event_publisher(settings)
    submission = submission or submission_service(settings)
    return ApiServices(
        auth=AuthService(b.store),
        templates=TemplateService(b.store, settings.max_content_bytes),
        submission=submission,
        jobs=JobService(b.store, b.queue, publisher),
        messages=MessagesService(
            b.store,
            b.store,
            b.store,
            submission,
            _messages_limits(settings),
            b.scheduler,
            # Content is shown as it was sent: tracked with the same links. On AWS the api is not
            # told its URL (a self-reference in the template); the sender's is the one each
            # request reaches it at (infra/stack.py gives the sender the API's URL).
            tracked_links(settings),
            request_signer=signer(settings)
            if settings.backend == "aws" and not settings.public_url
            else None,
        ),
        suppressions=SuppressionService(b.store),
        # The api verifies tokens with the key alone: it is not told its own public URL on AWS.
        engagement=EngagementService(
            b.store,
            signer(settings),
            publisher,
            settings.message_id_domain,
            suppression_policy(settings),
        ),
        webhooks=webhook_service(settings),
        campaigns=CampaignService(b.store),
        idempotency=IdempotencyService(b.store, settings.idempotency_ttl_seconds),
        rate_limits=account_rate_limiter(settings),
    )


def account_rate_limiter(settings: ApiSettings) -> AccountRateLimiter | None:
    """The per-account request limit, kept in the pacing store every api process shares; None when
    it is off (MAILSAGE_ACCOUNT_RATE_LIMIT=0)."""
    from mailsage.domain.rate_limits import AccountRateLimiter, RatePolicy

    policy = RatePolicy(settings.account_rate_limit, settings.account_rate_burst)
    return AccountRateLimiter(backends(settings).store, policy) if policy.enabled else None


@lru_cache(maxsize=8)
def submission_service(settings: ApiSettings) -> SubmissionService:
    from mailsage.domain.submission import SubmissionLimits, SubmissionService

    b = backends(settings)
    limits = SubmissionLimits(
        chunk_size=settings.chunk_size,
        max_recipients=settings.max_batch_recipients,
        max_variables_bytes=settings.max_variables_bytes,
        default_from=settings.default_from,
        providers=settings.provider_names,
        max_content_bytes=settings.max_content_bytes,
    )
    return SubmissionService(
        jobs=b.store,
        templates=b.store,
        accounts=b.store,
        suppressions=b.store,
        queue=b.queue,
        limits=limits,
        scheduler=b.scheduler,
        publisher=event_publisher(settings),
        message_id_domain=settings.message_id_domain,
        meter=meter(settings),
    )


def _messages_limits(settings: ApiSettings) -> MessagesLimits:
    from mailsage.domain.messages import MessagesLimits

    return MessagesLimits(
        max_attachment_bytes=settings.max_attachment_bytes,
        message_id_domain=settings.message_id_domain,
        retention_days=settings.retention_days if settings.backend == "aws" else None,  # DynamoDB TTL
    )


@lru_cache(maxsize=8)
def delivery_service(settings: SenderSettings) -> DeliveryService:
    from mailsage.domain.composition import Composer
    from mailsage.domain.delivery import DeliveryPolicy, DeliveryService
    from mailsage.domain.outcomes import Outcomes
    from mailsage.domain.pacing import Pacer

    b = backends(settings)
    policy = DeliveryPolicy(
        max_attempts=settings.max_attempts,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        claim_lease_seconds=settings.claim_lease_seconds,
        message_id_domain=settings.message_id_domain,
        suppression=suppression_policy(settings),
    )
    return DeliveryService(
        jobs=b.store,
        chunks=b.store,
        messages=b.store,
        suppressions=b.store,
        queue=b.queue,
        providers=providers(settings, settings.smtp_timeout_seconds),
        policy=policy,
        outcomes=partial(
            Outcomes, b.store, event_publisher(settings), policy.message_id_domain, policy.suppression
        ),
        composer=Composer(settings.message_id_domain, tracked_links(settings)),
        sandbox=sandbox_transport,
        pacer=Pacer(b.store, route_limits(settings)),
        meter=meter(settings),
    )


def meter(settings: CommonSettings) -> Meter | None:
    """On AWS, EMF metrics through Powertools, published by each handler once per invocation;
    locally none (the services count into a NoMeter)."""
    if settings.backend != "aws":
        return None
    from mailsage.adapters.aws.metrics import PowertoolsMeter

    return PowertoolsMeter()


def sandbox_transport(outcome: str) -> Transport:
    """The sandbox transport ending in `outcome` (deliver, bounce, defer, fail, suppress)."""
    from mailsage.adapters.sandbox import Outcome, SandboxTransport

    return SandboxTransport(cast(Outcome, outcome))


def suppression_policy(settings: CommonSettings) -> SuppressionPolicy:
    from mailsage.domain.outcomes import SuppressionPolicy

    return SuppressionPolicy(
        settings.bounce_suppression_days,
        settings.complaint_suppression_days,
        settings.unsubscribe_suppression_days,
    )


@lru_cache(maxsize=8)
def ingest_service(settings: IngestSettings) -> IngestService:
    from mailsage.domain.ingest import IngestService

    if settings.backend == "aws":
        from mailsage.adapters.aws.sqs_queue import SqsQueue

        assert settings.ingest_dlq_url  # checked by the settings validator
        dead_letters: Queue = SqsQueue(settings.ingest_dlq_url)
    else:
        from mailsage.adapters.sqlite.db import Database
        from mailsage.adapters.sqlite.queue import SqliteQueue

        db = Database(str(settings.database_path), settings.sqlite_synchronous)
        dead_letters = SqliteQueue(db, "ingest-dlq")
    b = backends(settings)
    return IngestService(api_services(settings).submission, b.store, b.queue, dead_letters)


@lru_cache(maxsize=8)
def feedback_service(settings: EventsSettings) -> FeedbackService:
    from mailsage.domain.feedback import FeedbackService

    return FeedbackService(
        backends(settings).store,
        event_publisher(settings),
        settings.message_id_domain,
        suppression_policy(settings),
        meter=meter(settings),
    )


@lru_cache(maxsize=8)
def event_publisher(settings: CommonSettings) -> EventPublisher:
    from mailsage.domain.events import EventPublisher

    b = backends(settings)
    return EventPublisher(b.store, b.webhooks, settings.webhook_cache_seconds)


@lru_cache(maxsize=8)
def webhook_service(settings: CommonSettings) -> WebhookService:
    from mailsage.domain.webhooks import WebhookService

    b = backends(settings)
    return WebhookService(b.store, b.webhooks, allow_private=settings.private_webhook_urls_allowed)


@lru_cache(maxsize=8)
def webhook_dispatcher(settings: WebhooksSettings) -> WebhookDispatcher:
    from mailsage.adapters.webhook_http import HttpWebhookClient
    from mailsage.domain.webhook_delivery import WebhookDispatcher, WebhookPolicy

    b = backends(settings)
    if b.webhooks is None:
        raise RuntimeError("the webhooks function needs MAILSAGE_WEBHOOK_QUEUE_URL")
    policy = WebhookPolicy(
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_factor=settings.webhook_retry_factor,
        retry_max_seconds=settings.webhook_retry_max_seconds,
        disable_after=settings.webhook_disable_after,
        log_days=settings.webhook_log_days,
    )
    client = HttpWebhookClient(allow_private=settings.private_webhook_urls_allowed)
    return WebhookDispatcher(b.store, b.webhooks, policy, client, meter=meter(settings))


@lru_cache(maxsize=8)
def signer(settings: CommonSettings) -> Signer | None:
    """The key of tracking and unsubscribe tokens; None on AWS when no signing secret is configured."""
    from mailsage.domain.tracking import Signer

    key = _signing_key(settings)
    return Signer(key) if key is not None else None


def _signing_key(settings: CommonSettings) -> bytes | None:
    if settings.signing_secret:
        return settings.signing_secret.encode()
    if settings.backend == "aws":
        if not settings.signing_secret_name:
            return None
        from mailsage.adapters.aws.secrets import secret_string

        return secret_string(settings.signing_secret_name).encode()
    # Embedded: a key of this data directory, made on first use (links keep working after a restart).
    import os
    import secrets
    import tempfile

    path = settings.data_dir / "signing.key"
    if not path.exists():
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A temporary file of its own per caller (threads share a pid), made 0600 by mkstemp.
        fd, tmp = tempfile.mkstemp(prefix="signing.", suffix=".tmp", dir=settings.data_dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            os.link(tmp, path)  # atomic: callers starting together all keep the first key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip().encode()


@lru_cache(maxsize=8)
def tracked_links(settings: CommonSettings) -> TrackedLinks | None:
    """URL builder for tracking and unsubscribe links; None without MAILSAGE_PUBLIC_URL."""
    from mailsage.domain.tracking import TrackedLinks

    key = signer(settings)
    if not settings.public_url or key is None:
        return None
    return TrackedLinks(key, settings.public_url.rstrip("/"))
