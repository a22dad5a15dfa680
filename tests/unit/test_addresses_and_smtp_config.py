from __future__ import annotations

import pytest

from mailsage.adapters.smtp import SmtpConfig
from mailsage.domain.addresses import normalize_email, parse_mailbox
from mailsage.domain.delivery import DeliveryPolicy
from mailsage.errors import InvalidRecipient, ValidationFailed


def test_addresses_are_normalized() -> None:
    assert normalize_email("John.Doe@EXAMPLE.com") == "John.Doe@example.com"


@pytest.mark.parametrize(
    "address", ["plain", "a@b", "x@localhost", "two@@example.com", "a@example.com\r\nBcc: x@y.z"]
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidRecipient):
        normalize_email(address)


def test_a_mailbox_keeps_its_display_name() -> None:
    assert (
        parse_mailbox("Acme Support <support@acme.example>", "from") == "Acme Support <support@acme.example>"
    )


@pytest.mark.parametrize("value", ["nobody", "Name <>", "a@example.com\nBcc: x@example.com"])
def test_a_bad_mailbox_names_the_field(value: str) -> None:
    with pytest.raises(ValidationFailed, match="^from"):
        parse_mailbox(value, "from")


def test_smtp_url_with_credentials_and_starttls() -> None:
    cfg = SmtpConfig.from_url("smtp://user%40x:p%3Ass@relay.example.com:587?starttls=true")
    assert (cfg.host, cfg.port, cfg.username, cfg.password, cfg.starttls, cfg.tls) == (
        "relay.example.com",
        587,
        "user@x",
        "p:ss",
        True,
        False,
    )


def test_smtps_url_defaults_to_port_465() -> None:
    cfg = SmtpConfig.from_url("smtps://relay.example.com")
    assert (cfg.port, cfg.tls) == (465, True)


def test_a_non_smtp_url_is_refused() -> None:
    with pytest.raises(ValueError, match="smtp://"):
        SmtpConfig.from_url("http://relay.example.com")


def test_retry_delay_grows_exponentially_within_jitter_and_is_capped() -> None:
    policy = DeliveryPolicy(retry_base_seconds=2, retry_max_seconds=60)
    for attempt, full in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        delays = [policy.retry_delay(attempt) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays), (attempt, min(delays), max(delays))
