"""API keys: random secrets shown once, stored only as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mailsage.errors import Unauthorized
from mailsage.ports import ApiKeyStore

KEY_PREFIX = "ms_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _key_id(digest: str) -> str:
    # The lookup index is a prefix of the hash, so neither the key nor its full hash is ever an index.
    return digest[:16]


def key_id_of(key: str) -> str:
    """The id under which a key is stored, listed and revoked."""
    return _key_id(_digest(key))


class AuthService:
    def __init__(self, keys: ApiKeyStore) -> None:
        self.keys = keys

    def create_key(self, account_id: str) -> str:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.register_key(account_id, key)
        return key

    def register_key(self, account_id: str, key: str) -> None:
        digest = _digest(key)
        self.keys.put_api_key(account_id, _key_id(digest), digest)

    def authenticate(self, authorization: str | None) -> str:
        """The account id for an `Authorization: Bearer <key>` header, or `Unauthorized`."""
        scheme, _, key = (authorization or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("missing or malformed Authorization header; expected 'Bearer <api key>'")
        digest = _digest(key)
        found = self.keys.get_api_key(_key_id(digest))
        if found is None or not hmac.compare_digest(found[1], digest):
            raise Unauthorized("invalid API key")
        return found[0]
