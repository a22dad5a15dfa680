"""JobStore on SQLite: a job with all its messages, its state, and the job-wide moves of its
messages. Every state change is a conditional UPDATE whose allowed states come from
domain/job_states.py, so the rules have one source."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables, sql_list
from mailsage.domain.job_states import ACTIVE, FINAL, LIVE, PENDING_MESSAGES, SENDABLE, UNSTARTED_MESSAGES
from mailsage.domain.models import MESSAGE_UNSENT, Job, JobState, Message
from mailsage.errors import Conflict

_INSERT_JOB = (
    "INSERT INTO jobs (id, account_id, kind, state, content, campaign_id, total, chunks,"
    " created_at, updated_at, first_attempt_at, expires_at, retention_metadata_days,"
    " retention_data_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (id, job_id, account_id, seq, chunk, email, name, variables, status,"
    " updated_at, subject, created_at, metadata_until, error_code, error_message)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A live job completes once none of its messages may still be sent.
_COMPLETE_WHERE = (
    f" WHERE id = ? AND state IN {sql_list(LIVE)} AND NOT EXISTS ("
    f"   SELECT 1 FROM messages WHERE job_id = ? AND status IN {sql_list(MESSAGE_UNSENT)})"
)
# A job of one message was never `running` (claim_messages): it starts as it completes.
_COMPLETE_IF_DONE = (
    "UPDATE jobs SET state = 'completed', updated_at = ?, finished_at = ?,"
    " started_at = COALESCE(started_at, ?)" + _COMPLETE_WHERE
)
# The same, recording the chunk's pacing in the same statement (as record_pacing does)
_COMPLETE_IF_DONE_PACED = (
    "UPDATE jobs SET state = 'completed', updated_at = ?, finished_at = ?,"
    " started_at = COALESCE(started_at, ?), throttled = throttled + ?, send_rate = ?" + _COMPLETE_WHERE
)
# Only a job a sender works on is parked; only a parked one (it has a reason) resumes by itself.
_PARK = (
    "UPDATE jobs SET state = 'paused', paused_reason = ?, updated_at = ?"
    f" WHERE id = ? AND account_id = ? AND state IN {sql_list(SENDABLE)}"
)
# The probe that unparks a job has just sent a message: a job parked before it started has now.
_UNPARK = (
    "UPDATE jobs SET state = 'running', paused_reason = NULL, updated_at = ?,"
    " started_at = COALESCE(started_at, ?)"
    " WHERE id = ? AND account_id = ? AND state = 'paused' AND paused_reason IS NOT NULL"
)


def _job_row(job: Job) -> tuple[Any, ...]:
    return (
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
    )


def _message_rows(job: Job, messages: Sequence[Message]) -> list[tuple[Any, ...]]:
    metadata_until = (
        job.created_at + 86_400 * job.retention_metadata_days if job.retention_metadata_days else None
    )
    return [
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
    ]


class SqliteJobs(SqliteTables):
    def create_job(self, job: Job, messages: Sequence[Message]) -> None:
        if self.db.connection().execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone():
            raise Conflict(f"job {job.id!r} already exists")
        with self.db.transaction() as conn:
            conn.execute(_INSERT_JOB, _job_row(job))
            conn.executemany(_INSERT_MESSAGE, _message_rows(job, messages))

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        conn = self.db.connection()
        row = conn.execute(
            "SELECT * FROM jobs WHERE id = ? AND account_id = ?", (job_id, account_id)
        ).fetchone()
        if row is None:
            return None
        job = records.job(row)
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
        now = self.clock()
        final = to in FINAL
        # A caller's move takes the job over: a parked job paused, resumed or stopped by a caller
        # no longer resumes by itself.
        cur = self.db.connection().execute(
            "UPDATE jobs SET state = ?, updated_at = ?, paused_reason = NULL,"
            " finished_at = CASE WHEN ? THEN ? ELSE finished_at END"
            f" WHERE id = ? AND account_id = ? AND state IN ({','.join('?' * len(states))})",
            (to.value, now, final, now, job_id, account_id, *states),
        )
        return self.get_job(account_id, job_id) if cur.rowcount == 1 else None

    def park_job(self, account_id: str, job_id: str, reason: str) -> Job | None:
        cur = self.db.connection().execute(_PARK, (reason, self.clock(), job_id, account_id))
        return self.get_job(account_id, job_id) if cur.rowcount == 1 else None

    def unpark_job(self, account_id: str, job_id: str) -> Job | None:
        now = self.clock()
        cur = self.db.connection().execute(_UNPARK, (now, now, job_id, account_id))
        return self.get_job(account_id, job_id) if cur.rowcount == 1 else None

    def record_pacing(self, job_id: str, throttled: int, send_rate: float | None) -> None:
        # One UPDATE adds to the count in place, so concurrent senders never lose each other's.
        self.db.connection().execute(
            "UPDATE jobs SET throttled = throttled + ?, send_rate = ? WHERE id = ?",
            (throttled, send_rate, job_id),
        )

    def complete_job_if_done(self, job_id: str, pacing: tuple[int, float | None] | None = None) -> bool:
        now = self.clock()
        if pacing is None:
            cur = self.db.connection().execute(_COMPLETE_IF_DONE, (now, now, now, job_id, job_id))
        else:
            cur = self.db.connection().execute(
                _COMPLETE_IF_DONE_PACED, (now, now, now, *pacing, job_id, job_id)
            )
        return cur.rowcount == 1

    def record_dead_letter(self, job_id: str, chunk: int, reason: str) -> None:
        entry = json.dumps({"chunk": chunk, "reason": reason, "at": self.clock()})
        self.db.connection().execute(
            "UPDATE jobs SET dead_letters = json_insert(dead_letters, '$[#]', json(?)) WHERE id = ?",
            (entry, job_id),
        )

    def active_jobs(self) -> list[tuple[str, str]]:
        rows = self.db.connection().execute(
            f"SELECT account_id, id FROM jobs WHERE state IN {sql_list(ACTIVE)}"
        )
        return [(r[0], r[1]) for r in rows]

    def start_scheduled_job(self, job_id: str) -> bool:
        now = self.clock()
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

    def cancel_unsent(self, job_id: str) -> int:
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'cancelled', updated_at = ?"
            f" WHERE job_id = ? AND status IN {sql_list(UNSTARTED_MESSAGES)}",
            (self.clock(), job_id),
        )
        return cur.rowcount

    def expire_unsent(self, job_id: str) -> int:
        now = self.clock()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'expired', updated_at = ?, events = json_insert(events, '$[#]', json(?))"
            f" WHERE job_id = ? AND status IN {sql_list(UNSTARTED_MESSAGES)}",
            (now, records.event_json(now, "expired", "not sent before the schedule expired"), job_id),
        )
        return cur.rowcount

    def pending_chunks(self, job_id: str) -> list[int]:
        rows = self.db.connection().execute(
            f"SELECT DISTINCT chunk FROM messages WHERE job_id = ? AND status IN {sql_list(PENDING_MESSAGES)}"
            " ORDER BY chunk",
            (job_id,),
        )
        return [r[0] for r in rows]
