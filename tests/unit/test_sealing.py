"""The sealing primitive: tokens that hide their fields and that only the key can make."""

from __future__ import annotations

import pytest

from mailsage.domain.sealing import Sealer

KEY = b"k" * 32
FIELDS = ["c", "acc_0123456789", "msg_abcdef", "https://example.com/a?b=1&c=é"]


def test_a_sealed_token_unseals_to_its_fields_and_shows_none_of_them() -> None:
    # Given a sealer
    sealer = Sealer(KEY)
    # When fields are sealed
    token = sealer.seal(FIELDS)
    # Then the token names none of them, is URL-safe, and unseals to the same fields
    for field in FIELDS[1:]:
        assert field not in token
    assert token.replace("-", "").replace("_", "").isalnum()
    assert sealer.unseal(token) == FIELDS
    assert sealer.seal(FIELDS) == token  # deterministic


@pytest.mark.parametrize("index", range(0, 40, 3))
def test_any_changed_character_is_refused(index: int) -> None:
    # Given a genuine token
    sealer = Sealer(KEY)
    token = sealer.seal(FIELDS)
    # When one character changes
    flipped = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    # Then it does not unseal
    assert sealer.unseal(flipped) is None


def test_another_key_or_purpose_cannot_read_or_make_tokens() -> None:
    # Given a token of one key and purpose
    token = Sealer(KEY).seal(FIELDS)
    # Then another key, or the same key for another purpose, refuses it
    assert Sealer(b"x" * 32).unseal(token) is None
    assert Sealer(KEY, b"feedback-id").unseal(token) is None


@pytest.mark.parametrize("junk", ["", "a", "a.b", "====", "é" * 30, "A" * 21, "+/" * 20, "A" * 5000])
def test_junk_is_refused_without_error(junk: str) -> None:
    assert Sealer(KEY).unseal(junk) is None


def test_a_field_with_nul_cannot_be_sealed() -> None:
    with pytest.raises(ValueError):
        Sealer(KEY).seal(["a\x00b"])


def test_a_token_verifies_only_with_the_associated_data_it_was_sealed_with() -> None:
    # Given a token sealed for one recipient
    sealer = Sealer(KEY, b"feedback-id")
    token = sealer.seal(["msg", "job", "acc"], b"ann@example.com")
    # Then it opens with the same associated data only
    assert sealer.unseal(token, b"ann@example.com") == ["msg", "job", "acc"]
    assert sealer.unseal(token, b"bob@example.com") is None
    assert sealer.unseal(token) is None


def test_a_second_spelling_of_the_same_bytes_is_refused() -> None:
    # Given a genuine token whose last base64 character carries unused bits
    sealer = Sealer(KEY)
    token = sealer.seal(["a"])  # 17 bytes: the last of 23 characters holds 2 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last ^ 1]
    # Then the variant that decodes to the same bytes is not accepted
    assert sealer.unseal(twin) is None
    assert sealer.unseal(token) == ["a"]
