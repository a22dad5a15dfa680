"""AccountStore on SQLite: accounts and their API keys (stored as hashes)."""

from __future__ import annotations

import json

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.api_keys import ApiKeyInfo
from mailsage.domain.models import Account


class SqliteAccounts(SqliteTables):
    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO api_keys (key_id, account_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
            (key_id, account_id, key_hash, self.clock()),
        )

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        row = (
            self.db.connection()
            .execute("SELECT account_id, key_hash FROM api_keys WHERE key_id = ?", (key_id,))
            .fetchone()
        )
        return (row["account_id"], row["key_hash"]) if row else None

    def list_api_keys(self, account_id: str | None = None) -> list[ApiKeyInfo]:
        query = "SELECT key_id, account_id, created_at FROM api_keys"
        rows = self.db.connection().execute(
            query + (" WHERE account_id = ?" if account_id else "") + " ORDER BY created_at, key_id",
            (account_id,) if account_id else (),
        )
        return [ApiKeyInfo(row["key_id"], row["account_id"], row["created_at"]) for row in rows]

    def delete_api_key(self, key_id: str) -> bool:
        cursor = self.db.connection().execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
        return cursor.rowcount > 0

    def put_account(self, account: Account) -> None:
        domains = json.dumps(account.sender_domains) if account.sender_domains is not None else None
        self.db.connection().execute(
            "INSERT OR REPLACE INTO accounts (id, default_provider, sender_domains) VALUES (?, ?, ?)",
            (account.id, account.default_provider, domains),
        )

    def get_account(self, account_id: str) -> Account | None:
        row = self.db.connection().execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return records.account(row) if row is not None else None
