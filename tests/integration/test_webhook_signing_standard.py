"""Which secret format each surface uses, checked at a real receiver on loopback with real verifiers:
a webhook created on v1 has a Standard Webhooks secret ("whsec_" + base64) and its deliveries verify
with the official `standardwebhooks` library exactly as that library documents; one created on v2
signs as AhaSend does (the key is the secret's literal UTF-8 bytes), which the receiver's own
AhaSend verifier and the library's raw-key mode accept; webhooks stored before the scheme was (no
`signing` column or attribute) keep signing with the literal secret. On both runtimes."""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.events import delivery_body, message_event
from mailsage.domain.models import Webhook, WebhookSigning
from tests.integration.webhook_runtime import RUNTIMES, Runtime, start
from tests.webhook_receiver import Request, SignatureRejected, WebhookReceiver, verify_signature

V1 = "/api/v1/webhooks"


@pytest.fixture(params=RUNTIMES)
def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    yield from start(request.param, tmp_path, monkeypatch)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:  # no secret: the tests verify what arrived themselves
        yield r


def publish(runtime: Runtime, webhook_id: str) -> dict[str, Any]:
    """Put one message.delivered event for the webhook on the webhook queue, as the event publisher
    does; its queue body."""
    webhook = runtime.backends.store.get_webhook(runtime.account.id, webhook_id)
    assert webhook is not None and runtime.backends.webhooks is not None
    event = message_event(
        "message.delivered",
        account_id=runtime.account.id,
        message_id=str(uuid.uuid4()),
        recipient="user@example.com",
        from_addr="News <news@example.com>",
        subject="Hello",
    )
    body = delivery_body(webhook, event)
    runtime.backends.webhooks.send([body])
    return body


def delivered(runtime: Runtime, receiver: WebhookReceiver, webhook_id: str) -> Request:
    """The one POST a published event comes to at the receiver."""
    publish(runtime, webhook_id)
    assert runtime.deliver() == {"batchItemFailures": []}
    [request] = receiver.wait_for(1)
    return request


def standard_verifies(whsecret: str | bytes, request: Request) -> bool:
    """Whether the official library, given `whsecret` as its docs say, accepts the request."""
    try:
        standardwebhooks.Webhook(whsecret).verify(request.body, request.headers)
    except (standardwebhooks.WebhookVerificationError, ValueError):  # ValueError: not base64
        return False
    return True


def ahasend_verifies(secret: str, request: Request) -> bool:
    try:
        verify_signature(secret, request.headers, request.body)
    except SignatureRejected:
        return False
    return True


