"""Feedback events on the AWS runtime: the real api, sender and events handlers with
MAILSAGE_BACKEND=aws, on a DynamoDB table, SQS send and webhook queues and SES v2 (moto in-process).
Every event is observed where the AWS runtime publishes it: the webhook SQS queue (one delivery per
subscribed endpoint, its `payload` the JSON the endpoint receives)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mailsage.domain.auth import AuthService
from mailsage.domain.models import EVENT_TYPES, Message, Webhook
from mailsage.local.functions import LocalContext, load_handler
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Worker, load_event
from tests.contract.aws_store import dynamodb_table
from tests.integration.test_feedback_events import message_of, published, types_for
from tests.moto_env import REGION, use_aws_backend

SENDER_DOMAIN = "acme-mail.com"
PUBLIC_URL = "https://mail.example.test"
HTML = '<html><body><p>Hi <a href="https://example.com/a?x=1&amp;y=2">A</a></p></body></html>'


class QueueWorker(Worker):
    """The conftest worker, polling SQS without a long poll (an empty receive returns at once)."""

    def drain(self, max_rounds: int = 50) -> None:
        for _ in range(max_rounds):
            received = self.queue.receive(max_messages=10, wait_seconds=0)
            if received:
                self.invoke(received)
            elif self.queue.depth() == 0:
                return
        raise AssertionError("the send queue did not drain")


class AwsRuntime:
    """The deployed functions' wiring on moto: each handler loaded (a cold start) with the AWS
    settings, an account with a key, and a webhook endpoint subscribed to every event."""

    def __init__(self, table: str, send_url: str, webhooks_url: str) -> None:
        from mailsage.adapters.aws.dynamodb import DynamoStore
        from mailsage.adapters.aws.sqs_queue import SqsQueue

        self.backends = Backends(DynamoStore(table), SqsQueue(send_url), None, SqsQueue(webhooks_url))
        self.store = self.backends.store
        self.account_id = str(uuid.uuid4())
        self.account = Account(self.account_id, AuthService(self.store).create_key(self.account_id))
        self.api = ApiClient(load_handler("api"), self.account.key)
        self.worker = QueueWorker(load_handler("sender"), self.backends)
        self.events = load_handler("events")
        now = time.time()
        self.hook = Webhook(
            str(uuid.uuid4()),
            self.account_id,
            "all",
            "https://hooks.example.test/in",
            "whsec_test",
            True,
            sorted(EVENT_TYPES),
            now,
            now,
        )
        self.store.put_webhook(self.hook)

    def batch(self, emails: list[str], **extra: Any) -> dict[str, Any]:
        reply = self.api.post(
            "/api/v1/emails/batch",
            {
                "recipients": [{"email": e} for e in emails],
                "subject": "Hello",
                "html": HTML,
                "from": f"News <news@{SENDER_DOMAIN}>",
                **extra,
            },
        )
        assert reply.status == 202, reply.body
        return reply.body  # type: ignore[no-any-return]

    def published(self) -> list[dict[str, Any]]:
        """Every payload on the webhook queue so far (taken off it)."""
        payloads = published(self.backends)
        assert all(p["webhook_id"] == self.hook.id for p in payloads)
        return payloads

    def message(self, job_id: str, email: str) -> Message:
        return message_of(self.backends, self.account, job_id, email)  # type: ignore[no-any-return]

    def notify(self, sample: str, message: Message) -> None:
        """An SES notification sample (the SQS record the events function gets) about `message`."""
        event = load_event(sample)
        record = event["Records"][0]
        body = json.loads(record["body"])
        body["mail"]["tags"].update(
            {"account_id": [self.account_id], "job_id": [message.job_id], "message_id": [message.id]}
        )
        record["body"] = json.dumps(body)
        result = self.events.lambda_handler(event, LocalContext("mailsage-events"))
        assert result == {"batchItemFailures": []}


def ses_sent(recipient: str) -> list[EmailMessage]:
    """The raw messages SES (moto) took for `recipient`."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    found = []
    for sent in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages:
        if recipient in sent.destinations:
            found.append(message_from_string(sent.raw_data, policy=policy.default))
    return found  # type: ignore[return-value]


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsRuntime]:
    import boto3

    # Names of their own per test: the wiring caches backends per settings value.
    suffix = uuid.uuid4().hex[:12]
    with dynamodb_table(f"mailsage-{suffix}") as table:
        sqs = boto3.client("sqs", region_name=REGION)
        send_url = sqs.create_queue(QueueName=f"send-{suffix}")["QueueUrl"]
        webhooks_url = sqs.create_queue(QueueName=f"webhooks-{suffix}")["QueueUrl"]
        boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity=SENDER_DOMAIN)
        # The key of tracking and unsubscribe URLs, read from Secrets Manager as the stack configures it.
        signing = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"signing-{suffix}", SecretString=uuid.uuid4().hex
        )["ARN"]
        use_aws_backend(
            monkeypatch,
            tmp_path / "data",
            table,
            send_url,
            WEBHOOK_QUEUE_URL=webhooks_url,
            WEBHOOK_CACHE_SECONDS="0",
            PUBLIC_URL=PUBLIC_URL,
            SIGNING_SECRET_NAME=signing,
            MESSAGE_ID_DOMAIN="mail.test",
        )
        yield AwsRuntime(table, send_url, webhooks_url)


