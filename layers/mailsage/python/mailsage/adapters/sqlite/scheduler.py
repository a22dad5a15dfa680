"""The scheduler port on SQLite: one row per schedule, polled by the local runtime's scheduler loop."""

from __future__ import annotations

import json
import time
from typing import Any

from mailsage.adapters.sqlite.db import Database


class SqliteScheduler:
    def __init__(self, db: Database) -> None:
        self.db = db

    def schedule(self, name: str, at: float, payload: dict[str, Any]) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO schedules (name, at, payload, created_at) VALUES (?, ?, ?, ?)",
            (name, at, json.dumps(payload), time.time()),
        )

    def delete(self, name: str) -> bool:
        cur = self.db.connection().execute("DELETE FROM schedules WHERE name = ?", (name,))
        return cur.rowcount == 1

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Schedules due at `now`, oldest first. They stay until deleted, so a crash between firing
        and deleting fires them again rather than losing them (the sender is idempotent)."""
        rows = self.db.connection().execute(
            "SELECT name, payload FROM schedules WHERE at <= ? ORDER BY at, name", (now,)
        )
        return [(r["name"], json.loads(r["payload"])) for r in rows]