def test_a_v1_webhook_verifies_with_the_standardwebhooks_library(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    # Given a webhook created on v1
    created = runtime.api().post(V1, {"name": "std", "url": receiver.url, "events": ["message.delivered"]})
    assert created.status == 201, created.body
    secret = created.body["secret"]

    # Then its secret is the standard format: "whsec_" + base64 of a 32-byte key
    assert created.body["signing"] == "standard"
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32

    # When an event is delivered to it
    request = delivered(runtime, receiver, created.body["id"])

    # Then the official library verifies it with the secret as given, and returns the payload
    payload = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "message.delivered" and payload["webhook_id"] == created.body["id"]
    # and the literal-key (AhaSend) reading of the same secret does not
    assert not ahasend_verifies(secret, request)


def test_a_v2_webhook_signs_as_ahasend(runtime: Runtime, receiver: WebhookReceiver) -> None:
    # Given a webhook created on v2
    reply = runtime.api().post(
        f"/v2/accounts/{runtime.account.id}/webhooks",
        {"name": "aha", "url": receiver.url, "scope": "global", "on_delivered": True},
    )
    assert reply.status == 201, reply.body
    secret = reply.body["secret"]

    # When an event is delivered to it
    request = delivered(runtime, receiver, reply.body["id"])

    # Then the key is the secret's literal UTF-8 bytes: AhaSend's verifier and the library's
    # raw-key mode accept it; the library's encoded-secret mode does not (as AhaSend warns)
    assert ahasend_verifies(secret, request)
    assert standard_verifies(secret.encode("utf-8"), request)
    assert not standard_verifies(secret, request)
    # and v1 shows how it signs
    assert runtime.api().get(f"{V1}/{reply.body['id']}").body["signing"] == "literal"


def test_a_v1_webhook_keeps_its_signing_when_changed_on_v2(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    # Given a webhook created on v1, then renamed and re-subscribed on v2
    created = runtime.api().post(V1, {"name": "std", "url": receiver.url, "events": ["message.bounced"]})
    hook = created.body["id"]
    changed = runtime.api().put(
        f"/v2/accounts/{runtime.account.id}/webhooks/{hook}", {"name": "renamed", "on_delivered": True}
    )
    assert changed.status == 200, changed.body

    # When an event is delivered to it
    request = delivered(runtime, receiver, hook)

    # Then it is still signed the standard way
    assert standard_verifies(created.body["secret"], request)
    assert runtime.api().get(f"{V1}/{hook}").body["signing"] == "standard"


def test_a_webhook_stored_without_a_scheme_signs_with_the_literal_secret(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    # Given a webhook stored as an earlier version stored it (nothing said about signing)
    now = time.time()
    secret = "whsec_c2VjcmV0LXRoYXQtbG9va3MtYmFzZTY0"
    hook = Webhook(
        str(uuid.uuid4()),
        runtime.account.id,
        "old",
        receiver.url,
        secret,
        True,
        ["message.delivered"],
        now,
        now,
    )
    runtime.backends.store.put_webhook(hook)

    # When an event is delivered to it
    request = delivered(runtime, receiver, hook.id)

    # Then it is signed as before, with the literal secret
    assert ahasend_verifies(secret, request)
    assert not standard_verifies(secret, request)


# -- webhooks stored by an earlier version --------------------------------------------------------

# The webhooks table as versions before the signing scheme created it
_OLD_WEBHOOKS_TABLE = """
CREATE TABLE webhooks (
    account_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL,
    secret TEXT NOT NULL, enabled INTEGER NOT NULL, events TEXT NOT NULL, scope TEXT NOT NULL,
    domains TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    success_count INTEGER NOT NULL DEFAULT 0, error_count INTEGER NOT NULL DEFAULT 0,
    errors_since_last_success INTEGER NOT NULL DEFAULT 0, last_request_at REAL, disabled_reason TEXT,
    PRIMARY KEY (account_id, id)
)
"""


def test_an_older_sqlite_data_dir_is_migrated_and_its_webhooks_stay_literal(tmp_path: Path) -> None:
    # Given a database file whose webhooks table has no signing column, holding one webhook
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(_OLD_WEBHOOKS_TABLE)
        old.execute(
            "INSERT INTO webhooks VALUES ('acc', 'hook', 'old', 'https://h.example.com/', 'whsec_x', 1,"
            " '[\"message.delivered\"]', 'global', '[]', 1.0, 1.0, 0, 0, 0, NULL, NULL)"
        )
    old.close()

    # When this version opens it
    db = Database(path)
    try:
        store = SqliteStore(db)
        found = store.get_webhook("acc", "hook")
        # Then the webhook reads as literal, and a new one can be stored as standard
        assert found is not None and found.signing is WebhookSigning.LITERAL
        store.put_webhook(Webhook("new", "acc", "n", "https://h.example.com/", "whsec_", True, [], 2.0, 2.0))
        found.signing = WebhookSigning.STANDARD
        store.put_webhook(found)
        assert store.get_webhook("acc", "hook") == found
    finally:
        db.close()


def test_a_dynamodb_webhook_item_without_the_attribute_reads_as_literal() -> None:
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.dynamodb.keys import webhook_key
    from tests.contract.aws_store import dynamodb_table

    with dynamodb_table(f"mailsage-{uuid.uuid4().hex[:12]}") as table:
        # Given an item written before the signing attribute existed
        store = DynamoStore(table)
        hook = Webhook(
            str(uuid.uuid4()), "acc", "old", "https://h.example.com/", "whsec_x", True, [], 1.0, 1.0
        )
        store.put_webhook(hook)
        boto3.resource("dynamodb").Table(table).update_item(
            Key=webhook_key("acc", hook.id), UpdateExpression="REMOVE signing"
        )
        # Then it reads as literal
        found = store.get_webhook("acc", hook.id)
        assert found is not None and found.signing is WebhookSigning.LITERAL
