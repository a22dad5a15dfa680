"""Feedback on the AWS adapters: each SES notification sample from events/ applied by the events
function's domain to a message stored in DynamoDB (moto), with its webhook events going out on an
SQS queue and hard bounces and complaints suppressing the address in the table."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mailsage.adapters.aws import ses_events
from mailsage.domain.events import EventPublisher
from mailsage.domain.feedback import FeedbackService
from mailsage.domain.models import EVENT_TYPES, Content, Job, JobState, Message, MessageStatus, Webhook
from tests.conftest import load_event
from tests.contract.aws_store import dynamodb_table

ACCOUNT = str(uuid.uuid4())


class World:
    def __init__(self) -> None:
        import boto3

        from mailsage.adapters.aws.dynamodb import DynamoStore
        from mailsage.adapters.aws.sqs_queue import SqsQueue

        self.store = DynamoStore("mailsage-contract")
        url = boto3.client("sqs").create_queue(QueueName="mailsage-webhooks")["QueueUrl"]
        self.queue = SqsQueue(url)
        self.feedback = FeedbackService(self.store, EventPublisher(self.store, self.queue, 0.0), "mail.test")
        now = time.time()
        self.store.put_webhook(
            Webhook(
                str(uuid.uuid4()),
                ACCOUNT,
                "all",
                "https://hooks.example.test",
                "whsec_x",
                True,
                sorted(EVENT_TYPES),
                now,
                now,
            )
        )

    def sent_message(self) -> str:
        """A one-message job as the sender leaves it: sent."""
        now = time.time()
        job = Job(
            id=f"job_{uuid.uuid4().hex}",
            account_id=ACCOUNT,
            kind="send",
            state=JobState.QUEUED,
            content=Content(subject="Hi", text="t", from_addr="news@acme.test"),
            total=1,
            chunks=1,
            created_at=now,
            updated_at=now,
        )
        message = Message(
            id=str(uuid.uuid4()),
            job_id=job.id,
            account_id=ACCOUNT,
            seq=0,
            chunk=0,
            email="user@example.com",
            name=None,
            variables={},
            created_at=now,
            updated_at=now,
            subject="Hi",
        )
        self.store.create_job(job, [message])
        assert self.store.claim_messages(job.id, [message.id], 300) == [message.id]
        assert self.store.finish_message(message.id, MessageStatus.SENT)
        self.job_id = job.id
        return message.id

    def apply(self, sample: str, message_id: str) -> str | None:
        body = json.loads(load_event(sample)["Records"][0]["body"])
        body["mail"]["tags"].update(
            {"account_id": [ACCOUNT], "job_id": [self.job_id], "message_id": [message_id]}
        )
        report = ses_events.to_report(body)
        assert report is not None
        return self.feedback.apply(report).status

    def published(self) -> list[dict[str, Any]]:
        payloads = []
        while batch := self.queue.receive(max_messages=10):
            for received in batch:
                payloads.append(json.loads(received.body["payload"]))
                self.queue.ack(received.receipt)
        return payloads

    def status(self, message_id: str) -> str:
        message = self.store.get_message(ACCOUNT, message_id)
        assert message is not None
        return message.status.value


@pytest.fixture
def world() -> Iterator[World]:
    with dynamodb_table():
        yield World()


@pytest.mark.parametrize(
    ("sample", "status", "events", "suppressed"),
    [
        ("ses_send.json", "sent", [], False),
        ("ses_delivery.json", "delivered", ["message.delivered"], False),
        ("ses_bounce_permanent.json", "bounced", ["message.bounced", "suppression.created"], True),
        ("ses_bounce_transient.json", "deferred", ["message.transient_error"], False),
        ("ses_complaint.json", "complained", ["suppression.created"], True),
        ("ses_delivery_delay.json", "deferred", ["message.transient_error"], False),
        ("ses_reject.json", "failed", ["message.failed"], False),
        ("ses_rendering_failure.json", "failed", ["message.failed"], False),
        ("ses_open.json", "sent", [], False),
        ("ses_click.json", "sent", [], False),
    ],
)
def test_each_ses_notification_sets_its_status_emits_its_events_and_suppresses(
    world: World, sample: str, status: str, events: list[str], suppressed: bool
) -> None:
    message_id = world.sent_message()
    world.apply(sample, message_id)
    assert world.status(message_id) == status
    payloads = world.published()
    assert [p["type"] for p in payloads] == events
    for payload in payloads:
        if payload["type"].startswith("message."):
            assert payload["data"]["id"] == message_id
            assert payload["data"]["message_id_header"] == f"<{message_id}@mail.test>"
    found = world.store.suppressed(ACCOUNT, ["user@example.com"], "acme.test", time.time())
    assert found == ({"user@example.com"} if suppressed else set())


def test_duplicates_and_late_news_change_nothing_and_emit_nothing(world: World) -> None:
    message_id = world.sent_message()
    assert world.apply("ses_delivery.json", message_id) == "delivered"
    assert world.apply("ses_complaint.json", message_id) == "complained"
    assert [p["type"] for p in world.published()] == ["message.delivered", "suppression.created"]
    # The same notifications again, and older news (a delay, a delivery) after the complaint.
    for sample in ("ses_delivery.json", "ses_complaint.json", "ses_delivery_delay.json", "ses_delivery.json"):
        assert world.apply(sample, message_id) is None
    assert world.status(message_id) == "complained"
    assert world.published() == []
    job = world.store.get_job(ACCOUNT, world.job_id)
    assert job is not None and job.counts == {"complained": 1}


def test_an_open_before_the_delivery_notification_counts_the_delivery_once(world: World) -> None:
    from mailsage.domain.engagement import EngagementService, Visitor
    from mailsage.domain.tracking import Signer, TrackedLinks

    message_id = world.sent_message()
    links = TrackedLinks(Signer(b"k" * 32), "https://t.example")
    engagement = EngagementService(world.store, links.signer, world.feedback.publisher, "mail.test")
    token = links.open_url(ACCOUNT, message_id).rsplit("/", 1)[1]
    assert engagement.opened(token, Visitor("Mail/1.0", "192.0.2.1"))
    assert world.status(message_id) == "delivered"
    assert world.apply("ses_delivery.json", message_id) is None  # already delivered: not again
    assert [p["type"] for p in world.published()] == ["message.delivered", "message.opened"]
    job = world.store.get_job(ACCOUNT, world.job_id)
    assert job is not None and job.counts == {"delivered": 1}
