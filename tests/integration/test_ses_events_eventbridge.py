"""The events function over SES events in EventBridge's envelope (a stack with `ses_event_destination`
"eventbridge"), on both stores: the canonical sample (events/ses_bounce_eventbridge.json) applied to
a message really sent through the sender on SQLite, and on DynamoDB/SQS under moto an event put on
the default bus, selected by the stack's rule pattern, delivered by EventBridge to the events queue
and applied from there. On both, an event that reaches the queue through both destinations while a
stack switches between them is applied once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailsage.adapters.aws import ses_events
from mailsage.local.functions import LocalContext, load_handler
from mailsage.wiring import Backends
from tests.conftest import ApiClient, Worker, load_event
from tests.integration.test_feedback_aws_events import AwsRuntime, aws  # noqa: F401 (fixture)
from tests.moto_env import REGION

# infra/constructs/ses.py EVENTS: the types the configuration set publishes (tests/infra/
# test_ses_event_bus.py checks the deployed rule is this pattern).
SUBSCRIBED = ("Delivery", "DeliveryDelay", "Bounce", "Complaint", "Reject", "Rendering Failure")
CONFIGURATION_SET = "SesConfigurationSet-prod"


def eventbridge_body(
    ids: dict[str, str], configuration_set: str = "mailsage-events", recipient: str = "user@example.com"
) -> dict[str, Any]:
    """The canonical EventBridge bounce, about the message `ids` name, sent to `recipient`."""
    body = json.loads(load_event("ses_bounce_eventbridge.json")["Records"][0]["body"])
    body["detail"]["mail"]["destination"] = [recipient]
    body["detail"]["bounce"]["bouncedRecipients"][0]["emailAddress"] = recipient
    tags = body["detail"]["mail"]["tags"]
    tags.update({name: [value] for name, value in ids.items()})
    tags["ses:configuration-set"] = [configuration_set]
    return body  # type: ignore[no-any-return]


def sqs_record_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    """The SQS event of the sample, one record per body."""
    template = load_event("ses_bounce_eventbridge.json")["Records"][0]
    records = [{**template, "messageId": f"m-{i}", "body": json.dumps(b)} for i, b in enumerate(bodies)]
    return {"Records": records}


# --- SQLite: the embedded store ------------------------------------------------------------------


@pytest.fixture
def sent(api: ApiClient, worker: Worker, account) -> dict[str, str]:  # noqa: ANN001
    reply = api.post(
        "/api/v1/emails/send", {"recipient": {"email": "user@example.com"}, "subject": "s", "body": "b"}
    )
    worker.drain()
    return {"account_id": account.id, "job_id": reply.body["job_id"], "message_id": reply.body["message_id"]}


def test_an_eventbridge_bounce_bounces_and_suppresses_on_sqlite(
    stores: Backends, sent: dict[str, str], data_dir
) -> None:  # noqa: ANN001
    # Given a message sent through the sender
    events = load_handler("events")
    # When SES's bounce of it arrives as EventBridge delivers it
    result = events.lambda_handler(sqs_record_event(eventbridge_body(sent)), LocalContext("mailsage-events"))
    # Then the message is bounced with SES's diagnostic, and the address suppressed
    assert result == {"batchItemFailures": []}
    message = stores.store.get_message(sent["account_id"], sent["message_id"])
    assert message is not None and message.status.value == "bounced"
    assert message.error_message == "smtp; 550 5.1.1 user unknown"
    suppressions, _ = stores.store.list_suppressions(
        sent["account_id"], "user@example.com", None, None, None, 10, None
    )
    assert [s.email for s in suppressions] == ["user@example.com"]


def test_one_event_through_both_destinations_during_the_switch_is_applied_once(
    api: ApiClient, sent: dict[str, str], data_dir
) -> None:  # noqa: ANN001
    # Given the same bounce delivered twice while both destinations exist (SNS raw, then EventBridge)
    events = load_handler("events")
    body = eventbridge_body(sent)
    result = events.lambda_handler(sqs_record_event(body["detail"], body), LocalContext("mailsage-events"))
    # Then both records succeed and the job counts one bounce
    assert result == {"batchItemFailures": []}
    counts = api.get(f"/api/v1/emails/jobs/{sent['job_id']}").body["counts"]
    assert (counts.get("bounced"), counts.get("sent", 0)) == (1, 0)


# --- DynamoDB/SQS under moto, through EventBridge's rule -------------------------------------------


def _events_queue_with_rule(suffix: str) -> str:
    """The events queue and, on moto's default bus, the stack's rule pattern targeting it."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=f"events-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = boto3.client("events", region_name=REGION)
    pattern = ses_events.event_pattern(CONFIGURATION_SET, SUBSCRIBED)
    bus.put_rule(Name=f"ses-events-{suffix}", EventPattern=json.dumps(pattern))
    bus.put_targets(Rule=f"ses-events-{suffix}", Targets=[{"Id": "events-queue", "Arn": arn}])
    return str(url)


