"""The SES route's sending rate, from SES v2 GetAccount, and the relays' limits on AWS.

moto 5.2 does not implement sesv2 GetAccount (it raises NotImplementedError), so SES's answers are
stubbed on a real client (botocore's Stubber validates them against the API's own shapes). Relay
secrets are in moto's Secrets Manager.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from mailsage.adapters.aws.ses_limits import REFRESH_SECONDS, RETRY_SECONDS, SANDBOX_RATE, SesLimits, SesQuota
from mailsage.domain.clock import ManualClock
from mailsage.domain.pacing import RouteLimit
from mailsage.settings import SenderSettings
from mailsage.wiring import route_limits
from tests.contract.aws_messaging import REGION, mocked_aws


def account(rate: float, max_24h: float = 50_000.0, sent: float = 1_234.0) -> dict[str, Any]:
    return {
        "SendQuota": {"MaxSendRate": rate, "Max24HourSend": max_24h, "SentLast24Hours": sent},
        "SendingEnabled": True,
        "ProductionAccessEnabled": True,
        "DedicatedIpAutoWarmupEnabled": False,
        "EnforcementStatus": "HEALTHY",
    }


def ses_client() -> tuple[Any, Stubber]:
    client = boto3.client(
        "sesv2", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


class Unreachable:
    """An SES client whose network is down."""

    calls = 0

    def get_account(self) -> dict[str, Any]:
        self.calls += 1
        raise EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com")


def test_the_rate_is_ses_max_send_rate_and_the_quota_is_shown() -> None:
    # Given SES allowing 14 messages a second
    client, stubber = ses_client()
    stubber.add_response("get_account", account(14.0))
    limits = SesLimits(client=client, clock=ManualClock())
    # When the SES route's limit is read / Then it is SES's rate, unlimited in connections
    assert limits() == RouteLimit(rate=14.0)
    assert limits.quota() == SesQuota(
        max_send_rate=14.0,
        max_24_hour_send=50_000.0,
        sent_last_24_hours=1_234.0,
        sending_enabled=True,
        production_access_enabled=True,
    )
    stubber.assert_no_pending_responses()


def test_the_setting_lowers_the_rate_but_never_raises_it() -> None:
    client, stubber = ses_client()
    stubber.add_response("get_account", account(14.0))
    stubber.add_response("get_account", account(2.0))
    clock = ManualClock()
    limits = SesLimits(max_rate=5.0, client=client, clock=clock)
    assert limits.rate() == 5.0
    clock.advance(REFRESH_SECONDS)
    assert limits.rate() == 2.0


def test_ses_is_asked_again_only_after_the_refresh_interval() -> None:
    # Given SES answering 14/s, then (after a raise) 200/s
    client, stubber = ses_client()
    stubber.add_response("get_account", account(14.0))
    stubber.add_response("get_account", account(200.0))
    clock = ManualClock()
    limits = SesLimits(client=client, clock=clock)
    # When the rate is read many times within the interval / Then SES was asked once
    assert [limits.rate() for _ in range(5)] == [14.0] * 5
    clock.advance(REFRESH_SECONDS - 1)
    assert limits.rate() == 14.0
    # And after it, SES's new rate is used
    clock.advance(1)
    assert limits.rate() == 200.0
    stubber.assert_no_pending_responses()


def test_when_ses_refuses_the_last_known_rate_is_kept_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given SES answering 14/s, then refusing GetAccount (no permission)
    client, stubber = ses_client()
    stubber.add_response("get_account", account(14.0))
    stubber.add_client_error("get_account", "AccessDeniedException", "not allowed", 403)
    clock = ManualClock()
    limits = SesLimits(client=client, clock=clock)
    assert limits.rate() == 14.0
    clock.advance(REFRESH_SECONDS)
    # When the rate is read several times after the failed refresh
    with caplog.at_level(logging.WARNING, logger="mailsage.adapters.aws.ses_limits"):
        rates = [limits.rate() for _ in range(3)]
    # Then the last known rate is kept, and the failure was logged once
    assert rates == [14.0] * 3
    assert [r.getMessage() for r in caplog.records if "AccessDeniedException" in r.getMessage()] != []
    assert len(caplog.records) == 1
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("setting", "rate"), [(None, SANDBOX_RATE), (3.0, 3.0)])
def test_before_ses_ever_answers_the_setting_else_the_sandbox_rate_is_used(
    setting: float | None, rate: float
) -> None:
    # Given SES out of reach from the start
    client, clock = Unreachable(), ManualClock()
    limits = SesLimits(max_rate=setting, client=client, clock=clock)
    # When the rate is read / Then it is the setting, else SES sandbox's 1/s
    assert limits.rate() == rate
    assert limits.quota() is None
    # And SES is asked again a minute later, not on every read
    assert client.calls == 1
    clock.advance(RETRY_SECONDS)
    assert limits.rate() == rate
    assert client.calls == 2


def test_under_moto_without_get_account_the_setting_paces_ses() -> None:
    # Given moto's SES, which raises NotImplementedError for GetAccount
    with mocked_aws():
        limits = SesLimits(max_rate=4.0, client=boto3.client("sesv2", region_name=REGION))
        # When the rate is read / Then the failure is not the sender's: the setting is used
        assert limits.rate() == 4.0


@pytest.fixture
def aws_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_aws():
        for key, value in {
            "MAILSAGE_BACKEND": "aws",
            "MAILSAGE_TABLE_NAME": "t",
            "MAILSAGE_SEND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "MAILSAGE_SMTP_RELAYS": json.dumps(
                {"paced": "relay/paced", "plain": "relay/plain", "bad": "relay/bad"}
            ),
            "MAILSAGE_SES_MAX_RATE": "7.5",
        }.items():
            monkeypatch.setenv(key, value)
        yield boto3.client("secretsmanager", region_name=REGION)


def test_on_aws_relay_limits_come_from_their_secrets_and_a_bad_one_names_the_relay(aws_settings: Any) -> None:
    # Given relay secrets with and without limits, and one with a bad max_connections
    aws_settings.create_secret(
        Name="relay/paced", SecretString=json.dumps({"url": "smtp://r?max_rate=3&max_connections=4"})
    )
    aws_settings.create_secret(Name="relay/plain", SecretString="smtp://u:pw@r:587")
    aws_settings.create_secret(Name="relay/bad", SecretString="smtp://u:pw@r:587?max_connections=0")
    settings = SenderSettings()
    assert settings.ses_max_rate == 7.5
    limits = route_limits(settings)
    # When the limits are looked up / Then each relay has its URL's, the sandbox none
    assert limits("paced") == RouteLimit(rate=3.0, max_connections=4)
    assert limits("plain") is None
    assert limits("sandbox") is None
    # And a bad value is an error naming the relay, its secret and the parameter, not the password
    with pytest.raises(ValueError, match="relay 'bad' \\(secret 'relay/bad'\\): max_connections") as caught:
        limits("bad")
    assert "pw" not in str(caught.value)


def test_on_aws_the_ses_route_is_paced_by_the_setting_until_ses_answers(
    aws_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given MAILSAGE_SES_MAX_RATE=7.5 and SES out of reach (moto has no GetAccount to answer)
    monkeypatch.setattr(SesLimits, "client", lambda self: Unreachable())
    limits = route_limits(SenderSettings())
    # When the SES route's limit is read / Then the setting paces it
    assert limits("ses") == RouteLimit(rate=7.5)
