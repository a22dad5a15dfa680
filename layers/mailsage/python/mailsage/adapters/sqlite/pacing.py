"""PacingStore on SQLite: one row per key (the JSON state and a version). A change reads and
writes inside one BEGIN IMMEDIATE transaction, which takes the database's write lock first, so
every thread and process using the file applies its changes one after another: none is lost and
none is re-run."""

from __future__ import annotations

import json

from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.ports import Change, PacingState
from mailsage.ports.pacing import T


class SqlitePacing(SqliteTables):
    def change_pacing(self, key: str, change: Change[T]) -> T:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM pacing WHERE key = ?", (key,)).fetchone()
            new, result = change(json.loads(row["state"]) if row is not None else None)
            if new is not None:
                conn.execute(
                    "INSERT INTO pacing (key, state, version, updated_at) VALUES (?, ?, 1, ?)"
                    " ON CONFLICT (key) DO UPDATE SET state = excluded.state,"
                    " version = pacing.version + 1, updated_at = excluded.updated_at",
                    (key, json.dumps(new, separators=(",", ":")), self.clock()),
                )
        return result

    def pacing_state(self, key: str) -> PacingState | None:
        row = self.db.connection().execute("SELECT state FROM pacing WHERE key = ?", (key,)).fetchone()
        return json.loads(row["state"]) if row is not None else None
