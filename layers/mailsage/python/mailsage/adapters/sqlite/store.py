"""The store port on SQLite. Every state change is a conditional UPDATE (`... WHERE status = ?`),
the embedded twin of DynamoDB's condition expressions."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from mailsage.adapters.sqlite.db import Database
from mailsage.domain.models import (
    IDEMPOTENCY_LEASE_SECONDS,
    Account,
    CampaignStats,
    Content,
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
from mailsage.errors import Conflict

# The counter column of each engagement kind (ENGAGEMENT_KINDS): counts stay cheap to read.
_ENGAGEMENT_COLUMNS = {"opened": "open_count", "clicked": "click_count", "unsubscribed": "unsubscribe_count"}
_AUTO_DISABLED = "disabled after {} consecutive failed deliveries"  # a webhook's disabled_reason


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        account_id=row["account_id"],
        kind=row["kind"],
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
    )


def _message(row: sqlite3.Row) -> Message:
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


def _event(when: float, status: str, log: str | None) -> str:
    return json.dumps({"time": when, "status": status, "log": log or ""})


def _template(row: sqlite3.Row) -> Template:
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


def _webhook(row: sqlite3.Row) -> Webhook:
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
        scope=row["scope"],
        domains=json.loads(row["domains"]),
        success_count=row["success_count"],
        error_count=row["error_count"],
        errors_since_last_success=row["errors_since_last_success"],
        last_request_at=row["last_request_at"],
        disabled_reason=row["disabled_reason"],
    )


def _delivery(row: sqlite3.Row) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        account_id=row["account_id"],
        webhook_id=row["webhook_id"],
        event_type=row["event_type"],
        payload=row["payload"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        attempts=json.loads(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        expires_at=row["expires_at"],
    )


class SqliteStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- keys -------------------------------------------------------------------------------
    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO api_keys (key_id, account_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
            (key_id, account_id, key_hash, time.time()),
        )

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        row = (
            self.db.connection()
            .execute("SELECT account_id, key_hash FROM api_keys WHERE key_id = ?", (key_id,))
            .fetchone()
        )
        return (row["account_id"], row["key_hash"]) if row else None

    # -- accounts ---------------------------------------------------------------------------
    def put_account(self, account: Account) -> None:
        domains = json.dumps(account.sender_domains) if account.sender_domains is not None else None
        self.db.connection().execute(
            "INSERT OR REPLACE INTO accounts (id, default_provider, sender_domains) VALUES (?, ?, ?)",
            (account.id, account.default_provider, domains),
        )

    def get_account(self, account_id: str) -> Account | None:
        row = self.db.connection().execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        if row is None:
            return None
        domains = json.loads(row["sender_domains"]) if row["sender_domains"] is not None else None
        return Account(row["id"], row["default_provider"], domains)

    # -- templates --------------------------------------------------------------------------
    def put_template(self, template: Template) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO templates (account_id, id, name, subject, html, text, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                template.account_id,
                template.id,
                template.name,
                template.subject,
                template.html,
                template.text,
                template.created_at,
                template.updated_at,
            ),
        )

    def get_template(self, account_id: str, template_id: str) -> Template | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM templates WHERE account_id = ? AND id = ?", (account_id, template_id))
            .fetchone()
        )
        return _template(row) if row else None

    def list_templates(self, account_id: str, limit: int, after: str | None) -> list[Template]:
        rows = self.db.connection().execute(
            "SELECT * FROM templates WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
            (account_id, after or "", limit),
        )
        return [_template(r) for r in rows]

    def delete_template(self, account_id: str, template_id: str) -> bool:
        cur = self.db.connection().execute(
            "DELETE FROM templates WHERE account_id = ? AND id = ?", (account_id, template_id)
        )
        return cur.rowcount == 1

    # -- jobs -------------------------------------------------------------------------------
    def create_job(self, job: Job, messages: Sequence[Message]) -> None:
        if self.db.connection().execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone():
            raise Conflict(f"job {job.id!r} already exists")
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, account_id, kind, state, content, campaign_id, total, chunks,"
                " created_at, updated_at, first_attempt_at, expires_at, retention_metadata_days,"
                " retention_data_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.account_id,
                    job.kind,
                    job.state.value,
                    json.dumps(job.content.to_dict()),
                    job.campaign_id,
                    job.total,
                    job.chunks,
                    job.created_at,
                    job.updated_at,
                    job.first_attempt_at,
                    job.expires_at,
                    job.retention_metadata_days,
                    job.retention_data_days,
                ),
            )
            metadata_until = (
                job.created_at + 86_400 * job.retention_metadata_days if job.retention_metadata_days else None
            )
            conn.executemany(
                "INSERT INTO messages (id, job_id, account_id, seq, chunk, email, name, variables, status,"
                " updated_at, subject, created_at, metadata_until, error_code, error_message)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        m.id,
                        m.job_id,
                        m.account_id,
                        m.seq,
                        m.chunk,
                        m.email,
                        m.name,
                        json.dumps(m.variables, separators=(",", ":")),
                        m.status.value,
                        job.created_at,
                        m.subject,
                        job.created_at,
                        metadata_until,
                        m.error_code,
                        m.error_message,
                    )
                    for m in messages
                ],
            )

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        conn = self.db.connection()
        row = conn.execute(
            "SELECT * FROM jobs WHERE id = ? AND account_id = ?", (job_id, account_id)
        ).fetchone()
        if row is None:
            return None
        job = _job(row)
        if with_counts:
            job.counts = dict(
                conn.execute(
                    "SELECT status, count(*) FROM messages WHERE job_id = ? GROUP BY status", (job_id,)
                ).fetchall()
            )
        return job

    def transition_job(
        self, account_id: str, job_id: str, allowed_from: Iterable[JobState], to: JobState
    ) -> Job | None:
        states = [s.value for s in allowed_from]
        now = time.time()
        final = to in (JobState.COMPLETED, JobState.STOPPED, JobState.EXPIRED)
        cur = self.db.connection().execute(
            f"UPDATE jobs SET state = ?, updated_at = ?, finished_at = CASE WHEN ? THEN ? ELSE finished_at END"
            f" WHERE id = ? AND account_id = ? AND state IN ({','.join('?' * len(states))})",
            (to.value, now, final, now, job_id, account_id, *states),
        )
        return self.get_job(account_id, job_id) if cur.rowcount == 1 else None

    def complete_job_if_done(self, job_id: str) -> bool:
        now = time.time()
        cur = self.db.connection().execute(
            "UPDATE jobs SET state = 'completed', updated_at = ?, finished_at = ?"
            " WHERE id = ? AND state IN ('queued', 'scheduled', 'running', 'paused') AND NOT EXISTS ("
            "   SELECT 1 FROM messages WHERE job_id = ? AND status IN ('queued', 'scheduled', 'sending'))",
            (now, now, job_id, job_id),
        )
        return cur.rowcount == 1

    def record_dead_letter(self, job_id: str, chunk: int, reason: str) -> None:
        entry = json.dumps({"chunk": chunk, "reason": reason, "at": time.time()})
        self.db.connection().execute(
            "UPDATE jobs SET dead_letters = json_insert(dead_letters, '$[#]', json(?)) WHERE id = ?",
            (entry, job_id),
        )

    def active_jobs(self) -> list[tuple[str, str]]:
        rows = self.db.connection().execute(
            "SELECT account_id, id FROM jobs WHERE state IN ('queued', 'running')"
        )
        return [(r[0], r[1]) for r in rows]

    # -- messages ---------------------------------------------------------------------------
    def chunk_messages(self, job_id: str, chunk: int) -> list[Message]:
        rows = self.db.connection().execute(
            "SELECT * FROM messages WHERE job_id = ? AND chunk = ? ORDER BY seq", (job_id, chunk)
        )
        return [_message(r) for r in rows]

    def pending_chunks(self, job_id: str) -> list[int]:
        rows = self.db.connection().execute(
            "SELECT DISTINCT chunk FROM messages WHERE job_id = ? AND status IN ('queued', 'sending')"
            " ORDER BY chunk",
            (job_id,),
        )
        return [r[0] for r in rows]

    def claim_messages(self, job_id: str, message_ids: Sequence[str], lease_seconds: float) -> list[str]:
        now = time.time()
        claimed = []
        with self.db.transaction() as conn:
            for message_id in message_ids:
                cur = conn.execute(
                    "UPDATE messages SET status = 'sending', claimed_at = ?, updated_at = ?"
                    " WHERE id = ? AND job_id = ?"
                    " AND (status = 'queued' OR (status = 'sending' AND claimed_at < ?))",
                    (now, now, message_id, job_id, now - lease_seconds),
                )
                if cur.rowcount == 1:
                    claimed.append(message_id)
            if claimed:
                conn.execute(
                    "UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?"
                    " WHERE id = ? AND state = 'queued'",
                    (now, now, job_id),
                )
        return claimed

    def finish_message(
        self,
        message_id: str,
        status: MessageStatus,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        return self._finish(self.db.connection(), message_id, status, error_code, error_message)

    def finish_and_claim(
        self, message_id: str, status: MessageStatus, next_id: str, lease_seconds: float
    ) -> tuple[bool, bool]:
        with self.db.transaction() as conn:
            finished = self._finish(conn, message_id, status, None, None)
            now = time.time()
            cur = conn.execute(
                "UPDATE messages SET status = 'sending', claimed_at = ?, updated_at = ?"
                " WHERE id = ? AND job_id = (SELECT job_id FROM messages WHERE id = ?)"
                " AND (status = 'queued' OR (status = 'sending' AND claimed_at < ?))",
                (now, now, next_id, message_id, now - lease_seconds),
            )
        return finished, cur.rowcount == 1

    @staticmethod
    def _finish(
        conn: sqlite3.Connection,
        message_id: str,
        status: MessageStatus,
        error_code: str | None,
        error_message: str | None,
    ) -> bool:
        now = time.time()
        event = _event(
            now, status.value, error_message or ("accepted by the relay" if status == "sent" else "")
        )
        cur = conn.execute(
            "UPDATE messages SET status = ?, error_code = ?, error_message = ?, attempts = attempts + 1,"
            " updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,"
            " events = json_insert(events, '$[#]', json(?)),"
            # retention.data counts from now: 0 days means the data goes at the next purge
            " data_until = (SELECT ? + 86400 * retention_data_days FROM jobs WHERE jobs.id = messages.job_id)"
            " WHERE id = ? AND status = 'sending'",
            (status.value, error_code, error_message, now, status.value, now, event, now, message_id),
        )
        return cur.rowcount == 1

    def release_message(self, message_id: str, error_message: str) -> bool:
        now = time.time()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'queued', error_message = ?, attempts = attempts + 1,"
            " claimed_at = NULL, updated_at = ?, events = json_insert(events, '$[#]', json(?))"
            " WHERE id = ? AND status = 'sending'",
            (error_message, now, _event(now, "deferred", error_message), message_id),
        )
        return cur.rowcount == 1

    def cancel_unsent(self, job_id: str) -> int:
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'cancelled', updated_at = ?"
            " WHERE job_id = ? AND status IN ('queued', 'scheduled')",
            (time.time(), job_id),
        )
        return cur.rowcount

    def update_delivery_status(
        self,
        account_id: str,
        message_id: str,
        to: MessageStatus,
        allowed_from: Iterable[MessageStatus],
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        states = [s.value for s in allowed_from]
        now = time.time()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = ?, error_code = coalesce(?, error_code),"
            " error_message = coalesce(?, error_message), updated_at = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
            " events = json_insert(events, '$[#]', json(?))"
            f" WHERE id = ? AND account_id = ? AND status IN ({','.join('?' * len(states))})",
            (
                to.value,
                error_code,
                error_message,
                now,
                to.value,
                now,
                _event(now, to.value, error_message or to.value),
                message_id,
                account_id,
                *states,
            ),
        )
        return cur.rowcount == 1

    def get_message(self, account_id: str, message_id: str) -> Message | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM messages WHERE id = ? AND account_id = ?", (message_id, account_id))
            .fetchone()
        )
        return _message(row) if row else None

    # -- listing, scheduling, expiry, retention ----------------------------------------------
    def list_messages(self, account_id: str, query: MessageQuery) -> tuple[list[Message], bool]:
        where: list[str] = ["m.account_id = ?"]
        args: list[Any] = [account_id]
        if query.statuses:
            where.append(f"m.status IN ({','.join('?' * len(query.statuses))})")
            args += list(query.statuses)
        if query.recipient:
            where.append("lower(m.email) = lower(?)")
            args.append(query.recipient)
        if query.sender:
            where.append("instr(lower(json_extract(j.content, '$.from')), lower(?)) > 0")
            args.append(query.sender)
        if query.subject:
            where.append("instr(lower(m.subject), lower(?)) > 0")
            args.append(query.subject)
        if query.message_id:
            where.append("m.id = ?")
            args.append(query.message_id)
        for tag in query.tags:
            where.append("EXISTS (SELECT 1 FROM json_each(j.content, '$.tags') WHERE value = ?)")
            args.append(tag)
        if query.from_time is not None:
            where.append("m.created_at >= ?")
            args.append(query.from_time)
        if query.to_time is not None:
            where.append("m.created_at <= ?")
            args.append(query.to_time)
        order = "DESC"
        cursor = query.after or query.before
        if cursor:
            anchor = (
                self.db.connection()
                .execute(
                    "SELECT created_at, id FROM messages WHERE id = ? AND account_id = ?",
                    (cursor, account_id),
                )
                .fetchone()
            )
            if anchor is not None:
                # Newest first: "after" pages towards older messages, "before" towards newer ones.
                where.append(
                    "(m.created_at, m.id) < (?, ?)" if query.after else "(m.created_at, m.id) > (?, ?)"
                )
                args += [anchor["created_at"], anchor["id"]]
                order = "DESC" if query.after else "ASC"
        rows = (
            self.db.connection()
            .execute(
                f"SELECT m.* FROM messages m JOIN jobs j ON j.id = m.job_id WHERE {' AND '.join(where)}"
                f" ORDER BY m.created_at {order}, m.id {order} LIMIT ?",
                (*args, query.limit + 1),
            )
            .fetchall()
        )
        more = len(rows) > query.limit
        messages = [_message(r) for r in rows[: query.limit]]
        if order == "ASC":
            messages.reverse()
        return messages, more

    def start_scheduled_job(self, job_id: str) -> bool:
        now = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ? AND state = 'scheduled'",
                (now, job_id),
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                "UPDATE messages SET status = 'queued', updated_at = ? WHERE job_id = ? AND status = 'scheduled'",
                (now, job_id),
            )
        return True

    def cancel_message(self, account_id: str, message_id: str) -> bool:
        now = time.time()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'cancelled', updated_at = ?, events = json_insert(events, '$[#]', json(?))"
            " WHERE id = ? AND account_id = ? AND status = 'scheduled'",
            (now, _event(now, "cancelled", "cancelled before its first attempt"), message_id, account_id),
        )
        return cur.rowcount == 1

    def expire_unsent(self, job_id: str) -> int:
        now = time.time()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'expired', updated_at = ?, events = json_insert(events, '$[#]', json(?))"
            " WHERE job_id = ? AND status IN ('queued', 'scheduled')",
            (now, _event(now, "expired", "not sent before the schedule expired"), job_id),
        )
        return cur.rowcount

    def purge_expired(self, now: float) -> int:
        with self.db.transaction() as conn:
            data = conn.execute(
                "UPDATE messages SET variables = '{}', data_until = NULL WHERE data_until <= ?", (now,)
            ).rowcount
            gone = conn.execute("DELETE FROM messages WHERE metadata_until <= ?", (now,)).rowcount
            # A finished job's content goes once none of its messages still keeps data.
            conn.execute(
                "UPDATE jobs SET content = json_set(content, '$.text', NULL, '$.html', NULL, '$.amp', NULL,"
                " '$.attachments', json('[]'), '$.purged', json('true'))"
                " WHERE retention_data_days IS NOT NULL AND state IN ('completed', 'stopped', 'expired')"
                " AND json_extract(content, '$.purged') IS NULL AND NOT EXISTS ("
                "   SELECT 1 FROM messages WHERE job_id = jobs.id AND (data_until IS NOT NULL"
                "   OR status IN ('queued', 'scheduled', 'sending')))"
            )
            conn.execute(
                "DELETE FROM jobs WHERE retention_metadata_days IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE job_id = jobs.id)"
            )
            conn.execute("DELETE FROM webhook_deliveries WHERE expires_at <= ?", (now,))
        return data + gone

    # -- suppressions --------------------------------------------------------------------------
    def put_suppression(self, suppression: Suppression) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO suppressions (account_id, email, domain, id, reason, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                suppression.account_id,
                suppression.email.lower(),
                (suppression.domain or "").lower(),
                suppression.id,
                suppression.reason,
                suppression.created_at,
                suppression.expires_at,
            ),
        )

    def list_suppressions(
        self,
        account_id: str,
        email: str | None,
        domain: str | None,
        from_time: float | None,
        to_time: float | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[Suppression], bool]:
        where: list[str] = ["account_id = ?", "expires_at > ?"]
        args: list[Any] = [account_id, time.time()]
        if email:
            where.append("email = ?")
            args.append(email.lower())
        if domain:
            where.append("domain = ?")
            args.append(domain.lower())
        if from_time is not None:
            where.append("created_at >= ?")
            args.append(from_time)
        if to_time is not None:
            where.append("created_at <= ?")
            args.append(to_time)
        if after:
            where.append("id > ?")
            args.append(after)
        rows = (
            self.db.connection()
            .execute(
                f"SELECT * FROM suppressions WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                (*args, limit + 1),
            )
            .fetchall()
        )
        found = [
            Suppression(
                r["id"],
                r["account_id"],
                r["email"],
                r["domain"] or None,
                r["reason"],
                r["created_at"],
                r["expires_at"],
            )
            for r in rows[:limit]
        ]
        return found, len(rows) > limit

    def delete_suppressions(self, account_id: str, email: str | None, domain: str | None) -> int:
        where: list[str] = ["account_id = ?"]
        args: list[Any] = [account_id]
        if email:
            where.append("email = ?")
            args.append(email.lower())
        if domain:
            where.append("domain = ?")
            args.append(domain.lower())
        return (
            self.db.connection()
            .execute(f"DELETE FROM suppressions WHERE {' AND '.join(where)}", args)
            .rowcount
        )

    def suppressed(self, account_id: str, emails: Sequence[str], domain: str | None, now: float) -> set[str]:
        lowered = sorted({e.lower() for e in emails})
        found: set[str] = set()
        for start in range(0, len(lowered), 500):  # SQLite's bound-parameter limit
            part = lowered[start : start + 500]
            rows = self.db.connection().execute(
                f"SELECT email FROM suppressions WHERE account_id = ? AND email IN ({','.join('?' * len(part))})"
                " AND expires_at > ? AND (domain = '' OR domain = ?)",
                (account_id, *part, now, (domain or "").lower()),
            )
            found.update(r[0] for r in rows)
        return found

    # -- idempotency ----------------------------------------------------------------------------
    def begin_idempotent(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idempotency WHERE account_id = ? AND key = ?", (record.account_id, record.key)
            ).fetchone()
            abandoned = (
                row is not None
                and row["state"] == "in_progress"
                and (row["created_at"] <= record.created_at - IDEMPOTENCY_LEASE_SECONDS)
            )
            if row is not None and row["expires_at"] > record.created_at and not abandoned:
                return IdempotencyRecord(
                    row["account_id"],
                    row["key"],
                    row["fingerprint"],
                    row["state"],
                    row["created_at"],
                    row["expires_at"],
                    row["status"],
                    row["body"],
                    json.loads(row["headers"]),
                )
            conn.execute(
                "INSERT OR REPLACE INTO idempotency (account_id, key, fingerprint, state, created_at, expires_at)"
                " VALUES (?, ?, ?, 'in_progress', ?, ?)",
                (record.account_id, record.key, record.fingerprint, record.created_at, record.expires_at),
            )
        return None

    def finish_idempotent(
        self, account_id: str, key: str, status: int, body: str, headers: dict[str, str]
    ) -> None:
        self.db.connection().execute(
            "UPDATE idempotency SET state = 'done', status = ?, body = ?, headers = ? WHERE account_id = ? AND key = ?",
            (status, body, json.dumps(headers), account_id, key),
        )

    def release_idempotent(self, account_id: str, key: str) -> None:
        self.db.connection().execute(
            "DELETE FROM idempotency WHERE account_id = ? AND key = ?", (account_id, key)
        )

    # -- engagement and campaigns ------------------------------------------------------------------
    def record_engagement(
        self, account_id: str, message_id: str, kind: str, at: float, detail: str | None = None
    ) -> int | None:
        column = _ENGAGEMENT_COLUMNS.get(kind)
        if column is None:
            raise ValueError(f"unknown engagement kind {kind!r}")
        # One statement counts and logs, so concurrent opens each get their own number.
        rows = (
            self.db.connection()
            .execute(
                f"UPDATE messages SET {column} = {column} + 1, events = json_insert(events, '$[#]', json(?))"
                f" WHERE id = ? AND account_id = ? RETURNING {column}",
                (_event(at, kind, detail), message_id, account_id),
            )
            .fetchall()  # to the end: the statement (and its autocommit) completes
        )
        return int(rows[0][0]) if rows else None

    def campaign_stats(self, account_id: str, campaign_id: str) -> CampaignStats | None:
        conn = self.db.connection()
        jobs = conn.execute(
            "SELECT count(*) FROM jobs WHERE account_id = ? AND campaign_id = ?", (account_id, campaign_id)
        ).fetchone()[0]
        if not jobs:
            return None
        rows = conn.execute(
            "SELECT m.status, count(*), sum(m.open_count > 0), sum(m.click_count > 0),"
            " sum(m.unsubscribe_count > 0) FROM jobs j JOIN messages m ON m.job_id = j.id"
            " WHERE j.account_id = ? AND j.campaign_id = ? GROUP BY m.status",
            (account_id, campaign_id),
        ).fetchall()
        return CampaignStats(
            campaign_id=campaign_id,
            jobs=jobs,
            counts={r[0]: r[1] for r in rows},
            opened=sum(r[2] for r in rows),
            clicked=sum(r[3] for r in rows),
            unsubscribed=sum(r[4] for r in rows),
        )

    # -- webhooks ---------------------------------------------------------------------------------
    def put_webhook(self, webhook: Webhook) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO webhooks (account_id, id, name, url, secret, enabled, events, scope,"
            " domains, created_at, updated_at, success_count, error_count, errors_since_last_success,"
            " last_request_at, disabled_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                webhook.account_id,
                webhook.id,
                webhook.name,
                webhook.url,
                webhook.secret,
                int(webhook.enabled),
                json.dumps(webhook.events),
                webhook.scope,
                json.dumps(webhook.domains),
                webhook.created_at,
                webhook.updated_at,
                webhook.success_count,
                webhook.error_count,
                webhook.errors_since_last_success,
                webhook.last_request_at,
                webhook.disabled_reason,
            ),
        )

    def get_webhook(self, account_id: str, webhook_id: str) -> Webhook | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM webhooks WHERE account_id = ? AND id = ?", (account_id, webhook_id))
            .fetchone()
        )
        return _webhook(row) if row else None

    def list_webhooks(self, account_id: str, limit: int, after: str | None) -> tuple[list[Webhook], bool]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM webhooks WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
                (account_id, after or "", limit + 1),
            )
            .fetchall()
        )
        return [_webhook(r) for r in rows[:limit]], len(rows) > limit

    def delete_webhook(self, account_id: str, webhook_id: str) -> bool:
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ?",
                (account_id, webhook_id),
            )
            cur = conn.execute(
                "DELETE FROM webhooks WHERE account_id = ? AND id = ?", (account_id, webhook_id)
            )
        return cur.rowcount == 1

    def record_webhook_attempt(
        self, account_id: str, webhook_id: str, ok: bool, at: float, disable_after: int
    ) -> Webhook | None:
        # Every right-hand side reads the row as it was before this UPDATE.
        failing = "(NOT :ok AND errors_since_last_success + 1 >= :disable_after)"
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE webhooks SET last_request_at = :at,"
                " success_count = success_count + :ok, error_count = error_count + NOT :ok,"
                " errors_since_last_success = CASE WHEN :ok THEN 0 ELSE errors_since_last_success + 1 END,"
                f" disabled_reason = CASE WHEN enabled AND {failing} THEN :reason ELSE disabled_reason END,"
                f" enabled = CASE WHEN {failing} THEN 0 ELSE enabled END"
                " WHERE account_id = :account AND id = :id",
                {
                    "at": at,
                    "ok": int(ok),
                    "disable_after": disable_after,
                    "reason": _AUTO_DISABLED.format(disable_after),
                    "account": account_id,
                    "id": webhook_id,
                },
            )
            if cur.rowcount != 1:
                return None
            row = conn.execute(
                "SELECT * FROM webhooks WHERE account_id = ? AND id = ?", (account_id, webhook_id)
            ).fetchone()
        return _webhook(row)

    # -- webhook delivery log ---------------------------------------------------------------------
    def put_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO webhook_deliveries (account_id, webhook_id, id, event_type, payload,"
            " created_at, updated_at, status, attempts, next_attempt_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                delivery.account_id,
                delivery.webhook_id,
                delivery.id,
                delivery.event_type,
                delivery.payload,
                delivery.created_at,
                delivery.updated_at,
                delivery.status,
                json.dumps(delivery.attempts),
                delivery.next_attempt_at,
                delivery.expires_at,
            ),
        )

    def get_webhook_delivery(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> WebhookDelivery | None:
        # Expired entries wait for purge_expired; until then they are already gone for readers.
        row = (
            self.db.connection()
            .execute(
                "SELECT * FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ? AND id = ?"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (account_id, webhook_id, delivery_id, time.time()),
            )
            .fetchone()
        )
        return _delivery(row) if row else None

    def list_webhook_deliveries(
        self, account_id: str, webhook_id: str, limit: int, after: str | None
    ) -> tuple[list[WebhookDelivery], bool]:
        conn = self.db.connection()
        where = ["account_id = ?", "webhook_id = ?", "(expires_at IS NULL OR expires_at > ?)"]
        args: list[Any] = [account_id, webhook_id, time.time()]
        if after:
            # The cursor may have expired since the last page: its position still counts.
            anchor = conn.execute(
                "SELECT created_at, id FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ? AND id = ?",
                (account_id, webhook_id, after),
            ).fetchone()
            if anchor is not None:
                where.append("(created_at, id) < (?, ?)")
                args += [anchor["created_at"], anchor["id"]]
        rows = conn.execute(
            f"SELECT * FROM webhook_deliveries WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [_delivery(r) for r in rows[:limit]], len(rows) > limit
