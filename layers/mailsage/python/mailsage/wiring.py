"""Build the domain services for a function from its settings. Cached per settings value, so the
API and the sender in one local process share one database and one queue."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.adapters.sqlite.scheduler import SqliteScheduler
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.auth import AuthService
from mailsage.domain.delivery import DeliveryPolicy, DeliveryService
from mailsage.domain.jobs import JobService
from mailsage.domain.submission import SubmissionLimits, SubmissionService
from mailsage.domain.templates import TemplateService
from mailsage.settings import ApiSettings, CommonSettings, SenderSettings


@dataclass(slots=True, frozen=True)
class Backends:
    store: SqliteStore
    queue: SqliteQueue
    scheduler: SqliteScheduler


@lru_cache(maxsize=8)
def _backends(path: str, synchronous: str, visibility: float, max_receives: int) -> Backends:
    db = Database(path, synchronous)
    return Backends(
        store=SqliteStore(db),
        queue=SqliteQueue(db, "send", visibility_timeout=visibility, max_receives=max_receives),
        scheduler=SqliteScheduler(db),
    )


def backends(settings: CommonSettings) -> Backends:
    return _backends(
        str(settings.database_path),
        settings.sqlite_synchronous,
        settings.queue_visibility_seconds,
        settings.queue_max_receives,
    )


@dataclass(slots=True, frozen=True)
class ApiServices:
    auth: AuthService
    templates: TemplateService
    submission: SubmissionService
    jobs: JobService


@lru_cache(maxsize=8)
def api_services(settings: ApiSettings) -> ApiServices:
    b = backends(settings)
    limits = SubmissionLimits(
        chunk_size=settings.chunk_size,
        max_recipients=settings.max_batch_recipients,
        max_variables_bytes=settings.max_variables_bytes,
        default_from=settings.default_from,
    )
    return ApiServices(
        auth=AuthService(b.store),
        templates=TemplateService(b.store),
        submission=SubmissionService(b.store, b.queue, limits),
        jobs=JobService(b.store, b.queue),
    )


@lru_cache(maxsize=8)
def delivery_service(settings: SenderSettings) -> DeliveryService:
    from mailsage.adapters.smtp import SmtpConfig, SmtpTransport

    b = backends(settings)
    transport = SmtpTransport(SmtpConfig.from_url(settings.smtp_url, settings.smtp_timeout_seconds))
    policy = DeliveryPolicy(
        max_attempts=settings.max_attempts,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        claim_lease_seconds=settings.claim_lease_seconds,
        message_id_domain=settings.message_id_domain,
    )
    return DeliveryService(b.store, b.queue, transport, policy)
