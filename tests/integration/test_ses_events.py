"""The events function applies each SES event notification (samples in events/) to a message that
was really sent through the sender, and never moves a status backwards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailsage.local.functions import LocalContext, load_handler
from mailsage.wiring import Backends
from tests.conftest import ApiClient, Worker, load_event


@pytest.fixture
def sent_message(api: ApiClient, worker: Worker, account) -> dict[str, str]:  # noqa: ANN001
    reply = api.post(
        "/api/v1/emails/send", {"recipient": {"email": "user@example.com"}, "subject": "s", "body": "b"}
    )
    worker.drain()
    return {"account_id": account.id, "job_id": reply.body["job_id"], "message_id": reply.body["message_id"]}


@pytest.fixture
def events_handler(data_dir) -> Any:  # noqa: ANN001
    return load_handler("events")


def ses_event(sample: str, ids: dict[str, str], sns_envelope: bool = False) -> dict[str, Any]:
    """The sample SQS event, tagged with the ids of a real message."""
    event = load_event(sample)
    body = json.loads(event["Records"][0]["body"])
    for name, value in ids.items():
        body["mail"]["tags"][name] = [value]
    text = json.dumps(body)
    if sns_envelope:
        text = json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": text})
    event["Records"][0]["body"] = text
    return event


def deliver(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    return handler.lambda_handler(event, LocalContext("mailsage-events"))


def status(stores: Backends, ids: dict[str, str]) -> str:
    message = stores.store.get_message(ids["account_id"], ids["message_id"])
    assert message is not None
    return message.status.value


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("ses_send.json", "sent"),
        ("ses_delivery.json", "delivered"),
        ("ses_bounce_permanent.json", "bounced"),
        ("ses_bounce_transient.json", "deferred"),
        ("ses_complaint.json", "complained"),
        ("ses_delivery_delay.json", "deferred"),
        ("ses_reject.json", "failed"),
        ("ses_rendering_failure.json", "failed"),
        ("ses_open.json", "sent"),
        ("ses_click.json", "sent"),
    ],
)
def test_each_ses_event_type_sets_its_status(
    events_handler: Any, sent_message: dict[str, str], stores: Backends, sample: str, expected: str
) -> None:
    result = deliver(events_handler, ses_event(sample, sent_message))
    assert result == {"batchItemFailures": []}
    assert status(stores, sent_message) == expected


def test_a_permanent_bounce_records_the_diagnostic(
    events_handler: Any, sent_message: dict[str, str], stores: Backends
) -> None:
    deliver(events_handler, ses_event("ses_bounce_permanent.json", sent_message))
    message = stores.store.get_message(sent_message["account_id"], sent_message["message_id"])
    assert message is not None
    assert (message.error_code, message.error_message) == ("bounced", "smtp; 550 5.1.1 user unknown")


def test_the_job_counts_follow_the_delivery_status(
    api: ApiClient, events_handler: Any, sent_message: dict[str, str]
) -> None:
    deliver(events_handler, ses_event("ses_delivery.json", sent_message))
    counts = api.get(f"/api/v1/emails/jobs/{sent_message['job_id']}").body["counts"]
    assert (counts["sent"], counts["delivered"]) == (0, 1)


def test_a_late_delivery_never_undoes_a_bounce(
    events_handler: Any, sent_message: dict[str, str], stores: Backends
) -> None:
    deliver(events_handler, ses_event("ses_bounce_permanent.json", sent_message))
    deliver(events_handler, ses_event("ses_delivery.json", sent_message))
    assert status(stores, sent_message) == "bounced"


def test_a_delay_followed_by_the_delivery_ends_delivered(
    events_handler: Any, sent_message: dict[str, str], stores: Backends
) -> None:
    deliver(events_handler, ses_event("ses_delivery_delay.json", sent_message))
    deliver(events_handler, ses_event("ses_delivery.json", sent_message))
    assert status(stores, sent_message) == "delivered"


def test_a_duplicate_notification_is_applied_once(
    api: ApiClient, events_handler: Any, sent_message: dict[str, str]
) -> None:
    for _ in range(2):
        deliver(events_handler, ses_event("ses_complaint.json", sent_message))
    counts = api.get(f"/api/v1/emails/jobs/{sent_message['job_id']}").body["counts"]
    assert (counts["complained"], counts["sent"]) == (1, 0)


def test_an_sns_envelope_is_unwrapped(
    events_handler: Any, sent_message: dict[str, str], stores: Backends
) -> None:
    deliver(events_handler, ses_event("ses_delivery.json", sent_message, sns_envelope=True))
    assert status(stores, sent_message) == "delivered"


def test_mail_without_mailsage_tags_is_ignored(events_handler: Any, data_dir) -> None:  # noqa: ANN001
    event = load_event("ses_delivery.json")
    body = json.loads(event["Records"][0]["body"])
    body["mail"]["tags"] = {"ses:configuration-set": ["mailsage-events"]}
    event["Records"][0]["body"] = json.dumps(body)
    assert deliver(events_handler, event) == {"batchItemFailures": []}


def test_another_accounts_tag_cannot_move_a_message(
    events_handler: Any, sent_message: dict[str, str], stores: Backends
) -> None:
    forged = {**sent_message, "account_id": "00000000-0000-0000-0000-000000000000"}
    deliver(events_handler, ses_event("ses_bounce_permanent.json", forged))
    assert status(stores, sent_message) == "sent"


def test_a_notification_that_overtakes_the_senders_write_is_retried_not_lost(
    api: ApiClient,
    events_handler: Any,
    stores: Backends,
    account,
    worker: Worker,  # noqa: ANN001
) -> None:
    reply = api.post(
        "/api/v1/emails/send", {"recipient": {"email": "user@example.com"}, "subject": "s", "body": "b"}
    )
    ids = {"account_id": account.id, "job_id": reply.body["job_id"], "message_id": reply.body["message_id"]}
    early = deliver(events_handler, ses_event("ses_delivery.json", ids))  # still queued: not yet sent
    assert len(early["batchItemFailures"]) == 1
    assert status(stores, ids) == "queued"
    worker.drain()
    assert deliver(events_handler, ses_event("ses_delivery.json", ids)) == {"batchItemFailures": []}
    assert status(stores, ids) == "delivered"
