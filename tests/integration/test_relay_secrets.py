"""SMTP relays on AWS: their URL (with credentials) lives in Secrets Manager, read on first use.
moto in-process stands in for Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mailsage.adapters.aws.secrets import smtp_url_from_secret
from mailsage.adapters.smtp import SmtpTransport
from mailsage.settings import SenderSettings
from mailsage.wiring import providers


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("secretsmanager")


def test_a_secret_holding_json_gives_its_url(secrets: Any) -> None:
    secrets.create_secret(
        Name="relay/json", SecretString=json.dumps({"url": "smtp://u:p@relay.example.com:587"})
    )
    assert smtp_url_from_secret("relay/json") == "smtp://u:p@relay.example.com:587"


def test_a_secret_holding_the_url_itself_gives_it(secrets: Any) -> None:
    secrets.create_secret(Name="relay/plain", SecretString="smtps://relay.example.com\n")
    assert smtp_url_from_secret("relay/plain") == "smtps://relay.example.com"


def test_a_json_secret_without_a_url_is_a_clear_error(secrets: Any) -> None:
    secrets.create_secret(Name="relay/bad", SecretString=json.dumps({"host": "relay.example.com"}))
    with pytest.raises(ValueError, match="'relay/bad' holds JSON without a 'url' key"):
        smtp_url_from_secret("relay/bad")


def test_on_aws_the_providers_are_ses_and_the_relays_whose_secret_is_read_on_first_use(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "MAILSAGE_BACKEND": "aws",
        "MAILSAGE_TABLE_NAME": "t",
        "MAILSAGE_SEND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "MAILSAGE_SMTP_RELAYS": json.dumps({"relay": "relay/json"}),
        "MAILSAGE_FAILOVER_PROVIDER": "relay",
    }.items():
        monkeypatch.setenv(key, value)
    registry = providers(SenderSettings())
    assert (registry.names, registry.default, registry.failover) == (
        frozenset({"ses", "relay", "sandbox"}),
        "ses",
        "relay",
    )
    # The secret does not exist yet: nothing was read when the providers were built
    secrets.create_secret(
        Name="relay/json", SecretString=json.dumps({"url": "smtp://u:p@relay.example.com:2525"})
    )
    relay = registry.get("relay")
    assert isinstance(relay, SmtpTransport)
    assert (relay.config.host, relay.config.port, relay.config.username) == ("relay.example.com", 2525, "u")
