"""What an operator sees of an API key: never the key nor its hash."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str  # the first 16 hex digits of the key's SHA-256 (what revoking names)
    account_id: str
    created_at: float
