"""The storage ports: one per aggregate, each a handful of methods. A service takes only the ports
it uses; `Store` is all of them, what an adapter (SQLite, DynamoDB) implements and wiring passes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from mailsage.domain.api_keys import ApiKeyInfo
from mailsage.domain.models import (
    Account,
    CampaignStats,
    IdempotencyRecord,
    Job,
    JobState,
    Message,
    MessageQuery,
    MessageStatus,
    Suppression,
    Template,
    Webhook,
    WebhookDelivery,
)
from mailsage.ports.pacing import PacingStore


class ApiKeyStore(Protocol):
    """API keys by id (a key is stored as its hash): all that authentication needs."""

    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None: ...

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        """(account_id, key_hash) for a key id, or None."""


class ApiKeyAdmin(Protocol):
    """An operator's view of the keys (the CLI's `keys list|revoke`); the API never lists keys."""

    def list_api_keys(self, account_id: str | None = None) -> list[ApiKeyInfo]:
        """Every key (of one account when given), oldest first."""

    def delete_api_key(self, key_id: str) -> bool:
        """Remove a key; whether it existed. Authentication fails for it from then on."""


class AccountStore(ApiKeyStore, ApiKeyAdmin, Protocol):
    """Accounts (their sending preferences) and their API keys."""

    def put_account(self, account: Account) -> None: ...

    def get_account(self, account_id: str) -> Account | None: ...


class TemplateStore(Protocol):
    """Templates: every call is scoped by account; another account's id is simply not found."""

    def put_template(self, template: Template) -> None: ...

    def get_template(self, account_id: str, template_id: str) -> Template | None: ...

    def list_templates(self, account_id: str, limit: int, after: str | None) -> list[Template]: ...

    def delete_template(self, account_id: str, template_id: str) -> bool: ...


class JobStore(Protocol):
    """Jobs: creation with all their messages, state, and the job-wide moves of messages."""

    def create_job(self, job: Job, messages: Sequence[Message]) -> None:
        """Persist a job with all its messages atomically (all or nothing). Raises Conflict if a job
        with that id exists (callers that retry pass a deterministic id)."""

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        """The job, with `counts` per message status filled in unless `with_counts` is False."""

    def transition_job(
        self, account_id: str, job_id: str, allowed_from: Iterable[JobState], to: JobState
    ) -> Job | None:
        """Move the job to `to` only if it is in one of `allowed_from`; None if it was not."""

    def complete_job_if_done(self, job_id: str, pacing: tuple[int, float | None] | None = None) -> bool:
        """Mark the job completed when no message is left to send; True if this call did it. With
        `pacing` (throttles to add, the paced rate: as record_pacing), the write that completes the
        job records it too, so a chunk that ends its job spends one write, not two."""

    def record_dead_letter(self, job_id: str, chunk: int, reason: str) -> None: ...

    def active_jobs(self) -> list[tuple[str, str]]:
        """(account_id, job_id) of jobs in queued or running state: used to recover after a restart."""

    def start_scheduled_job(self, job_id: str) -> bool:
        """scheduled -> queued, for the job and its scheduled messages, atomically; False if the job
        was not scheduled (already started, cancelled, stopped)."""

    def cancel_unsent(self, job_id: str) -> int:
        """queued|scheduled -> cancelled for the whole job; returns how many were cancelled."""

    def expire_unsent(self, job_id: str) -> int:
        """queued|scheduled -> expired for the whole job (past its `expires_at`)."""

    def pending_chunks(self, job_id: str) -> list[int]:
        """Chunk numbers that still hold a message in a sendable state (queued, or sending)."""

    def park_job(self, account_id: str, job_id: str, reason: str) -> Job | None:
        """queued|running -> paused with `paused_reason` = reason (the provider's quota ran out, or
        it paused sending); None if the job was in no such state. A caller's pause or resume
        (`transition_job`) clears the reason: only parked jobs resume by themselves."""

    def unpark_job(self, account_id: str, job_id: str) -> Job | None:
        """paused with a `paused_reason` -> running, the reason cleared; None otherwise (a job a
        caller paused, resumed or stopped meanwhile)."""

    def record_pacing(self, job_id: str, throttled: int, send_rate: float | None) -> None:
        """Add `throttled` to the job's count of provider throttles and set the rate its sends are
        paced at now (None: not paced): what the job reply shows."""


