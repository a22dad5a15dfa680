"""ChunkStore on SQLite: what a sender does to the messages of one chunk. A message moves
queued -> sending -> (sent | failed | ...) only by a conditional UPDATE, so a redelivered chunk
skips what another worker already holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import Message, MessageStatus

_FINISH = (
    "UPDATE messages SET status = ?, error_code = ?, error_message = ?, attempts = attempts + 1,"
    " updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,"
    " events = json_insert(events, '$[#]', json(?)),"
    # retention.data counts from now: 0 days means the data goes at the next purge
    " data_until = (SELECT ? + 86400 * retention_data_days FROM jobs WHERE jobs.id = messages.job_id)"
    " WHERE id = ? AND status = 'sending'"
)


class SqliteChunks(SqliteTables):
    def chunk_messages(self, job_id: str, chunk: int) -> list[Message]:
        rows = self.db.connection().execute(
            "SELECT * FROM messages WHERE job_id = ? AND chunk = ? ORDER BY seq", (job_id, chunk)
        )
        return [records.message(r) for r in rows]

    def claim_messages(self, job_id: str, message_ids: Sequence[str], lease_seconds: float) -> list[str]:
        now = self.clock()
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
            if claimed:  # a job of one message goes from queued to completed (see complete_job_if_done)
                conn.execute(
                    "UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?"
                    " WHERE id = ? AND state = 'queued' AND total > 1",
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
            now = self.clock()
            cur = conn.execute(
                "UPDATE messages SET status = 'sending', claimed_at = ?, updated_at = ?"
                " WHERE id = ? AND job_id = (SELECT job_id FROM messages WHERE id = ?)"
                " AND (status = 'queued' OR (status = 'sending' AND claimed_at < ?))",
                (now, now, next_id, message_id, now - lease_seconds),
            )
        return finished, cur.rowcount == 1

    def _finish(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        status: MessageStatus,
        error_code: str | None,
        error_message: str | None,
    ) -> bool:
        now = self.clock()
        event = records.event_json(
            now, status.value, error_message or ("accepted by the relay" if status == "sent" else "")
        )
        cur = conn.execute(
            _FINISH, (status.value, error_code, error_message, now, status.value, now, event, now, message_id)
        )
        return cur.rowcount == 1

    def release_message(self, message_id: str, error_message: str, counted: bool = True) -> bool:
        now = self.clock()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'queued', error_message = ?, attempts = attempts + ?,"
            " claimed_at = NULL, updated_at = ?, events = json_insert(events, '$[#]', json(?))"
            " WHERE id = ? AND status = 'sending'",
            (
                error_message,
                int(counted),
                now,
                records.event_json(now, "deferred", error_message),
                message_id,
            ),
        )
        return cur.rowcount == 1
