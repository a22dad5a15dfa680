"""The queue port on SQLite, with SQS semantics: a received message is invisible for a while,
reappears unless acknowledged, and moves to the dead-letter table after `max_receives` receives."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from mailsage.adapters.sqlite.db import Database
from mailsage.domain.clock import Clock, system_clock
from mailsage.ports import Received

MAX_DELAY_SECONDS = 900.0  # as SQS's DelaySeconds


class SqliteQueue:
    supports_dedup = True

    def __init__(
        self,
        db: Database,
        name: str = "send",
        visibility_timeout: float = 300.0,
        max_receives: int = 5,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.clock = clock  # delays and visibility (a simulation moves it; waiting stays real time)
        self.name = name
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        # Wakes receivers in this process as soon as something is sent (no polling delay).
        self._arrived = threading.Condition()

    def send(
        self,
        bodies: Sequence[dict[str, Any]],
        dedup_keys: Sequence[str] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        now = self.clock()
        visible_at = now + max(0.0, min(delay_seconds, MAX_DELAY_SECONDS))
        keys: Sequence[str | None] = dedup_keys if dedup_keys is not None else [None] * len(bodies)
        with self.db.transaction() as conn:
            for body, key in zip(bodies, keys, strict=True):
                # Skip a key still waiting untouched in the queue; a copy already received (in flight,
                # possibly about to be dropped) does not count, so nothing can be lost this way.
                conn.execute(
                    "INSERT INTO queue_messages (queue, dedup_key, body, visible_at, sent_at)"
                    " SELECT ?, ?, ?, ?, ? WHERE ? IS NULL OR NOT EXISTS ("
                    "   SELECT 1 FROM queue_messages WHERE queue = ? AND dedup_key = ? AND receive_count = 0)",
                    (self.name, key, json.dumps(body), visible_at, now, key, self.name, key),
                )
        with self._arrived:
            self._arrived.notify_all()

    def receive(self, max_messages: int = 10, wait_seconds: float = 0.0) -> list[Received]:
        deadline = time.monotonic() + wait_seconds
        while True:
            received = self._receive_now(max_messages)
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                return received
            with self._arrived:
                # Also wakes up for delayed messages becoming visible: poll at least every 0.2 s.
                self._arrived.wait(timeout=min(remaining, 0.2))

    def _receive_now(self, max_messages: int) -> list[Received]:
        now = self.clock()
        out: list[Received] = []
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, body, receive_count, sent_at FROM queue_messages"
                " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?",
                (self.name, now, max_messages),
            ).fetchall()
            for row in rows:
                if row["receive_count"] >= self.max_receives:
                    conn.execute(
                        "INSERT INTO queue_dead_letters (queue, body, receive_count, sent_at, dead_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (self.name, row["body"], row["receive_count"], row["sent_at"], now),
                    )
                    conn.execute("DELETE FROM queue_messages WHERE id = ?", (row["id"],))
                    continue
                receipt = f"{row['id']}.{secrets.token_hex(8)}"
                conn.execute(
                    "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?, receipt = ?"
                    " WHERE id = ?",
                    (now + self.visibility_timeout, receipt, row["id"]),
                )
                out.append(
                    Received(
                        receipt=receipt,
                        body=json.loads(row["body"]),
                        receive_count=row["receive_count"] + 1,
                        message_id=str(row["id"]),
                    )
                )
        return out

    def ack(self, receipt: str) -> None:
        self.db.connection().execute(
            "DELETE FROM queue_messages WHERE id = ? AND receipt = ?", (receipt.split(".")[0], receipt)
        )

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        self.db.connection().execute(
            "UPDATE queue_messages SET visible_at = ? WHERE id = ? AND receipt = ?",
            (self.clock() + delay_seconds, receipt.split(".")[0], receipt),
        )

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = self.db.connection().execute(
            "SELECT body, receive_count, dead_at FROM queue_dead_letters WHERE queue = ? ORDER BY id",
            (self.name,),
        )
        return [
            {"body": json.loads(r["body"]), "receive_count": r["receive_count"], "dead_at": r["dead_at"]}
            for r in rows
        ]

    def waiting(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The bodies in the queue, oldest first, without receiving them (for listings)."""
        rows = self.db.connection().execute(
            "SELECT body, sent_at FROM queue_messages WHERE queue = ? ORDER BY id LIMIT ?", (self.name, limit)
        )
        return [{"body": json.loads(r["body"]), "sent_at": r["sent_at"]} for r in rows]

    def depth(self) -> int:
        row = (
            self.db.connection()
            .execute("SELECT count(*) FROM queue_messages WHERE queue = ?", (self.name,))
            .fetchone()
        )
        return int(row[0])
