"""Which SMTP replies ask MailSage to slow down (a throttle, not an attempt of the message)."""

from __future__ import annotations

import pytest

from mailsage.adapters.smtp import is_throttle


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (421, "4.7.0 Too many messages, closing connection"),
        (421, "Service not available"),
        (451, "4.7.1 Rate limit exceeded, slow down"),
        (450, "4.7.1 Throttling: too many recipients per hour"),
    ],
)
def test_rate_replies_are_throttles(code: int, reply: str) -> None:
    assert is_throttle(code, reply)


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (450, "4.7.1 Recipient address rejected: greylisted, try again later"),  # a deferral
        (451, "4.3.0 try again later"),
        (452, "4.3.1 Insufficient system storage"),
        (550, "5.7.1 Rate limit policy violation"),  # permanent: a refusal, not a pace
        (250, "OK"),
    ],
)
def test_other_replies_are_not(code: int, reply: str) -> None:
    assert not is_throttle(code, reply)
