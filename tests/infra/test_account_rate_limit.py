"""Each account's share of the API on AWS: the context keys reach the api function (which answers
429 past them, see tests/integration/test_rate_limits.py), and a limit above the stage's own
throttle, which could never be reached, is refused at synthesis."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError, MailSageConfig
from tests.infra.conftest import Synthesized, cdk_json_context
from tests.infra.test_stack import environment


def test_the_api_function_enforces_the_default_account_limit(synthesized: Synthesized) -> None:
    env = environment(synthesized, "api")
    assert (env["MAILSAGE_ACCOUNT_RATE_LIMIT"], env["MAILSAGE_ACCOUNT_RATE_BURST"]) == ("20", "40")
    for other in ("sender", "events", "ingest", "webhooks"):
        assert "MAILSAGE_ACCOUNT_RATE_LIMIT" not in environment(synthesized, other)


def config(**context: Any) -> MailSageConfig:
    return MailSageConfig.from_context({**cdk_json_context(), **context}.get)


def test_context_keys_set_it_and_zero_turns_it_off() -> None:
    assert config(account_rate_limit="5", account_rate_burst="10").account_rate == (5, 10)
    assert config(account_rate_limit=0, account_rate_burst=0).account_rate == (0, 0)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"account_rate_limit": 51},
            r"must not exceed the stage's 'api_rate_limit'/'api_burst_limit' \(50/100\)",
        ),
        ({"account_rate_burst": 101}, r"must not exceed"),
        ({"account_rate_limit": 5, "account_rate_burst": 0}, r"'account_rate_burst' must be at least 1"),
        ({"account_rate_limit": -1}, r"'account_rate_limit' must be between"),
    ],
)
def test_a_limit_that_cannot_work_is_refused_in_one_line(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        config(**context)
    assert "\n" not in str(raised.value)
