from __future__ import annotations

import pytest

from mailsage.domain.auth import AuthService
from mailsage.errors import Unauthorized


class MemoryKeys:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}

    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None:
        self.rows[key_id] = (account_id, key_hash)

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        return self.rows.get(key_id)


def test_a_created_key_authenticates_its_account_and_is_stored_only_hashed() -> None:
    keys = MemoryKeys()
    auth = AuthService(keys)
    key = auth.create_key("acct-1")
    assert auth.authenticate(f"Bearer {key}") == "acct-1"
    assert all(key not in (k, h) for k, (_, h) in keys.rows.items())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer wrong-key", "bearer  "])
def test_bad_credentials_are_unauthorized(header: str | None) -> None:
    auth = AuthService(MemoryKeys())
    auth.create_key("acct-1")
    with pytest.raises(Unauthorized):
        auth.authenticate(header)


def test_the_scheme_is_case_insensitive() -> None:
    auth = AuthService(MemoryKeys())
    auth.register_key("acct-1", "known-key")
    assert auth.authenticate("bearer known-key") == "acct-1"