def test_a_batch_emits_reception_and_suppressed_then_job_completed_on_the_webhook_queue(
    aws: AwsRuntime,
) -> None:
    reply = aws.api.post(
        f"/v2/accounts/{aws.account_id}/suppressions",
        {"email": "gone@example.com", "reason": "left", "expires_at": "2099-01-01T00:00:00Z"},
    )
    assert reply.status == 201, reply.body
    job = aws.batch(["ok@example.com", "gone@example.com"])
    ok, gone = aws.message(job["job_id"], "ok@example.com"), aws.message(job["job_id"], "gone@example.com")
    assert gone.status.value == "suppressed"

    accepted = aws.published()  # what the api function published while accepting the batch
    assert types_for(accepted, "ok@example.com") == ["message.reception"]
    assert types_for(accepted, "gone@example.com") == ["message.reception", "message.suppressed"]
    ids = {(p["type"], p["data"]["recipient"]): p["data"]["id"] for p in accepted}
    assert ids == {
        ("message.reception", "ok@example.com"): ok.id,
        ("message.reception", "gone@example.com"): gone.id,
        ("message.suppressed", "gone@example.com"): gone.id,
    }
    suppressed = next(p["data"] for p in accepted if p["type"] == "message.suppressed")
    assert suppressed["message_id_header"] == f"<{gone.id}@mail.test>"
    assert suppressed["event"] == "on_suppressed" and suppressed["from"] == f"news@{SENDER_DOMAIN}"

    aws.worker.drain()
    assert [m["To"] for m in ses_sent("ok@example.com")] == ["ok@example.com"]
    assert ses_sent("gone@example.com") == []
    [completed] = aws.published()  # the sender's: SES reports the delivery later
    assert completed["type"] == "job.completed"
    assert completed["data"]["job_id"] == job["job_id"]
    assert completed["data"]["state"] == "completed"
    assert completed["data"]["counts"] == {"sent": 1, "suppressed": 1}

    # SES's Delivery notification, through the events function.
    aws.notify("ses_delivery.json", ok)
    [delivered] = aws.published()
    assert (delivered["type"], delivered["data"]["id"]) == ("message.delivered", ok.id)
    assert aws.message(job["job_id"], "ok@example.com").status.value == "delivered"


