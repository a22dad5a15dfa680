"""On AWS the api function is not told its own URL, yet a message's GET must show what the sender
sent, tracked links included: the api takes the URL the request reached it at, which is the
sender's public URL. The real api and sender handlers, DynamoDB, SQS and SES v2 under moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mailsage.domain.auth import AuthService
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from tests.conftest import ApiClient

DOMAIN = "abc123defg.execute-api.eu-west-1.amazonaws.com"
STAGE = "prod"
API_URL = f"https://{DOMAIN}/{STAGE}"  # what the stack gives the sender as MAILSAGE_PUBLIC_URL (without "/")


class ExecuteApiClient(ApiClient):
    """Requests as API Gateway's default endpoint delivers them: with its domain and stage."""

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        original = self.handler.lambda_handler

        def with_endpoint(event: dict[str, Any], context: Any) -> Any:
            event["requestContext"].update(domainName=DOMAIN, stage=STAGE)
            return original(event, context)

        self.handler.lambda_handler = with_endpoint
        try:
            return super().request(method, path, body, **kwargs)
        finally:
            self.handler.lambda_handler = original


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    import boto3

    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        send_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName=f"send-{suffix}")[
            "QueueUrl"
        ]
        boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity="example.com")
        use_aws_backend(monkeypatch, tmp_path / "data", table, send_url, SIGNING_SECRET="k" * 32)
        monkeypatch.delenv("MAILSAGE_PUBLIC_URL", raising=False)
        yield table, send_url


def ses_raw_sent() -> list[bytes]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from tests.moto_env import REGION

    return [m.raw_data.encode() for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages]


def test_a_messages_content_on_aws_is_what_ses_was_given(
    aws: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue

    table, send_url = aws
    account_id = str(uuid.uuid4())
    key = AuthService(DynamoStore(table)).create_key(account_id)
    # Given the api function, which has no public URL, and a tracked message accepted through it
    api = ExecuteApiClient(load_handler("api"), key)
    reply = api.post(
        f"/v2/accounts/{account_id}/messages",
        {
            "from": {"email": "hello@example.com"},
            "recipients": [{"email": "ann@example.com"}, {"email": "bob@example.com"}],
            "subject": "Hello",
            "text_content": "Hi",
            "html_content": '<html><body><a href="https://example.com/x">x</a></body></html>',
            "tracking": {"open": True, "click": True},
        },
    )
    assert reply.status == 202, reply.body
    ids = {e["recipient"]["email"]: e["id"] for e in reply.body["data"]}

    # When the sender function, given the API's URL as the stack gives it, sends the chunk
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", API_URL + "/")
    sender = load_handler("sender")
    received = SqsQueue(send_url).receive(max_messages=10)
    assert received
    result = sender.lambda_handler(sqs_event(received), LocalContext("mailsage-sender"))
    assert result == {"batchItemFailures": []}
    sent = {
        str(message_from_bytes(raw, policy=policy.default)["To"].addresses[0].addr_spec): raw
        for raw in ses_raw_sent()
        if b"ann@example.com" in raw or b"bob@example.com" in raw
    }

    # Then each message's GET shows exactly what SES was given, tracked at the API's URL
    assert set(sent) == {"ann@example.com", "bob@example.com"}
    for email, raw in sent.items():
        shown = api.get(f"/v2/accounts/{account_id}/messages/{quote(ids[email])}").body["content"]
        assert shown == raw.decode("utf-8", errors="replace"), email
        html = message_from_bytes(raw, policy=policy.default).get_body(("html",))
        assert f"{API_URL}/t/o/" in html.get_content()  # type: ignore[union-attr]
        assert f"{API_URL}/t/c/" in html.get_content()  # type: ignore[union-attr]


def test_an_internationalized_domain_reaches_ses_in_its_ascii_form(aws: tuple[str, str]) -> None:
    """SES takes a destination's domain as IDNA A-labels only: the sender gives it that form, in
    the destination and the To header (before, the chunk failed at every attempt)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from tests.moto_env import REGION

    table, send_url = aws
    key = AuthService(DynamoStore(table)).create_key(str(uuid.uuid4()))
    api = ExecuteApiClient(load_handler("api"), key)
    body = {
        "recipient": {"email": "ann@straße.de"},
        "subject": "Hello",
        "body": "Hi",
        "from": "hello@example.com",
    }
    assert api.post("/api/v1/emails/send", body).status == 202
    received = SqsQueue(send_url).receive(max_messages=10)
    result = load_handler("sender").lambda_handler(sqs_event(received), LocalContext("mailsage-sender"))
    assert result == {"batchItemFailures": []}
    [sent] = [
        m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages if b"Hi" in m.raw_data.encode()
    ]
    assert set(sent.destinations) == {"ann@xn--strae-oqa.de"}  # moto lists the To header too
    assert (
        str(message_from_bytes(sent.raw_data.encode(), policy=policy.default)["To"]) == "ann@xn--strae-oqa.de"
    )
