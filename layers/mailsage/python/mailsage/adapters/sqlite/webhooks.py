"""WebhookStore and WebhookDeliveryStore on SQLite: endpoints with their counters, and the log of
what was sent to each (expired entries are hidden from readers until the purge drops them)."""

from __future__ import annotations

import json
from typing import Any

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import Webhook, WebhookDelivery

_AUTO_DISABLED = "disabled after {} consecutive failed deliveries"  # a webhook's disabled_reason
# Every right-hand side reads the row as it was before this UPDATE.
_FAILING = "(NOT :ok AND errors_since_last_success + 1 >= :disable_after)"
_COUNT_ATTEMPT = (
    "UPDATE webhooks SET last_request_at = :at,"
    " success_count = success_count + :ok, error_count = error_count + NOT :ok,"
    " errors_since_last_success = CASE WHEN :ok THEN 0 ELSE errors_since_last_success + 1 END,"
    f" disabled_reason = CASE WHEN enabled AND {_FAILING} THEN :reason ELSE disabled_reason END,"
    f" enabled = CASE WHEN {_FAILING} THEN 0 ELSE enabled END"
    " WHERE account_id = :account AND id = :id"
)


class SqliteWebhooks(SqliteTables):
    def put_webhook(self, webhook: Webhook) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO webhooks (account_id, id, name, url, secret, enabled, events, scope,"
            " domains, created_at, updated_at, success_count, error_count, errors_since_last_success,"
            " last_request_at, disabled_reason, signing)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                webhook.signing,
            ),
        )

    def get_webhook(self, account_id: str, webhook_id: str) -> Webhook | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM webhooks WHERE account_id = ? AND id = ?", (account_id, webhook_id))
            .fetchone()
        )
        return records.webhook(row) if row else None

    def list_webhooks(self, account_id: str, limit: int, after: str | None) -> tuple[list[Webhook], bool]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM webhooks WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
                (account_id, after or "", limit + 1),
            )
            .fetchall()
        )
        return [records.webhook(r) for r in rows[:limit]], len(rows) > limit

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
        with self.db.transaction() as conn:
            cur = conn.execute(
                _COUNT_ATTEMPT,
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
        return records.webhook(row)


class SqliteWebhookDeliveries(SqliteTables):
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
                (account_id, webhook_id, delivery_id, self.clock()),
            )
            .fetchone()
        )
        return records.webhook_delivery(row) if row else None

    def list_webhook_deliveries(
        self, account_id: str, webhook_id: str, limit: int, after: str | None
    ) -> tuple[list[WebhookDelivery], bool]:
        conn = self.db.connection()
        where = ["account_id = ?", "webhook_id = ?", "(expires_at IS NULL OR expires_at > ?)"]
        args: list[Any] = [account_id, webhook_id, self.clock()]
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
        return [records.webhook_delivery(r) for r in rows[:limit]], len(rows) > limit
