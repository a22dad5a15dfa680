"""The store port on SQLite. Every state change is a conditional UPDATE (`... WHERE status = ?`),
the embedded twin of DynamoDB's condition expressions."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

from mailsage.adapters.sqlite.db import Database
from mailsage.domain.models import Account, Content, Job, JobState, Message, MessageStatus, Template
from mailsage.errors import Conflict


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
    )


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
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            conn.executemany(
                "INSERT INTO messages (id, job_id, account_id, seq, chunk, email, name, variables, status,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            " WHERE id = ? AND state IN ('queued', 'running', 'paused') AND NOT EXISTS ("
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
        cur = self.db.connection().execute(
            "UPDATE messages SET status = ?, error_code = ?, error_message = ?, attempts = attempts + 1,"
            " updated_at = ? WHERE id = ? AND status = 'sending'",
            (status.value, error_code, error_message, time.time(), message_id),
        )
        return cur.rowcount == 1

    def release_message(self, message_id: str, error_message: str) -> bool:
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'queued', error_message = ?, attempts = attempts + 1,"
            " claimed_at = NULL, updated_at = ? WHERE id = ? AND status = 'sending'",
            (error_message, time.time(), message_id),
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
        cur = self.db.connection().execute(
            "UPDATE messages SET status = ?, error_code = coalesce(?, error_code),"
            " error_message = coalesce(?, error_message), updated_at = ?"
            f" WHERE id = ? AND account_id = ? AND status IN ({','.join('?' * len(states))})",
            (to.value, error_code, error_message, time.time(), message_id, account_id, *states),
        )
        return cur.rowcount == 1

    def get_message(self, account_id: str, message_id: str) -> Message | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM messages WHERE id = ? AND account_id = ?", (message_id, account_id))
            .fetchone()
        )
        return _message(row) if row else None
