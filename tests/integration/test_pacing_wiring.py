"""The sender as wiring builds it is paced on both runtimes, over the deployment's own store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsage.adapters.aws.ses_limits import SesLimits
from mailsage.domain.pacing import RouteLimit
from mailsage.settings import SenderSettings
from mailsage.wiring import backends, delivery_service
from tests.contract.aws_messaging import mocked_aws


class Unreachable:
    def get_account(self) -> None:
        raise ConnectionError("no network")


def test_locally_the_smtp_url_is_paced_over_the_sqlite_store(tmp_path: Path) -> None:
    # Given the local runtime's relay URL with a rate and a connection limit
    settings = SenderSettings(
        smtp_url="smtp://127.0.0.1:2525?max_rate=2.5&max_connections=3", data_dir=tmp_path
    )
    # When the sender is built / Then its pacer has the URL's limits and shares the SQLite store
    service = delivery_service(settings)
    assert service.pacer is not None
    assert service.pacer.limit("default") == RouteLimit(rate=2.5, max_connections=3)
    assert service.pacer.limit("sandbox:deliver") is None
    assert service.pacer.store is backends(settings).store


def test_on_aws_ses_is_paced_over_the_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given the AWS backend with MAILSAGE_SES_MAX_RATE and SES out of reach
    monkeypatch.setattr(SesLimits, "client", lambda self: Unreachable())
    with mocked_aws():
        for key, value in {
            "MAILSAGE_BACKEND": "aws",
            "MAILSAGE_DATA_DIR": str(tmp_path),
            "MAILSAGE_TABLE_NAME": "t",
            "MAILSAGE_SEND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "MAILSAGE_SES_MAX_RATE": "12",
        }.items():
            monkeypatch.setenv(key, value)
        settings = SenderSettings()
        # When the sender is built / Then SES is paced at the setting, over the DynamoDB store
        service = delivery_service(settings)
        assert service.pacer is not None
        assert service.pacer.limit("ses") == RouteLimit(rate=12.0)
        assert service.pacer.store is backends(settings).store
