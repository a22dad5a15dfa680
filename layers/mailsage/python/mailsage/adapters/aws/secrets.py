"""SMTP relay credentials from Secrets Manager, fetched when a relay is first used."""

from __future__ import annotations

import json
from typing import Any


def smtp_url_from_secret(secret_name: str, client: Any | None = None) -> str:
    """The relay URL kept in a secret: either the URL itself or JSON `{"url": "smtp://..."}`."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    value = client.get_secret_value(SecretId=secret_name)["SecretString"].strip()
    if value.startswith("{"):
        data = json.loads(value)
        if "url" not in data:
            raise ValueError(f"secret {secret_name!r} holds JSON without a 'url' key")
        return str(data["url"])
    return str(value)


def secret_string(secret_name: str, client: Any | None = None) -> str:
    """A secret's value as it is (the key that signs tracking and unsubscribe URLs)."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    return str(client.get_secret_value(SecretId=secret_name)["SecretString"])
