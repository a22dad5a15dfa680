"""The sender's metrics on AWS: the real api and sender handlers, DynamoDB, SQS and SES v2 under moto;
what the sender counted is read back from the CloudWatch EMF lines it writes to stdout."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsage.adapters.aws.ses_transport import SesTransport
from mailsage.domain.auth import AuthService
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from mailsage.ports.queues import Received
from tests.conftest import ApiClient

SERVICE = "mailsage-sender"  # POWERTOOLS_SERVICE_NAME, as the stack sets it


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
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
        yield table, send_url


def submit(table: str, recipients: list[str]) -> None:
    """One job of `recipients` (one chunk) accepted through the real api handler."""
    from mailsage.adapters.aws.dynamodb import DynamoStore

    account_id = str(uuid.uuid4())
    api = ApiClient(load_handler("api"), AuthService(DynamoStore(table)).create_key(account_id))
    reply = api.post(
        f"/v2/accounts/{account_id}/messages",
        {
            "from": {"email": "hello@example.com"},
            "recipients": [{"email": r} for r in recipients],
            "subject": "Hello",
            "text_content": "Hi",
        },
    )
    assert reply.status == 202, reply.body


def invoke_sender(send_url: str) -> None:
    """The sender handler over what the send queue holds now."""
    from mailsage.adapters.aws.sqs_queue import SqsQueue

    received = SqsQueue(send_url).receive(max_messages=10)
    assert received
    load_handler("sender").lambda_handler(sqs_event(received), LocalContext(SERVICE))


def emf_lines(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents among stdout's lines (Powertools' JSON logs are there too)."""
    documents = []
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def counted(documents: list[dict[str, Any]]) -> dict[str, float]:
    """Metric name -> total over the documents."""
    totals: dict[str, float] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(values)
    return totals


def raise_throttle(**_: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    raise ClientError(
        {
            "Error": {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        "SendEmail",
    )


class ThrottlingClient:
    """SES v2 answering every SendEmail as SES does above the account's maximum send rate."""

    send_email = staticmethod(raise_throttle)


def test_a_sent_chunk_publishes_messages_sent_in_the_mailsage_namespace(
    aws: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    table, send_url = aws
    # Given a job of two recipients, accepted
    submit(table, ["ann@example.com", "bob@example.com"])
    capsys.readouterr()

    # When the sender handler delivers its chunk
    invoke_sender(send_url)

    # Then one EMF document counts both sends, in the MailSage namespace, by service and function
    (document,) = emf_lines(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "MailSage"
    assert sorted(directive["Dimensions"][0]) == ["function_name", "service"]
    assert (document["service"], document["function_name"]) == (SERVICE, SERVICE)
    assert counted([document])["MessagesSent"] == 2
    assert "Throttles" not in counted([document])


def test_a_throttled_chunk_publishes_throttles_and_no_send(
    aws: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, send_url = aws
    # Given a job of one recipient, and SES refusing sends with its rate-exceeded answer
    submit(table, ["ann@example.com"])
    monkeypatch.setattr(SesTransport, "client", lambda self: ThrottlingClient())
    capsys.readouterr()

    # When the sender handler tries its chunk
    invoke_sender(send_url)

    # Then the invocation's EMF counts one throttle and nothing sent
    documents = emf_lines(capsys.readouterr().out)
    assert [d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in documents] == ["MailSage"]
    totals = counted(documents)
    assert totals["Throttles"] == 1
    assert "MessagesSent" not in totals


def test_an_invocation_that_counts_nothing_writes_no_metrics_and_no_warning(
    aws: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a record of a job that does not exist (the sender drops it without sending)
    event = sqs_event(
        [Received("r-1", {"account_id": "a-1", "job_id": "missing", "chunk": 0}, 1, str(uuid.uuid4()))]
    )
    sender = load_handler("sender")
    capsys.readouterr()

    # When the sender handler runs it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sender.lambda_handler(event, LocalContext(SERVICE))

    # Then it completes, and writes no EMF document and no Powertools warning
    assert result == {"batchItemFailures": []}
    assert emf_lines(capsys.readouterr().out) == []
    assert not [w for w in caught if "metrics" in str(w.message).lower()]
