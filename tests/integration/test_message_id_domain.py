"""The Message-ID's host is the sender's own domain unless the deployment sets one, and the id a
v2 create returns is the header that was sent; lookups accept the id with any host (ids handed out
as `<uuid@mailsage.local>` before keep working). The real api and sender handlers on both runtimes:
SQLite with the SMTP sink, and DynamoDB, SQS and SES v2 under moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote

import pytest

from mailsage.domain.auth import AuthService
from mailsage.domain.mailbox import message_id_header
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from mailsage.local.sink import SmtpSink
from tests.conftest import Account, ApiClient, Worker

BODY = {
    "from": {"email": "hello@Mail.Example.com", "name": "Example"},
    "recipients": [{"email": "ann@example.org"}],
    "subject": "Hello",
    "text_content": "Hi",
}


def sent_message_id(raw: bytes) -> str:
    return str(message_from_bytes(raw, policy=policy.default)["Message-ID"])


def submit(api: ApiClient, account_id: str) -> str:
    reply = api.post(f"/v2/accounts/{account_id}/messages", BODY)
    assert reply.status == 202, reply.body
    return str(reply.body["data"][0]["id"])


def check_lookups(api: ApiClient, account_id: str, returned: str) -> None:
    bare = returned[1:].partition("@")[0]
    for form in (returned, f"<{bare}@mailsage.local>", bare):
        reply = api.get(f"/v2/accounts/{account_id}/messages/{quote(form)}")
        assert reply.status == 200, (form, reply.body)
        assert reply.body["message_id"] == returned


# -- embedded runtime: SQLite and the SMTP sink -------------------------------------------------------


def test_local_message_id_is_the_senders_domain(
    api: ApiClient, account: Account, worker: Worker, smtp_sink: SmtpSink
) -> None:
    # Given no message_id_domain setting, a v2 message from hello@Mail.Example.com
    returned = submit(api, account.id)

    # When the sender sends it
    worker.drain()
    [path] = list(smtp_sink.messages())

    # Then the Message-ID sent is the id returned, on the sender's (lower-cased) domain
    assert returned.endswith("@mail.example.com>")
    assert sent_message_id(path.read_bytes()) == returned
    # ... and it is found by that id, by the id with the old host, and bare
    check_lookups(api, account.id, returned)


@pytest.fixture
def fixed_domain(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before either handler is loaded."""
    monkeypatch.setenv("MAILSAGE_MESSAGE_ID_DOMAIN", "ids.example.net")


def test_local_setting_overrides_the_senders_domain(
    fixed_domain: None, api: ApiClient, account: Account, worker: Worker, smtp_sink: SmtpSink
) -> None:
    # Given MAILSAGE_MESSAGE_ID_DOMAIN set, a v2 message
    returned = submit(api, account.id)

    # When it is sent
    worker.drain()
    [path] = list(smtp_sink.messages())

    # Then every Message-ID uses the configured host
    assert returned.endswith("@ids.example.net>")
    assert sent_message_id(path.read_bytes()) == returned


# -- AWS: DynamoDB, SQS and SES v2 under moto ---------------------------------------------------------


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
        boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity="mail.example.com")
        use_aws_backend(monkeypatch, tmp_path / "data", table, send_url)
        monkeypatch.delenv("MAILSAGE_MESSAGE_ID_DOMAIN", raising=False)
        yield table, send_url


def ses_raw_sent() -> list[bytes]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from tests.moto_env import REGION

    return [m.raw_data.encode() for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages]


def test_aws_message_id_is_the_senders_domain(aws: tuple[str, str]) -> None:
    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue

    table, send_url = aws
    account_id = str(uuid.uuid4())
    api = ApiClient(load_handler("api"), AuthService(DynamoStore(table)).create_key(account_id))
    # Given no message_id_domain setting, a v2 message accepted by the api function
    returned = submit(api, account_id)

    # When the sender function sends its chunk through SES
    received = SqsQueue(send_url).receive(max_messages=10)
    result = load_handler("sender").lambda_handler(sqs_event(received), LocalContext("mailsage-sender"))
    assert result == {"batchItemFailures": []}
    mine = [raw for raw in ses_raw_sent() if returned.encode() in raw]

    # Then SES was given the id returned, on the sender's domain, and lookups find it
    assert returned.endswith("@mail.example.com>")
    assert [sent_message_id(raw) for raw in mine] == [returned]
    check_lookups(api, account_id, returned)


# -- the rule itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_addr", "domain", "expected"),
    [
        ("Ann <ann@Example.COM>", None, "<m1@example.com>"),
        ("ann@example.com", "ids.example.net", "<m1@ids.example.net>"),
        ("", None, "<m1@mailsage.local>"),  # no From (never accepted): still a valid header
    ],
)
def test_message_id_header_host(from_addr: str, domain: str | None, expected: str) -> None:
    assert message_id_header("m1", from_addr, domain) == expected
