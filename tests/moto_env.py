"""moto's in-process AWS for the tests that need it, isolated from the machine's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

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