def _publish(body: dict[str, Any]) -> None:
    """What SES does for an event destination of type EventBridge: one event on the default bus."""
    import boto3

    entry = {
        "Source": body["source"],
        "DetailType": body["detail-type"],
        "Detail": json.dumps(body["detail"]),
        "Resources": body["resources"],
    }
    reply = boto3.client("events", region_name=REGION).put_events(Entries=[entry])
    assert reply["FailedEntryCount"] == 0


def test_an_eventbridge_bounce_reaches_the_events_function_through_the_rule_on_dynamodb(
    aws: AwsRuntime,  # noqa: F811
) -> None:
    import boto3

    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from mailsage.local.events import sqs_event

    # Given a message sent through the sender, and the stack's rule on the default bus
    job = aws.batch(["bounce@example.com"])
    aws.worker.drain()
    aws.published()
    message = aws.message(job["job_id"], "bounce@example.com")
    url = _events_queue_with_rule(job["job_id"][-8:])
    ids = {"account_id": aws.account_id, "job_id": message.job_id, "message_id": message.id}
    # When SES publishes its bounce, and another configuration set's bounce of the same message
    _publish(eventbridge_body(ids, CONFIGURATION_SET, "bounce@example.com"))
    _publish(eventbridge_body(ids, "another-stage", "bounce@example.com"))
    # Then only this configuration set's event is on the events queue, in EventBridge's envelope
    queue = SqsQueue(url)
    received = queue.receive(max_messages=10, wait_seconds=0)
    assert [r.body["detail-type"] for r in received] == ["Email Bounced"]
    assert boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=url).get("Messages", []) == []
    # And the events function applies it: bounced, the address suppressed, the webhook told
    result = aws.events.lambda_handler(sqs_event(received), LocalContext("mailsage-events"))
    assert result == {"batchItemFailures": []}
    assert aws.message(job["job_id"], "bounce@example.com").status.value == "bounced"
    suppressions, _ = aws.store.list_suppressions(
        aws.account_id, "bounce@example.com", None, None, None, 10, None
    )
    assert [s.email for s in suppressions] == ["bounce@example.com"]
    assert "message.bounced" in [p["type"] for p in aws.published()]


def test_one_event_through_both_destinations_during_the_switch_is_applied_once_on_dynamodb(
    aws: AwsRuntime,  # noqa: F811
) -> None:
    # Given a message sent through the sender
    job = aws.batch(["bounce@example.com"])
    aws.worker.drain()
    aws.published()
    message = aws.message(job["job_id"], "bounce@example.com")
    ids = {"account_id": aws.account_id, "job_id": message.job_id, "message_id": message.id}
    body = eventbridge_body(ids, CONFIGURATION_SET, "bounce@example.com")
    # When the same bounce arrives as SNS delivers it (raw), then as the EventBridge rule does
    result = aws.events.lambda_handler(
        sqs_record_event(body["detail"], body), LocalContext("mailsage-events")
    )
    # Then both records succeed, the message is bounced, and the webhook is told once
    assert result == {"batchItemFailures": []}
    assert aws.message(job["job_id"], "bounce@example.com").status.value == "bounced"
    assert [p["type"] for p in aws.published()].count("message.bounced") == 1
