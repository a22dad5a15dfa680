"""Contract of the operator's key listing and revocation, on every store adapter: a listing shows
each key's id, account and creation time (never its hash), by account when asked, oldest first; a
revoked key is gone for authentication."""

from __future__ import annotations

import pytest

from mailsage.domain.auth import AuthService, key_id_of
from mailsage.domain.models import Account
from mailsage.errors import Unauthorized
from mailsage.ports import Store


def test_listing_shows_every_key_with_its_account_and_time(store: Store) -> None:
    # Given two keys of one account and one of another
    store.put_api_key("acc_a", "key_1", "hash-1")
    store.put_api_key("acc_a", "key_2", "hash-2")
    store.put_api_key("acc_b", "key_3", "hash-3")
    # When every key is listed
    listed = store.list_api_keys()
    # Then each shows once, with its account and a creation time, oldest first
    assert sorted((k.key_id, k.account_id) for k in listed) == [
        ("key_1", "acc_a"),
        ("key_2", "acc_a"),
        ("key_3", "acc_b"),
    ]
    assert all(k.created_at > 0 for k in listed)
    assert [k.created_at for k in listed] == sorted(k.created_at for k in listed)
    assert "hash" not in repr(listed)


def test_listing_by_account_shows_only_its_keys(store: Store) -> None:
    # Given keys of two accounts
    store.put_api_key("acc_a", "key_1", "hash-1")
    store.put_api_key("acc_b", "key_2", "hash-2")
    # When one account's keys are listed / Then only its key shows
    assert [k.key_id for k in store.list_api_keys("acc_b")] == ["key_2"]
    assert store.list_api_keys("acc_c") == []


def test_listing_leaves_out_the_other_items_of_the_store(store: Store) -> None:
    # Given a key beside other account data
    store.put_account(Account("acc_a", default_provider="ses"))
    store.put_api_key("acc_a", "key_1", "hash-1")
    # When every key is listed / Then only the key shows
    assert [k.key_id for k in store.list_api_keys()] == ["key_1"]


def test_revoked_key_no_longer_authenticates(store: Store) -> None:
    # Given two keys of an account, both working
    auth = AuthService(store)
    revoked, kept = auth.create_key("acc_a"), auth.create_key("acc_a")
    assert auth.authenticate(f"Bearer {revoked}") == "acc_a"
    # When one is revoked by its id
    assert store.delete_api_key(key_id_of(revoked)) is True
    # Then it is refused and the other still works
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {revoked}")
    assert auth.authenticate(f"Bearer {kept}") == "acc_a"
    assert [k.key_id for k in store.list_api_keys("acc_a")] == [key_id_of(kept)]


def test_revoking_an_unknown_key_is_false(store: Store) -> None:
    # Given a store holding one key
    store.put_api_key("acc_a", "key_1", "hash-1")
    # When another id is revoked / Then nothing was there and the key stays
    assert store.delete_api_key("key_9") is False
    assert store.get_api_key("key_1") == ("acc_a", "hash-1")
