"""The transactional lane on AWS: a single send goes to the priority queue, a batch to the send
queue, and the sender function, given the priority queue's record by its own event source mapping,
puts a chunk it could not start back in the priority queue. The real api and sender handlers,
DynamoDB, SQS and SES v2 under moto."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailsage.domain.auth import AuthService
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from tests.conftest import ApiClient


@dataclass
class Aws:
    table: str
    send_url: str
    priority_url: str


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    import boto3

    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        sqs = boto3.client("sqs", region_name=REGION)
        # The visibility timeout of the deployed send queues: far longer than any retry delay here.
        attributes = {"VisibilityTimeout": "120"}
        send_url = sqs.create_queue(QueueName=f"send-{suffix}", Attributes=attributes)["QueueUrl"]
        priority_url = sqs.create_queue(QueueName=f"priority-{suffix}", Attributes=attributes)["QueueUrl"]
        boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity="example.com")
        use_aws_backend(monkeypatch, tmp_path / "data", table, send_url, PRIORITY_QUEUE_URL=priority_url)
        yield Aws(table, send_url, priority_url)


def ses_recipients() -> list[str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from tests.moto_env import REGION

    return [d for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages for d in m.destinations]


def test_a_single_send_travels_the_priority_queue_and_its_retry_stays_there(aws: Aws) -> None:
    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue

    account_id = str(uuid.uuid4())
    api = ApiClient(load_handler("api"), AuthService(DynamoStore(aws.table)).create_key(account_id))
    priority, send = SqsQueue(aws.priority_url), SqsQueue(aws.send_url)
    # Given a batch and then a single send accepted by the api function
    readers = [{"email": f"reader{i}@example.com"} for i in range(3)]
    batch = {"subject": "News", "body": "x", "from": "news@example.com", "recipients": readers}
    assert api.post("/api/v1/emails/batch", batch).status == 202
    single = {"recipient": {"email": "ann@example.com"}, "subject": "Code", "body": "1234"}
    assert api.post("/api/v1/emails/send", single | {"from": "auth@example.com"}).status == 202
    # Then the single send waits in the priority queue, the batch in the send queue
    assert (priority.depth(), send.depth()) == (1, 1)

    # When the sender gets the priority queue's record (from its own event source mapping) in an
    # invocation with no time left to start a message
    sender = load_handler("sender")
    [record] = priority.receive(max_messages=10)
    stopping = threading.Event()
    stopping.set()
    result = sender.lambda_handler(sqs_event([record]), LocalContext("mailsage-sender", stopping=stopping))
    # Then the record is reported failed and comes back from the priority queue in about a second,
    # not after the queue's visibility timeout (its receipt was the priority queue's)
    assert result == {"batchItemFailures": [{"itemIdentifier": record.message_id}]}
    again = priority.receive(max_messages=10, wait_seconds=10)
    assert [(r.message_id, r.receive_count) for r in again] == [(record.message_id, 2)]

    # And the next invocation sends it
    result = sender.lambda_handler(sqs_event(again), LocalContext("mailsage-sender"))
    assert result == {"batchItemFailures": []}
    assert "ann@example.com" in ses_recipients()
    assert not any(r.startswith("reader") for r in ses_recipients())  # the batch is still waiting
