"""The cost figure prices what a default deploy costs (SES events through the SNS topic, a publish
each) and the EventBridge destination as an alternative (bench/prices.py, bench/cost.py): the same
SQS requests, no publish."""

from __future__ import annotations

import pytest

from bench import cost, prices
from tests.unit.test_cost_meter import a_run


def test_the_default_figure_prices_a_publish_per_ses_event() -> None:
    # Given 1,000 emails whose 1,000 SES events reached the events queue (1,000 SQS requests)
    run = a_run(sns_publishes=1000, sqs_requests=1000)
    # When the run is priced
    lines = prices.price(run, 1000)
    # Then the events path costs its publishes and its SQS requests, and nothing on EventBridge
    assert lines["sns"] == pytest.approx(1000 * 0.50e-6)
    assert lines["sqs"] == pytest.approx(1000 * 0.40e-6)
    assert "eventbridge" not in lines


def test_the_eventbridge_destination_saves_the_publishes_and_nothing_else() -> None:
    # Given the same run, with other lines of its own
    run = a_run(sns_publishes=1000, sqs_requests=1000, api_requests=1000, invocations={"api": 1000})
    total = sum(prices.price(run, 1000).values())
    # When the EventBridge destination is priced as an alternative
    other = prices.alternatives(run, 1000)["eventbridge_destination"]
    # Then it is the total less $0.50 per million events: 0.50 points of SES's $0.10 per 1,000
    assert total - other == pytest.approx(1000 * 0.50e-6)
    assert 100 * (total - other) / prices.SES_PER_1000 == pytest.approx(0.50)


def test_the_figures_note_shows_the_eventbridge_destination() -> None:
    # Given a figure's details, as bench/cost.py builds them
    run = a_run(sns_publishes=1000, sqs_requests=1000)
    details = cost._breakdown(run, 1000)
    # When its note is written
    note = cost._top(details)
    # Then it names the EventBridge destination's total in % of SES
    expected = details["alternatives_pct_of_ses"]["eventbridge_destination"]
    assert f"EventBridge destination: {expected:.2f}%" in note
    assert expected == pytest.approx(details["usd_per_1000_total"] * 1000 - 0.50, abs=1e-9)
