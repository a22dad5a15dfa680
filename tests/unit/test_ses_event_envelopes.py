"""The three envelopes an SES event reaches the events queue in: EventBridge's (the configuration
set's destination: the SES event as `detail`), SNS's (`Message`, raw delivery off) and none (SNS
raw delivery, still in the queue or its dead-letter queue from before the switch). Each gives the
same report."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mailsage.adapters.aws import ses_events
from mailsage.domain.delivery_reports import ReportOutcome
from tests.conftest import load_event

SAMPLES = (
    "ses_send.json",
    "ses_delivery.json",
    "ses_bounce_permanent.json",
    "ses_bounce_transient.json",
    "ses_complaint.json",
    "ses_delivery_delay.json",
    "ses_reject.json",
    "ses_rendering_failure.json",
    "ses_open.json",
    "ses_click.json",
)
# SES eventType -> EventBridge detail-type (AWS's list of SES events on the default bus).
DETAIL_TYPE = {kind: name for name, kind in ses_events.DETAIL_TYPES.items()}


def body_of(sample: str) -> dict[str, Any]:
    return json.loads(load_event(sample)["Records"][0]["body"])  # type: ignore[no-any-return]


def raw(event: dict[str, Any]) -> dict[str, Any]:
    return event


def sns(event: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(event)}


def eventbridge(event: dict[str, Any]) -> dict[str, Any]:
    """As EventBridge puts it on the queue (the shape of events/ses_bounce_eventbridge.json)."""
    return {
        "version": "0",
        "id": "5e2f6a1c-8b7d-4c3e-9f10-2a3b4c5d6e70",
        "detail-type": DETAIL_TYPE[event["eventType"]],
        "source": "aws.ses",
        "account": "123456789012",
        "time": "2026-11-23T09:00:01Z",
        "region": "us-east-1",
        "resources": [],
        "detail": event,
    }


ENVELOPES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "raw": raw,
    "sns": sns,
    "eventbridge": eventbridge,
}


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_every_envelope_of_an_ses_event_gives_the_same_report(sample: str, envelope: str) -> None:
    # Given an SES event sample, as SES publishes it
    event = body_of(sample)
    # When it arrives in one of the envelopes (over JSON, as the queue carries it)
    body = json.loads(json.dumps(ENVELOPES[envelope](event)))
    unwrapped = ses_events.unwrap(body)
    # Then the event inside is the SES event itself, and its report is the raw event's
    assert unwrapped == event
    assert ses_events.to_report(unwrapped) == ses_events.to_report(event)


def test_the_eventbridge_sample_is_the_bounce_sample_in_eventbridges_envelope() -> None:
    # Given the canonical EventBridge record of events/
    body = json.loads(load_event("ses_bounce_eventbridge.json")["Records"][0]["body"])
    # Then it carries the raw bounce sample as its detail, under SES's source and detail-type
    assert (body["source"], body["detail-type"]) == ("aws.ses", "Email Bounced")
    assert body["detail"] == body_of("ses_bounce_permanent.json")
    # And it reports the permanent bounce, its recipient and the diagnostic
    report = ses_events.to_report(ses_events.unwrap(body))
    assert report is not None
    assert report.outcome == ReportOutcome.BOUNCED
    assert (report.recipient, report.detail) == ("user@example.com", "smtp; 550 5.1.1 user unknown")
    assert report.message_id == "msg_00000000000000000000000000000000"


def test_a_detail_without_its_event_type_takes_it_from_the_detail_type() -> None:
    # Given an EventBridge delivery event whose detail lacks eventType
    event = body_of("ses_delivery.json")
    body = eventbridge(event)
    del body["detail"]["eventType"]
    # When it is unwrapped
    report = ses_events.to_report(ses_events.unwrap(body))
    # Then the detail-type names it
    assert report is not None and report.outcome == ReportOutcome.DELIVERED


@pytest.mark.parametrize("detail", [None, "text", ["a"], 3])
def test_an_eventbridge_event_without_an_object_detail_has_no_report(detail: Any) -> None:
    # Given SES's envelope around something that is not an event object
    body = {"source": "aws.ses", "detail-type": "Email Delivered", "detail": detail}
    # Then it unwraps to nothing and reports nothing (the function skips it, nothing raises)
    assert ses_events.unwrap(body) == {}
    assert ses_events.to_report(ses_events.unwrap(body)) is None


def test_another_services_event_is_not_taken_for_an_ses_one() -> None:
    # Given an EventBridge event of another source carrying an SES-like detail
    body = {**eventbridge(body_of("ses_delivery.json")), "source": "aws.other"}
    # Then it is not unwrapped: its own top level has no SES event type
    assert ses_events.unwrap(body) is body
    assert ses_events.to_report(body) is None


def test_the_rule_pattern_selects_one_configuration_sets_events_of_the_given_types() -> None:
    # Given the event types the events function acts on
    pattern = ses_events.event_pattern("mailsage-prod", ["Delivery", "Bounce", "Rendering Failure"])
    # Then the rule matches SES's source, their detail-types and the configuration set SES tags
    assert pattern == {
        "source": ["aws.ses"],
        "detail-type": ["Email Delivered", "Email Bounced", "Email Rendering Failed"],
        "detail": {"mail": {"tags": {"ses:configuration-set": ["mailsage-prod"]}}},
    }


def test_every_ses_event_type_has_one_detail_type() -> None:
    # Each eventType the adapter reports has exactly one detail-type on the bus, and back
    assert sorted(ses_events.DETAIL_TYPES.values()) == sorted(ses_events._OUTCOMES)
