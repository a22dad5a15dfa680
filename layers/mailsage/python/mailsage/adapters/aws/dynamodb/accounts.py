"""Accounts and their API keys (stored hashed)."""

from __future__ import annotations

import time

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import make_key
from mailsage.domain.models import Account


class Accounts(TableClient):
    """AccountStore on the table."""

    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None:
        self._put(
            {
                **make_key(f"APIKEY#{key_id}", "APIKEY"),
                "account_id": account_id,
                "key_hash": key_hash,
                "created_at": time.time(),
            }
        )

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        item = self._get(make_key(f"APIKEY#{key_id}", "APIKEY"))
        return (item["account_id"], item["key_hash"]) if item else None

    def put_account(self, account: Account) -> None:
        self._put(
            {
                **make_key(f"ACCOUNT#{account.id}", "ACCOUNT"),
                "default_provider": account.default_provider,
                "sender_domains": account.sender_domains,
            }
        )

    def get_account(self, account_id: str) -> Account | None:
        item = self._get(make_key(f"ACCOUNT#{account_id}", "ACCOUNT"))
        if item is None:
            return None
        return Account(account_id, item.get("default_provider"), item.get("sender_domains"))
