"""Row -> domain decoding for the SQLite store: the one place that knows how columns map onto the
domain's dataclasses (JSON columns, 0/1 booleans, typed values)."""

from __future__ import annotations

import json
import sqlite3

from mailsage.domain.models import (
    Account,
    Content,
    IdempotencyRecord,
    IdempotencyState,
    Job,
    JobKind,
    JobState,
    Message,
    MessageStatus,
    Suppression,
    Template,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookScope,
    WebhookSigning,
)


def event_json(when: float, status: str, log: str | None) -> str:
    """One entry of a message's `events` column, as appended with json_insert."""
    return json.dumps({"time": when, "status": status, "log": log or ""})


def account(row: sqlite3.Row) -> Account:
    domains = json.loads(row["sender_domains"]) if row["sender_domains"] is not None else None
    return Account(row["id"], row["default_provider"], domains)


def job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        account_id=row["account_id"],
        kind=JobKind(row["kind"]),
        state=JobState(row["state"]),
        content=Content.from_dict(json.loads(row["content"])),
        total=row["total"],
        chunks=row["chunks"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        campaign_id=row["campaign_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        dead_letters=json.loads(row["dead_letters"]),
        first_attempt_at=row["first_attempt_at"],
        expires_at=row["expires_at"],
        retention_metadata_days=row["retention_metadata_days"],
        retention_data_days=row["retention_data_days"],
        paused_reason=row["paused_reason"],
        throttled=row["throttled"],
        send_rate=row["send_rate"],
    )


def message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        job_id=row["job_id"],
        account_id=row["account_id"],
        seq=row["seq"],
        chunk=row["chunk"],
        email=row["email"],
        name=row["name"],
        variables=json.loads(row["variables"]),
        status=MessageStatus(row["status"]),
        attempts=row["attempts"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        updated_at=row["updated_at"],
        subject=row["subject"],
        created_at=row["created_at"],
        sent_at=row["sent_at"],
        delivered_at=row["delivered_at"],
        events=json.loads(row["events"]),
    )


def template(row: sqlite3.Row) -> Template:
    return Template(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        subject=row["subject"],
        html=row["html"],
        text=row["text"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def suppression(row: sqlite3.Row) -> Suppression:
    # A suppression for every sender domain is stored with domain '' (part of the primary key).
    return Suppression(
        row["id"],
        row["account_id"],
        row["email"],
        row["domain"] or None,
        row["reason"],
        row["created_at"],
        row["expires_at"],
    )


def idempotency(row: sqlite3.Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        row["account_id"],
        row["key"],
        row["fingerprint"],
        IdempotencyState(row["state"]),
        row["created_at"],
        row["expires_at"],
        row["status"],
        row["body"],
        json.loads(row["headers"]),
    )


def webhook(row: sqlite3.Row) -> Webhook:
    return Webhook(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        url=row["url"],
        secret=row["secret"],
        enabled=bool(row["enabled"]),
        events=json.loads(row["events"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        scope=WebhookScope(row["scope"]),
        domains=json.loads(row["domains"]),
        success_count=row["success_count"],
        error_count=row["error_count"],
        errors_since_last_success=row["errors_since_last_success"],
        last_request_at=row["last_request_at"],
        disabled_reason=row["disabled_reason"],
        signing=WebhookSigning(row["signing"]),
    )


def webhook_delivery(row: sqlite3.Row) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        account_id=row["account_id"],
        webhook_id=row["webhook_id"],
        event_type=row["event_type"],
        payload=row["payload"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=WebhookDeliveryStatus(row["status"]),
        attempts=json.loads(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        expires_at=row["expires_at"],
    )
