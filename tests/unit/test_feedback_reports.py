"""Delivery reports: the SES adapter turns each notification sample of events/ into the neutral
report the domain reads, and a report crosses a queue as JSON unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailsage.adapters.aws import ses_events
from mailsage.domain.delivery_reports import DeliveryReport, ReportOutcome, is_report
from tests.conftest import load_event


def notification(sample: str) -> dict[str, Any]:
    return json.loads(load_event(sample)["Records"][0]["body"])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("sample", "outcome"),
    [
        ("ses_send.json", ReportOutcome.ACCEPTED),
        ("ses_delivery.json", ReportOutcome.DELIVERED),
        ("ses_bounce_permanent.json", ReportOutcome.BOUNCED),
        ("ses_bounce_transient.json", ReportOutcome.SOFT_BOUNCED),
        ("ses_complaint.json", ReportOutcome.COMPLAINED),
        ("ses_delivery_delay.json", ReportOutcome.DELAYED),
        ("ses_reject.json", ReportOutcome.REJECTED),
        ("ses_rendering_failure.json", ReportOutcome.RENDERING_FAILED),
        ("ses_open.json", ReportOutcome.OPENED),
        ("ses_click.json", ReportOutcome.CLICKED),
    ],
)
def test_each_ses_sample_becomes_its_outcome_with_the_mailsage_ids(
    sample: str, outcome: ReportOutcome
) -> None:
    # Given an SES notification of a message sent by MailSage (tagged with its ids)
    body = notification(sample)
    tags = body["mail"]["tags"]
    # When the adapter translates it
    report = ses_events.to_report(body)
    # Then the report names the outcome and the message by MailSage's ids
    assert report is not None
    assert report.outcome == outcome
    assert (report.account_id, report.job_id, report.message_id) == (
        tags["account_id"][0],
        tags["job_id"][0],
        tags["message_id"][0],
    )
    assert report.from_addr == body["mail"]["commonHeaders"]["from"][0]
    assert report.occurred_at is not None


def test_a_permanent_bounce_carries_the_bounced_recipient_and_the_diagnostic() -> None:
    report = ses_events.to_report(notification("ses_bounce_permanent.json"))
    assert report is not None
    assert report.recipient == "user@example.com"
    assert report.detail == "smtp; 550 5.1.1 user unknown"


def test_an_undetermined_bounce_is_not_a_permanent_one() -> None:
    body = notification("ses_bounce_permanent.json")
    body["bounce"]["bounceType"] = "Undetermined"
    report = ses_events.to_report(body)
    assert report is not None and report.outcome == ReportOutcome.UNDETERMINED_BOUNCE


def test_an_unknown_event_type_has_no_report() -> None:
    body = notification("ses_delivery.json")
    body["eventType"] = "Subscription"
    assert ses_events.to_report(body) is None
    assert ses_events.event_type(body) == "Subscription"


def test_mail_without_mailsage_tags_gives_a_report_without_ids() -> None:
    body = notification("ses_delivery.json")
    body["mail"]["tags"] = {"ses:configuration-set": ["mailsage-events"]}
    report = ses_events.to_report(body)
    assert report is not None and (report.account_id, report.message_id) == (None, None)


def test_an_sns_envelope_is_unwrapped() -> None:
    body = notification("ses_delivery.json")
    wrapped = {"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(body)}
    assert ses_events.unwrap(wrapped) == body
    assert ses_events.unwrap(body) == body


def test_a_report_crosses_a_queue_as_json_unchanged() -> None:
    report = ses_events.to_report(notification("ses_complaint.json"))
    assert report is not None
    data = json.loads(json.dumps(report.to_dict()))
    assert is_report(data)
    assert DeliveryReport.from_dict(data) == report


def test_an_ses_notification_is_not_taken_for_a_report() -> None:
    assert not is_report(notification("ses_delivery.json"))
    assert not is_report({"Type": "Notification", "Message": "{}"})
