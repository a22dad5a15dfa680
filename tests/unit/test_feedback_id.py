"""The Feedback-ID: opaque to the recipient, verifiable with the signing key alone, bound to the
one recipient it was made for."""

from __future__ import annotations

import pytest

from mailsage.domain.feedback_id import FeedbackIds, FeedbackRef
from mailsage.domain.tracking import Signer

ACCOUNT, JOB, MESSAGE = (
    "acct_0123456789abcdef",
    "job_fedcba9876543210",
    "6f1c2b7e-3f4a-4b8e-9c1d-2a3b4c5d6e7f",
)
IDS = FeedbackIds(Signer(b"k" * 32))


def test_it_names_the_message_for_its_recipient_and_shows_no_id() -> None:
    # Given the Feedback-ID of a message
    value = IDS.header(ACCOUNT, JOB, MESSAGE, "Ann@Example.com")
    # Then it reads back with the key, for its recipient in any case, and shows no id in clear
    assert IDS.read(value, "ann@example.com") == FeedbackRef(ACCOUNT, JOB, MESSAGE)
    assert value.endswith(":mailsage") and value.count(":") == 1
    assert all(part not in value for part in (ACCOUNT, JOB, MESSAGE, "acct", "job"))
    assert IDS.header(ACCOUNT, JOB, MESSAGE, "ann@example.com") == value  # a retry keeps it


@pytest.mark.parametrize(
    ("value", "recipient"),
    [
        (IDS.header(ACCOUNT, JOB, MESSAGE, "ann@example.com"), "bob@example.com"),  # copied elsewhere
        (FeedbackIds(Signer(b"x" * 32)).header(ACCOUNT, JOB, MESSAGE, "ann@example.com"), "ann@example.com"),
        (f"{MESSAGE}:{JOB}:{ACCOUNT}:mailsage", "ann@example.com"),  # the old clear format
        ("", "ann@example.com"),
        (":mailsage", "ann@example.com"),
        ("!!!:mailsage", "ann@example.com"),
        ("QUJD:mailsage", "ann@example.com"),
        (
            IDS.header(ACCOUNT, JOB, MESSAGE, "ann@example.com").replace(":mailsage", ":other"),
            "ann@example.com",
        ),
    ],
)
def test_anything_this_key_did_not_make_for_this_recipient_names_nothing(value: str, recipient: str) -> None:
    assert IDS.read(value, recipient) is None


@pytest.mark.parametrize("message", [MESSAGE, MESSAGE[:-1], MESSAGE[:-2]])  # every base64 tail
def test_a_changed_character_anywhere_names_nothing(message: str) -> None:
    value = IDS.header(ACCOUNT, JOB, message, "ann@example.com")
    token = value.removesuffix(":mailsage")
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert IDS.read(f"{flipped}:mailsage", "ann@example.com") is None, i
