"""Business metrics and tracing of the five handlers. On AWS (DynamoDB, SQS and SES v2 under moto,
webhooks to a real HTTP server on loopback) each invocation writes at most one CloudWatch EMF line
on stdout: namespace MailSage, dimensions `service` and `function_name` only. Tracing: each handler
opens its Powertools subsegment; outside Lambda nothing is patched and no X-Ray daemon is called."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from mailsage.domain.auth import AuthService
from mailsage.domain.models import Message, Webhook
from mailsage.local.events import sqs_event
from mailsage.local.functions import FUNCTIONS, LocalContext, load_handler
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, load_event
from tests.integration.test_feedback_events import message_of
from tests.integration.test_sender_metrics_aws import emf_lines
from tests.integration.test_webhook_delivery import event_body
from tests.webhook_receiver import WebhookReceiver

T = TypeVar("T")
SENDER_DOMAIN = "example.com"


class Deployment:
    """The deployed functions on moto: each handler loaded once (a cold start) with the AWS settings
    and the POWERTOOLS_SERVICE_NAME the stack gives it, and an account with a key."""

    def __init__(
        self, backends: Backends, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.backends = backends
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.handlers: dict[str, ModuleType] = {}
        account_id = str(uuid.uuid4())
        self.account = Account(account_id, AuthService(backends.store).create_key(account_id))

    def handler(self, name: str) -> ModuleType:
        if name not in self.handlers:
            self.handlers[name] = load_handler(name)
        return self.handlers[name]

    def run(self, name: str, call: Callable[[ModuleType], T]) -> tuple[T, list[dict[str, Any]]]:
        """What `call` on the function's handler returns, and the EMF documents it wrote."""
        self.monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"mailsage-{name}")
        handler = self.handler(name)
        self.capsys.readouterr()
        result = call(handler)
        return result, emf_lines(self.capsys.readouterr().out)

    def invoke(self, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The function's reply to an SQS event, and its EMF documents."""
        return self.run(name, lambda h: h.lambda_handler(event, LocalContext(f"mailsage-test-{name}")))

    def send(self, email: str) -> Message:
        """A send accepted by the api and delivered by the sender; the message as stored."""
        reply, _ = self.run(
            "api", lambda h: ApiClient(h, self.account.key).post("/api/v1/emails/send", sent_to(email))
        )
        assert reply.status == 202, reply.body
        self.deliver()
        return message_of(self.backends, self.account, reply.body["job_id"], email)  # type: ignore[no-any-return]

    def deliver(self) -> list[dict[str, Any]]:
        """The sender over what the send queue holds now; its EMF documents."""
        received = self.backends.queue.receive(max_messages=10, wait_seconds=0)
        assert received
        result, documents = self.invoke("sender", sqs_event(received))
        assert result == {"batchItemFailures": []}
        return documents


def sent_to(email: str) -> dict[str, Any]:
    return {"recipient": {"email": email}, "from": f"news@{SENDER_DOMAIN}", "subject": "Hi", "body": "Hello"}


def published(documents: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, float]]:
    """(dimensions, metric -> value) of an invocation's one EMF document, checked to be in the
    MailSage namespace with exactly the two deployment-wide dimensions and one value per metric."""
    (document,) = documents  # once per invocation
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "MailSage"
    (dimensions,) = directive["Dimensions"]
    assert sorted(dimensions) == ["function_name", "service"]  # never an account's id
    assert {m["Unit"] for m in directive["Metrics"]} == {"Count"}
    values = {}
    for metric in directive["Metrics"]:
        value = document[metric["Name"]]
        (values[metric["Name"]],) = value if isinstance(value, list) else [value]  # summed: one value
    return {d: document[d] for d in dimensions}, values


@pytest.fixture
def aws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Deployment]:
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        sqs = boto3.client("sqs", region_name=REGION)
        send_url = sqs.create_queue(QueueName=f"send-{suffix}")["QueueUrl"]
        webhooks_url = sqs.create_queue(QueueName=f"webhooks-{suffix}")["QueueUrl"]
        ingest_dlq_url = sqs.create_queue(QueueName=f"ingest-dlq-{suffix}")["QueueUrl"]
        boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity=SENDER_DOMAIN)
        use_aws_backend(
            monkeypatch,
            tmp_path / "data",
            table,
            send_url,
            WEBHOOK_QUEUE_URL=webhooks_url,
            INGEST_DLQ_URL=ingest_dlq_url,
            ALLOW_PRIVATE_WEBHOOK_URLS="true",  # the receiver is on loopback
            SIGNING_SECRET="k" * 32,
        )
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
        backends = Backends(DynamoStore(table), SqsQueue(send_url), None, SqsQueue(webhooks_url))
        yield Deployment(backends, monkeypatch, capsys)


