"""End to end in AWS mode: the stack's resources, created from the synthesized template on a moto
server on 127.0.0.1, and the local runtime pointed at it (AWS_ENDPOINT_URL). The same handlers run
on DynamoDB, SQS and SES v2 instead of SQLite and SMTP."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from email import message_from_string
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import free_port
from tests.e2e.aws_resources import StackOnMoto
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e
REGION = "us-east-1"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    from infra.app import build_app
    from tests.infra.conftest import cdk_json_context

    layers = tmp_path_factory.mktemp("layers")
    for part in ("deps", "mailsage"):
        (layers / part / "python").mkdir(parents=True)
    context = {**cdk_json_context(), "layers_dir": str(layers)}
    _, stack = build_app(context, nag=False, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    aws_env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    requests.post(f"{url}/moto-api/reset", timeout=10)  # backends live in this process: start clean
    yield url
    server.stop()


@pytest.fixture
def stack(template: dict[str, Any], moto_server: str) -> StackOnMoto:
    import boto3

    stack = StackOnMoto(template, REGION).create()
    sender_domain = parseaddr(stack.function_environment("Api")["MAILSAGE_DEFAULT_FROM"])[1].split("@")[1]
    boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity=sender_domain)
    return stack


# moto has no SES GetAccount: without a rate the sender paces SES at the sandbox's 1 message/s.
SES_RATE = {"MAILSAGE_SES_MAX_RATE": "200"}


def ses_sent() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def runtime_env(stack: StackOnMoto) -> dict[str, str]:
    """What the api and sender functions get from the stack, resolved to the moto resources."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    env.update(stack.function_environment("Api"))
    env.update(stack.function_environment("Sender"))
    env["MAILSAGE_DEV_API_KEY"] = "e2e-" + uuid.uuid4().hex
    env["MAILSAGE_DEV_ACCOUNT_ID"] = str(uuid.uuid4())
    env.update(SES_RATE)
    return env


def test_a_200_recipient_batch_goes_out_through_sqs_and_ses_exactly_once(
    stack: StackOnMoto, tmp_path: Path
) -> None:
    env = runtime_env(stack)
    assert env["MAILSAGE_BACKEND"] == "aws"
    server = LocalServer(tmp_path / "data", env).start()
    try:
        emails = [f"user{i}@example.com" for i in range(200)]
        reply = server.call(
            "POST",
            "/api/v1/emails/batch",
            {
                "subject": "Hello {{ name }}",
                "body": "Dear {{ name }}",
                "recipients": [
                    {"email": e, "variables": {"name": f"User {i}"}} for i, e in enumerate(emails)
                ],
            },
        )
        assert reply.status_code == 202, reply.text
        job = server.wait_for(reply.json()["job_id"], {"completed"}, timeout=180)
    finally:
        server.stop()

    assert job["counts"]["sent"] == 200
    sent = ses_sent()
    assert len(sent) == 200  # exactly once each
    received = {}
    for message in sent:
        parsed = message_from_string(message.raw_data)
        received[parsed["To"]] = parsed["Subject"]
    assert received == {e: f"Hello User {i}" for i, e in enumerate(emails)}


def test_the_ingest_queue_turns_records_into_sent_mail_and_dead_letters_a_malformed_one(
    stack: StackOnMoto, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from mailsage.local.functions import LocalContext, load_handler
    from tests.conftest import load_event

    for key, value in {
        **stack.function_environment("Ingest"),
        **stack.function_environment("Sender"),
        **SES_RATE,
    }.items():
        monkeypatch.setenv(key, value)
    sqs = boto3.client("sqs", region_name=REGION)
    ingest_url = stack.physical_for("QueuesIngestQueue").ref
    dlq_url = os.environ["MAILSAGE_INGEST_DLQ_URL"]
    account_id = str(uuid.uuid4())

    # Another system drops a valid batch and a malformed record on the ingest queue
    batch = json.loads(load_event("sqs_ingest_batch.json")["Records"][0]["body"]) | {"account_id": account_id}
    sqs.send_message(QueueUrl=ingest_url, MessageBody=json.dumps(batch))
    sqs.send_message(
        QueueUrl=ingest_url, MessageBody=load_event("sqs_ingest_malformed.json")["Records"][0]["body"]
    )

    # Lambda's event source mapping, played by hand: receive, invoke with the raw bodies, delete
    # what succeeded
    def pump(queue_url: str, function: str) -> None:
        handler = load_handler(function)
        while messages := sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages"):
            event = {
                "Records": [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": m["Attributes"],
                        "messageAttributes": {},
                        "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{function}",
                        "awsRegion": REGION,
                    }
                    for m in messages
                ]
            }
            result = handler.lambda_handler(event, LocalContext(function))
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            for m in messages:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

    pump(ingest_url, "ingest")
    pump(os.environ["MAILSAGE_SEND_QUEUE_URL"], "sender")

    assert sorted(parseaddr(message_from_string(m.raw_data)["To"])[1] for m in ses_sent()) == [
        "user1@example.com",
        "user2@example.com",
    ]
    [dead] = SqsQueue(dlq_url).receive(max_messages=10, wait_seconds=0)
    assert dead.body["reason"].startswith("invalid record:")
    assert dead.body["record"].startswith('{"account_id"')
