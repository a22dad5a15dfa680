"""The ingest function on the embedded backend: queue records become jobs exactly once; invalid
records go to the ingest dead-letter queue with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailsage.domain.ingest import ingest_job_id
from mailsage.local.functions import LocalContext, load_handler
from mailsage.local.sink import SmtpSink
from mailsage.ports import Queue
from mailsage.settings import IngestSettings
from mailsage.wiring import Backends, ingest_service
from tests.conftest import Account, Worker, load_event


@pytest.fixture
def ingest(data_dir) -> Any:  # noqa: ANN001
    return load_handler("ingest")


@pytest.fixture
def ingest_dlq(data_dir) -> Queue:  # noqa: ANN001
    return ingest_service(IngestSettings()).dead_letters


def record(account: Account, sample: str = "sqs_ingest_batch.json", **changes: Any) -> dict[str, Any]:
    event = load_event(sample)
    body = json.loads(event["Records"][0]["body"])
    body.update({"account_id": account.id, **changes})
    event["Records"][0]["body"] = json.dumps(body)
    return event


def run(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    return handler.lambda_handler(event, LocalContext("mailsage-ingest"))


def test_a_record_becomes_a_job_that_is_sent(
    ingest: Any, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    event = record(account)
    assert run(ingest, event) == {"batchItemFailures": []}
    job_id = ingest_job_id(event["Records"][0]["messageId"])
    worker.drain()
    job = stores.store.get_job(account.id, job_id)
    assert job is not None and job.state.value == "completed"
    assert (job.total, job.campaign_id, job.counts.get("sent")) == (2, "campaign_xyz", 2)
    assert len(smtp_sink.messages()) == 2


def test_a_record_delivered_twice_is_one_job_and_one_email_each(
    ingest: Any, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    event = record(account)
    run(ingest, event)
    run(ingest, event)  # SQS delivers at least once
    worker.drain()
    assert len(smtp_sink.messages()) == 2


def test_a_malformed_record_goes_to_the_dead_letter_queue_with_the_reason(
    ingest: Any, ingest_dlq: Queue, stores: Backends
) -> None:
    event = load_event("sqs_ingest_malformed.json")
    assert run(ingest, event) == {"batchItemFailures": []}  # handled: not retried
    [dead] = ingest_dlq.receive(max_messages=10)
    assert dead.body["record_id"] == event["Records"][0]["messageId"]
    assert dead.body["reason"].startswith("invalid record:")
    assert dead.body["record"] == event["Records"][0]["body"]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"account_id": ""}, "account_id is required"),
        ({"subject": 5}, "invalid record"),
        ({"recipients": [{"email": "not-an-address"}]}, "validation_error: no valid recipients"),
        ({"body": "{{ missing }}", "validation": "strict"}, "validation_error"),
    ],
)
def test_an_invalid_request_goes_to_the_dead_letter_queue(
    ingest: Any, ingest_dlq: Queue, account: Account, stores: Backends, changes: dict[str, Any], reason: str
) -> None:
    run(ingest, record(account, **changes))
    [dead] = ingest_dlq.receive(max_messages=10)
    assert reason in dead.body["reason"]
    assert stores.queue.depth() == 0
