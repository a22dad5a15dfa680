"""The cost figure's SES events path through EventBridge (bench/cost_runs.py, bench/prices.py): what
the bench puts on the events queue is what the rule delivers and the events function reads, and
the events themselves cost nothing while an SNS destination would cost a publish each."""

from __future__ import annotations

import json

import pytest

from bench import cost_runs, prices
from mailsage.adapters.aws import ses_events
from tests.unit.test_cost_meter import a_run

SENT = {"ses_message_id": "ses-1", "to": "a@example.com", "tags": {"message_id": "m1", "job_id": "j1"}}


def test_the_bench_queues_each_delivery_in_eventbridges_envelope_as_the_function_reads_it() -> None:
    # Given one accepted send's Delivery event, as the bench queues it
    body = json.loads(json.dumps(cost_runs.eventbridge_event(cost_runs.delivery_notification(SENT))))
    # Then it is SES's event on the default bus, of a type the stack's rule matches
    pattern = ses_events.event_pattern("any", ["Delivery"])
    assert (body["source"], body["detail-type"]) == ("aws.ses", pattern["detail-type"][0])
    # And the events function's unwrapping gives the send's own report
    report = ses_events.to_report(ses_events.unwrap(body))
    assert report is not None
    assert (report.message_id, report.recipient) == ("m1", "a@example.com")


def test_ses_events_on_the_default_bus_cost_nothing_and_an_sns_destination_a_publish_each() -> None:
    # Given 1,000 emails whose 1,000 SES events reached the events queue (1,000 SQS requests)
    run = a_run(ses_events=1000, sqs_requests=1000)
    # When the run is priced
    lines = prices.price(run, 1000)
    # Then the events path costs its SQS requests only, and no SNS line is left
    assert lines["eventbridge"] == 0.0
    assert "sns" not in lines
    assert lines["sqs"] == pytest.approx(1000 * 0.40e-6)
    # And the SNS destination, as an alternative, adds $0.50 per million events
    total = sum(lines.values())
    assert prices.alternatives(run, 1000)["sns_destination"] - total == pytest.approx(1000 * 0.50e-6)