class ChunkStore(Protocol):
    """What a sender does to the messages of one chunk: read, claim, finish, release."""

    def chunk_messages(self, job_id: str, chunk: int) -> list[Message]: ...

    def claim_messages(self, job_id: str, message_ids: Sequence[str], lease_seconds: float) -> list[str]:
        """queued -> sending, conditionally, for each id. A message stuck in `sending` for longer than
        the lease (its worker died) may be claimed again. Returns the ids this call claimed."""

    def finish_message(
        self,
        message_id: str,
        status: MessageStatus,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """sending -> status, conditionally. False if the message was not in `sending`."""

    def finish_and_claim(
        self, message_id: str, status: MessageStatus, next_id: str, lease_seconds: float
    ) -> tuple[bool, bool]:
        """finish_message(message_id, status), and claim_messages of `next_id` (a message of the same
        job) in the same write where the store can: (finished, claimed)."""

    def release_message(self, message_id: str, error_message: str, counted: bool = True) -> bool:
        """sending -> queued after a transient failure, counting the attempt unless `counted` is
        False (the provider asked us to slow down: that is not an attempt of the message)."""


class MessageStore(Protocol):
    """One message as the API and delivery feedback see it."""

    def get_message(self, account_id: str, message_id: str) -> Message | None: ...

    def list_messages(self, account_id: str, query: MessageQuery) -> tuple[list[Message], bool]:
        """The account's messages, newest first, filtered by `query`, at most `query.limit`; and
        whether more match beyond this page. Tag and sender filters match the message's job."""

    def cancel_message(self, account_id: str, message_id: str) -> bool:
        """scheduled -> cancelled (before its first attempt); False otherwise."""

    def update_delivery_status(
        self,
        account_id: str,
        message_id: str,
        to: MessageStatus,
        allowed_from: Iterable[MessageStatus],
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """After sending: move a message to `to` (delivered, bounced, ...) only from one of
        `allowed_from`, keeping the job's counts right. False if it was in no such state."""

    def record_engagement(
        self, account_id: str, message_id: str, kind: str, at: float, detail: str | None = None
    ) -> int | None:
        """Count an open, click or unsubscribe (ENGAGEMENT_KINDS) of a message and append it to the
        message's events as `{"time": at, "status": kind, "log": detail}`. Returns how many of that
        kind the message has now (1: the first), None if the account has no such message."""


class SuppressionStore(Protocol):
    """Addresses that must not receive mail (per account; optionally per sender domain)."""

    def put_suppression(self, suppression: Suppression) -> None:
        """Create, or replace the one with the same account, email and domain."""

    def list_suppressions(
        self,
        account_id: str,
        email: str | None,
        domain: str | None,
        from_time: float | None,
        to_time: float | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[Suppression], bool]: ...

    def delete_suppressions(self, account_id: str, email: str | None, domain: str | None) -> int:
        """Delete the matching suppressions (email None: all of the account, or of the domain)."""

    def suppressed(self, account_id: str, emails: Sequence[str], domain: str | None, now: float) -> set[str]:
        """Which of `emails` (lower-cased) are suppressed at `now` for mail from `domain`: by a
        suppression without a domain, or one for that domain."""


class IdempotencyStore(Protocol):
    """One record per (account, key), expiring."""

    def begin_idempotent(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Store `record` (state in_progress) unless a live one exists; None if stored, else the
        existing record. An expired record, or one still in progress after
        IDEMPOTENCY_LEASE_SECONDS (its request died), is replaced."""

    def finish_idempotent(
        self, account_id: str, key: str, status: int, body: str, headers: dict[str, str]
    ) -> None: ...

    def release_idempotent(self, account_id: str, key: str) -> None:
        """Forget the key (the request failed with a 5xx and may run again)."""


class WebhookStore(Protocol):
    """Webhook endpoints per account, with their delivery counters."""

    def put_webhook(self, webhook: Webhook) -> None:
        """Create, or replace the one with the same account and id."""

    def get_webhook(self, account_id: str, webhook_id: str) -> Webhook | None: ...

    def list_webhooks(self, account_id: str, limit: int, after: str | None) -> tuple[list[Webhook], bool]:
        """The account's webhooks in id order, after the id `after`, at most `limit`; and whether
        more follow."""

    def delete_webhook(self, account_id: str, webhook_id: str) -> bool:
        """Delete the webhook (its delivery log goes with it, or expires); False if there was none."""

    def record_webhook_attempt(
        self, account_id: str, webhook_id: str, ok: bool, at: float, disable_after: int
    ) -> Webhook | None:
        """Count one delivery attempt, atomically: ok -> success_count + 1, errors_since_last_success
        = 0; failed -> error_count + 1, errors_since_last_success + 1 and, when that reaches
        `disable_after`, enabled = False with a disabled_reason. Sets last_request_at. Returns the
        webhook as it is now, None if it no longer exists."""


class WebhookDeliveryStore(Protocol):
    """The log of what was sent to each webhook."""

    def put_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Create, or replace the one with the same account, webhook and id."""

    def get_webhook_delivery(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> WebhookDelivery | None: ...

    def list_webhook_deliveries(
        self, account_id: str, webhook_id: str, limit: int, after: str | None
    ) -> tuple[list[WebhookDelivery], bool]:
        """The webhook's deliveries, newest first (by created_at, then id), the page after the
        delivery `after`; and whether more follow. Expired ones (expires_at <= now) are left out."""


class CampaignStore(Protocol):
    """Totals over the jobs of a campaign."""

    def campaign_stats(self, account_id: str, campaign_id: str) -> CampaignStats | None:
        """Totals over the account's jobs with this campaign id; None if there is none."""


class RetentionStore(Protocol):
    """Retention of message data and metadata."""

    def purge_expired(self, now: float) -> int:
        """Apply retention: drop message data (variables, job content) past `retention_data_days`
        and whole records past `retention_metadata_days`. Stores with native TTL may do nothing."""


class Store(
    AccountStore,
    TemplateStore,
    JobStore,
    ChunkStore,
    MessageStore,
    SuppressionStore,
    IdempotencyStore,
    WebhookStore,
    WebhookDeliveryStore,
    CampaignStore,
    RetentionStore,
    PacingStore,
    Protocol,
):
    """Every storage port: what a store adapter implements."""
