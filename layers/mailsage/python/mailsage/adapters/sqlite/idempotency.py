"""IdempotencyStore on SQLite: one record per (account, key), taken in one write transaction so
two requests with the same key cannot both begin."""

from __future__ import annotations

import json

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import IDEMPOTENCY_LEASE_SECONDS, IdempotencyRecord, IdempotencyState


class SqliteIdempotency(SqliteTables):
    def begin_idempotent(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idempotency WHERE account_id = ? AND key = ?", (record.account_id, record.key)
            ).fetchone()
            abandoned = (
                row is not None
                and row["state"] == IdempotencyState.IN_PROGRESS
                and (row["created_at"] <= record.created_at - IDEMPOTENCY_LEASE_SECONDS)
            )
            if row is not None and row["expires_at"] > record.created_at and not abandoned:
                return records.idempotency(row)
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
