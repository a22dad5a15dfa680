"""The one thing authentication needs from storage: API keys by id (a key is stored as its hash).
A subset of `AccountStore`, so every store is one and a test's fake needs only these two methods."""

from __future__ import annotations

from typing import Protocol


class ApiKeyStore(Protocol):
    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None: ...

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        """(account_id, key_hash) for a key id, or None."""
