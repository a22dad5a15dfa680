"""Where each provider's limits come from: a relay URL's max_rate and max_connections, checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mailsage.adapters.smtp import SmtpConfig
from mailsage.domain.pacing import RouteLimit
from mailsage.settings import SenderSettings
from mailsage.wiring import route_limits


def test_a_relay_url_carries_its_rate_and_connections() -> None:
    cfg = SmtpConfig.from_url(
        "smtp://user:pw@relay.example.com:587?starttls=true&max_rate=10.5&max_connections=2"
    )
    assert (cfg.host, cfg.starttls, cfg.max_rate, cfg.max_connections) == ("relay.example.com", True, 10.5, 2)


def test_without_them_a_relay_is_unlimited_and_unknown_parameters_are_ignored() -> None:
    cfg = SmtpConfig.from_url("smtp://relay.example.com?pool=3")
    assert (cfg.max_rate, cfg.max_connections) == (None, None)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("max_rate=0", "max_rate"),
        ("max_rate=-1", "max_rate"),
        ("max_rate=fast", "max_rate"),
        ("max_rate=nan", "max_rate"),
        ("max_rate=inf", "max_rate"),
        ("max_rate=", "max_rate"),
        ("max_connections=0", "max_connections"),
        ("max_connections=1.5", "max_connections"),
        ("max_connections=many", "max_connections"),
    ],
)
def test_a_bad_value_names_the_parameter_not_the_password(query: str, parameter: str) -> None:
    with pytest.raises(ValueError, match=f"^{parameter} ") as caught:
        SmtpConfig.from_url(f"smtp://user:secret@relay.example.com?{query}")
    assert "secret" not in str(caught.value)


def test_a_bad_relay_url_stops_the_start_naming_the_relay_and_the_parameter(tmp_path: Path) -> None:
    # Given a relay whose URL has a rate of zero
    relays = {"good": "smtp://a.example.com?max_rate=3", "bulk": "smtp://u:pw@b.example.com?max_rate=0"}
    # When the settings are read / Then it is one settings error naming the relay and the parameter
    with pytest.raises(ValidationError) as caught:
        SenderSettings(smtp_relays=relays, data_dir=tmp_path)
    [error] = caught.value.errors()
    assert "MAILSAGE_SMTP_RELAYS relay 'bulk': max_rate must be" in error["msg"]
    assert "\n" not in error["msg"] and "pw" not in error["msg"]


def test_a_bad_smtp_url_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MAILSAGE_SMTP_URL: max_connections must be"):
        SenderSettings(smtp_url="smtp://127.0.0.1:1025?max_connections=0", data_dir=tmp_path)


def test_each_route_has_its_relays_limits_and_the_sandbox_none(tmp_path: Path) -> None:
    # Given the local relay paced at 5/s, a relay with 2 connections and one without limits
    settings = SenderSettings(
        smtp_url="smtp://127.0.0.1:1025?max_rate=5",
        smtp_relays={"pool": "smtp://a.example.com?max_connections=2", "plain": "smtp://b.example.com"},
        data_dir=tmp_path,
    )
    # When the limits are looked up by route / Then each is its URL's
    limits = route_limits(settings)
    assert limits("default") == RouteLimit(rate=5.0, max_connections=None)
    assert limits("pool") == RouteLimit(rate=None, max_connections=2)
    assert limits("plain") is None
    assert limits("sandbox") is None
    assert limits("sandbox:deliver") is None