def test_a_send_counts_accepted_in_the_api_and_sent_in_the_sender(aws: Deployment) -> None:
    api = ApiClient(aws.handler("api"), aws.account.key)

    # When the api accepts a send of one recipient
    reply, accepted = aws.run("api", lambda _: api.post("/api/v1/emails/send", sent_to("ann@example.com")))
    assert reply.status == 202, reply.body

    # Then its invocation publishes one accepted message, by service and function
    assert published(accepted) == (
        {"service": "mailsage-api", "function_name": "mailsage-api"},
        {"MessagesAccepted": 1},
    )

    # And when the sender delivers it, the sender's invocation publishes one sent message
    assert published(aws.deliver()) == (
        {"service": "mailsage-sender", "function_name": "mailsage-test-sender"},
        {"MessagesSent": 1},
    )


def reject(**_: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    error = {"Code": "MessageRejected", "Message": "Email address is not verified."}
    raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "SendEmail")


class RejectingClient:
    """SES v2 refusing every message for good."""

    send_email = staticmethod(reject)


def test_a_message_ses_rejects_counts_messages_failed_and_no_send(
    aws: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailsage.adapters.aws.ses_transport import SesTransport

    # Given an accepted send, and SES rejecting it permanently
    reply, _ = aws.run(
        "api", lambda h: ApiClient(h, aws.account.key).post("/api/v1/emails/send", sent_to("ann@example.com"))
    )
    assert reply.status == 202, reply.body
    monkeypatch.setattr(SesTransport, "client", lambda self: RejectingClient())

    # When the sender tries it, then its invocation publishes one failure and nothing sent
    assert published(aws.deliver())[1] == {"MessagesFailed": 1}


def test_a_recipient_suppressed_at_acceptance_counts_as_accepted_and_suppressed(aws: Deployment) -> None:
    api = ApiClient(aws.handler("api"), aws.account.key)
    # Given an address on the account's suppression list
    path = f"/v2/accounts/{aws.account.id}/suppressions"
    reply = api.post(path, {"email": "gone@example.com", "expires_at": "2099-01-01T00:00:00Z"})
    assert reply.status == 201, reply.body

    # When a batch to it and to another address is accepted
    batch = {
        "recipients": [{"email": "gone@example.com"}, {"email": "ok@example.com"}],
        "from": f"news@{SENDER_DOMAIN}",
        "subject": "Hi",
        "body": "Hello",
    }
    reply, documents = aws.run("api", lambda _: api.post("/api/v1/emails/batch", batch))
    assert reply.status == 202, reply.body

    # Then both are accepted and one is counted suppressed
    assert published(documents)[1] == {"MessagesAccepted": 2, "MessagesSuppressed": 1}


def test_an_ingested_batch_counts_its_messages_accepted_once(aws: Deployment) -> None:
    # Given a batch of two recipients on the ingest queue
    event = load_event("sqs_ingest_batch.json")
    record = event["Records"][0]
    record["body"] = json.dumps({**json.loads(record["body"]), "account_id": aws.account.id})

    # When the ingest function takes it, and the queue delivers the same record again
    first, accepted = aws.invoke("ingest", event)
    again, repeated = aws.invoke("ingest", event)

    # Then both messages are counted once, by the ingest function
    assert first == again == {"batchItemFailures": []}
    assert published(accepted) == (
        {"service": "mailsage-ingest", "function_name": "mailsage-test-ingest"},
        {"MessagesAccepted": 2},
    )
    assert repeated == []


def test_a_bounce_notification_counts_messages_bounced_once(aws: Deployment) -> None:
    # Given a message sent through SES
    message = aws.send("user@example.com")

    # When SES's permanent bounce of it arrives on the events queue (SNS -> SQS, raw delivery)
    event = load_event("ses_bounce_permanent.json")
    body = json.loads(event["Records"][0]["body"])
    body["mail"]["tags"].update(
        {"account_id": [aws.account.id], "job_id": [message.job_id], "message_id": [message.id]}
    )
    event["Records"][0]["body"] = json.dumps(body)
    result, documents = aws.invoke("events", event)

    # Then the events function publishes one bounce
    assert result == {"batchItemFailures": []}
    assert published(documents) == (
        {"service": "mailsage-events", "function_name": "mailsage-test-events"},
        {"MessagesBounced": 1},
    )

    # And the same notification delivered again moves nothing, so nothing is published
    result, documents = aws.invoke("events", event)
    assert result == {"batchItemFailures": []}
    assert documents == []


def test_a_failed_webhook_attempt_counts_webhook_deliveries_failed(aws: Deployment) -> None:
    with WebhookReceiver(secret="whsec_test") as receiver:
        # Given an endpoint that answers 500, and a delivery for it on the webhook queue
        now = time.time()
        webhook = Webhook(
            str(uuid.uuid4()), aws.account.id, "all", receiver.url, "whsec_test", True, ["*"], now, now
        )
        aws.backends.store.put_webhook(webhook)
        receiver.respond(500)
        assert aws.backends.webhooks is not None
        aws.backends.webhooks.send([event_body(webhook)])
        received = aws.backends.webhooks.receive(max_messages=1, wait_seconds=0)

        # When the webhooks function posts it
        result, documents = aws.invoke("webhooks", sqs_event(received))

    # Then the attempt failed (it comes back later) and the invocation publishes one failure
    assert len(receiver.requests) == 1
    assert result == {"batchItemFailures": [{"itemIdentifier": received[0].message_id}]}
    assert published(documents) == (
        {"service": "mailsage-webhooks", "function_name": "mailsage-test-webhooks"},
        {"WebhookDeliveriesFailed": 1},
    )


# -- tracing ----------------------------------------------------------------------------------------

# An event each function handles without AWS (locally): a request without a key, records of unknown
# jobs, deliveries and messages.
QUIET_EVENTS = {
    "api": "api_get_job.json",
    "sender": "sqs_send_chunk.json",
    "ingest": "sqs_ingest_malformed.json",
    "events": "ses_delivery.json",
    "webhooks": "sqs_webhook_delivery.json",
}


class RecordingSubsegment:
    def __init__(self, name: str) -> None:
        self.name = name
        self.annotations: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata[key] = value

    def add_exception(self, exception: BaseException, stack: Any = None) -> None:
        self.metadata["exception"] = exception


class RecordingProvider:
    """Stands in for the X-Ray recorder: the subsegments the handler opened."""

    def __init__(self) -> None:
        self.subsegments: list[RecordingSubsegment] = []

    def in_subsegment(self, name: str, **_: Any) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def opened() -> Iterator[RecordingSubsegment]:
            subsegment = RecordingSubsegment(name)
            self.subsegments.append(subsegment)
            yield subsegment

        return opened()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_handler_opens_its_trace_subsegment_without_its_reply(function: str, data_dir: Path) -> None:
    # Given the function's handler, its tracer recording instead of sending to X-Ray
    handler = load_handler(function)
    provider = RecordingProvider()
    handler.tracer.provider = provider

    # When it is invoked
    handler.lambda_handler(load_event(QUIET_EVENTS[function]), LocalContext(f"mailsage-{function}"))

    # Then the invocation ran inside its subsegment, annotated with the service, the reply left out
    (subsegment,) = provider.subsegments
    assert subsegment.name == "## lambda_handler"
    assert subsegment.annotations["Service"] == f"mailsage-{function}"
    assert "ColdStart" in subsegment.annotations
    assert subsegment.metadata == {}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_outside_lambda_tracing_is_off_and_reaches_no_daemon(
    function: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

    emitted: list[Any] = []
    monkeypatch.setattr(UDPEmitter, "send_entity", lambda self, entity: emitted.append(entity))
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)  # as `mailsage serve` and the tests run
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)

    # When the local runtime loads the handler and invokes it twice
    handler = load_handler(function)
    with caplog.at_level(logging.DEBUG, logger="aws_xray_sdk"):
        for _ in range(2):
            handler.lambda_handler(load_event(QUIET_EVENTS[function]), LocalContext(f"mailsage-{function}"))

    # Then tracing is off: nothing is sent to a daemon and the X-Ray SDK logs nothing per request
    assert handler.tracer.disabled
    assert not global_sdk_config.sdk_enabled()
    assert emitted == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("aws_xray_sdk")] == []