def test_job_control_through_the_api_emits_job_paused_and_job_stopped(aws: AwsRuntime) -> None:
    job = aws.batch([f"r{i}@example.com" for i in range(3)])
    aws.published()
    control = f"/api/v1/emails/jobs/{job['job_id']}/control"
    assert aws.api.post(control, {"action": "pause"}).status == 200
    [paused] = aws.published()
    assert (paused["type"], paused["data"]["job_id"], paused["data"]["state"]) == (
        "job.paused",
        job["job_id"],
        "paused",
    )
    assert aws.api.post(control, {"action": "resume"}).status == 200
    assert aws.published() == []  # resuming a job with work left is no event
    assert aws.api.post(control, {"action": "stop"}).status == 200
    [stopped] = aws.published()
    assert (stopped["type"], stopped["data"]["job_id"], stopped["data"]["state"]) == (
        "job.stopped",
        job["job_id"],
        "stopped",
    )
    assert stopped["data"]["counts"] == {"cancelled": 3}
    # The chunks still on the send queue send nothing and emit nothing.
    aws.worker.drain()
    assert aws.published() == []
    assert all(ses_sent(f"r{i}@example.com") == [] for i in range(3))


def tracking_urls(mail: EmailMessage) -> tuple[str, str]:
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html)
    link = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
    assert pixel and link, html
    return pixel.group(1), link.group(1)


def test_opens_and_clicks_on_the_tracking_endpoints_emit_their_events(aws: AwsRuntime) -> None:
    job = aws.batch(["reader@example.com"], tracking={"open": True, "click": True})
    aws.worker.drain()
    aws.published()
    [mail] = ses_sent("reader@example.com")
    pixel, link = tracking_urls(mail)
    assert pixel.startswith(f"{PUBLIC_URL}/t/o/") and link.startswith(f"{PUBLIC_URL}/t/c/")
    message = aws.message(job["job_id"], "reader@example.com")

    assert aws.api.get(urlsplit(pixel).path, key=None, headers={"User-Agent": "Mail/1.0"}).status == 200
    opened = aws.published()
    # The open proves the delivery SES has not reported yet.
    assert [(p["type"], p["data"]["id"]) for p in opened] == [
        ("message.delivered", message.id),
        ("message.opened", message.id),
    ]
    assert opened[1]["data"]["user_agent"] == "Mail/1.0" and opened[1]["data"]["is_bot"] is False

    click = aws.api.get(urlsplit(link).path, key=None, headers={"User-Agent": "Mail/1.0"})
    assert click.status == 302 and click.headers["location"] == "https://example.com/a?x=1&y=2"
    [clicked] = aws.published()
    assert (clicked["type"], clicked["data"]["id"]) == ("message.clicked", message.id)
    assert clicked["data"]["url"] == "https://example.com/a?x=1&y=2"

    # SES's own Open and Click events are not how MailSage counts engagement: they change nothing.
    aws.notify("ses_open.json", message)
    aws.notify("ses_click.json", message)
    assert aws.published() == []
    stored = aws.message(job["job_id"], "reader@example.com")
    assert stored.status.value == "delivered"
    assert [e["status"] for e in stored.events].count("opened") == 1
    assert [e["status"] for e in stored.events].count("clicked") == 1
    counts = aws.store.get_job(aws.account_id, job["job_id"]).counts  # type: ignore[union-attr]
    assert counts == {"delivered": 1}


def test_a_one_click_unsubscribe_post_emits_suppression_created(aws: AwsRuntime) -> None:
    job = aws.batch(["leaver@example.com"])
    aws.worker.drain()
    aws.published()
    [mail] = ses_sent("leaver@example.com")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(mail["List-Unsubscribe"]).strip("<>")
    assert url.startswith(f"{PUBLIC_URL}/u/")

    def one_click() -> int:
        return aws.api.post(
            urlsplit(url).path,
            key=None,
            raw_body="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status

    assert one_click() == 200
    [created] = aws.published()
    assert created["type"] == "suppression.created"
    assert created["data"]["recipient"] == "leaver@example.com"
    assert created["data"]["account_id"] == aws.account_id
    assert created["data"]["sending_domain"] == SENDER_DOMAIN
    assert "unsubscribe" in created["data"]["reason"]
    assert aws.store.suppressed(aws.account_id, ["leaver@example.com"], SENDER_DOMAIN, time.time()) == {
        "leaver@example.com"
    }
    message = aws.message(job["job_id"], "leaver@example.com")
    assert [e["status"] for e in message.events].count("unsubscribed") == 1

    # A second click extends the suppression it made: no second suppression.created.
    assert one_click() == 200
    assert aws.published() == []
