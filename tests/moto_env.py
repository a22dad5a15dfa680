"""moto's in-process AWS for the tests that need it, isolated from the machine's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REGION = "us-east-1"
_FAKE_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Would send requests elsewhere, or pick up real credentials, while mocked.
_CLEARED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_REGION")


@contextmanager
def mocked_aws() -> Iterator[None]:
    """moto's in-process AWS with a region and fake credentials; restores the environment after."""
    from moto import mock_aws

    saved = {name: os.environ.get(name) for name in (*_FAKE_ENVIRONMENT, *_CLEARED)}
    try:
        for name in _CLEARED:
            os.environ.pop(name, None)
        os.environ.update(_FAKE_ENVIRONMENT)
        with mock_aws():
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Settings of the embedded runtime a test may have inherited, which the AWS wiring must not see.
_LOCAL_SETTINGS = (
    "SMTP_URL",
    "DEV_API_KEY",
    "DEV_ACCOUNT_ID",
    "SIGNING_SECRET",
    "PUBLIC_URL",
    "WEBHOOK_QUEUE_URL",
)


def use_aws_backend(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, table: str, send_queue_url: str, **settings: str
) -> None:
    """Point the real handlers at the AWS adapters (on moto): MAILSAGE_BACKEND=aws with the table
    and send queue, then MAILSAGE_<NAME> for each of `settings` (e.g. PUBLIC_URL="https://...")."""
    for name in _LOCAL_SETTINGS:
        monkeypatch.delenv(f"MAILSAGE_{name}", raising=False)
    values = {
        "BACKEND": "aws",
        "DATA_DIR": str(data_dir),
        "TABLE_NAME": table,
        "SEND_QUEUE_URL": send_queue_url,
    }
    for name, value in {**values, **settings}.items():
        monkeypatch.setenv(f"MAILSAGE_{name}", value)
