"""The cost figure's arithmetic (bench/cost_meter.py, bench/prices.py, bench/cost_runs.py): item
sizes, sampling, batching, pricing lines, the fixed monthly cost and the break-even volume."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import cost_runs, prices
from bench.cost_meter import _CountingStream, item_size


def a_run(**overrides: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "wru": 0.0,
        "rru": 0.0,
        "stored_bytes": 0,
        "sqs_requests": 0,
        "sns_publishes": 0,
        "invocations": {},
        "cpu_s": {},
        "io_wait_s": {},
        "paced_wait_s": 0.0,
        "api_requests": 0,
        "log_bytes": {},
        "traces": 0.0,
    }
    return {**run, **overrides}


def test_item_size_counts_names_and_values_as_the_developer_guide_does() -> None:
    # Given an item with a string, a number, a list and a map
    item = {
        "pk": {"S": "JOB#1"},  # 2 + 5
        "n": {"N": "12345"},  # 1 + ceil(5/2)+1 = 1 + 4
        "l": {"L": [{"S": "ab"}, {"BOOL": True}]},  # 1 + 3 + (1+2) + (1+1)
        "m": {"M": {"k": {"S": "v"}}},  # 1 + 3 + 1 + 1 + 1
    }
    # When it is sized
    # Then each attribute is its name's bytes plus its value's
    assert item_size(item) == 7 + 5 + 9 + 7


def test_traced_fraction_is_all_within_the_reservoir_and_tends_to_five_percent() -> None:
    # Given the default sampling rule (1 request/s, then 5%)
    # Then below 1/s every root is traced, at 3/s one plus 5% of two, and far above about 5%
    assert prices.traced_fraction(0.5) == 1.0
    assert prices.traced_fraction(3.0) == pytest.approx((1 + 0.1) / 3)
    assert prices.traced_fraction(10_000) == pytest.approx(0.05, abs=0.001)


@pytest.mark.parametrize(
    ("rate", "window", "expected"),
    [(14.0, 0.0, 1), (14.0, 10.0, 10), (0.3, 10.0, 3), (0.01, 10.0, 1), (1.0, 300.0, 10)],
)
def test_events_per_invocation_fills_the_window_up_to_the_batch_size(
    rate: float, window: float, expected: int
) -> None:
    assert cost_runs.events_per_invocation(rate, window) == expected


def test_price_is_per_thousand_emails_and_books_each_line_apart() -> None:
    # Given a run of 500 emails with 1,000 write units, 200 SQS requests and one api request
    run = a_run(wru=1000.0, sqs_requests=200, api_requests=1, invocations={"api": 1})
    # When priced
    lines = prices.price(run, 500)
    # Then each line is scaled to 1,000 emails
    assert lines["dynamodb_writes"] == pytest.approx(2 * 1000 * 0.625e-6)
    assert lines["sqs"] == pytest.approx(2 * 200 * 0.40e-6)
    assert lines["api_gateway_rest"] == pytest.approx(2 * 3.50e-6)
    assert lines["lambda_requests"] == pytest.approx(2 * 0.20e-6)


def test_logs_count_measured_bytes_plus_platform_emf_and_access_lines() -> None:
    # Given two invocations (one of them the api's) that logged 1,000 bytes between them
    run = a_run(invocations={"api": 1, "sender": 1}, api_requests=1, log_bytes={"api": 400, "sender": 600})
    # Then the logged bytes add the lines Lambda, Powertools metrics and API Gateway write
    expected = 1000 + 2 * (prices.PLATFORM_LOG_BYTES + prices.EMF_LOG_BYTES) + prices.ACCESS_LOG_BYTES
    assert prices.log_bytes(run) == expected


def test_waiting_is_paid_at_the_functions_memory_and_cpu_at_one_vcpu() -> None:
    # Given one CPU-second in the sender and one second of waiting in the events function (512 MB)
    gb_s = prices.lambda_gb_seconds({"sender": 1.0}, {"events": 1.0})
    # Then CPU is a full vCPU's GB-s, the wait half a GB-s
    assert gb_s == pytest.approx(1769 / 1024 + 0.5)


def test_paced_wait_is_what_the_quota_takes_beyond_the_senders_own_work() -> None:
    assert prices.paced_wait(1400, busy_s=40.0, rate=14.0) == pytest.approx(60.0)
    assert prices.paced_wait(1400, busy_s=200.0, rate=14.0) == 0.0


def test_http_api_saving_is_the_price_difference_per_request() -> None:
    run = a_run(api_requests=1000)
    assert prices.http_api_saving(run, 1000) == pytest.approx(1000 * 2.50e-6)


def test_fixed_monthly_prices_each_counted_resource_and_idle_polling() -> None:
    # Given a template with 10 alarm metrics, a dashboard, a secret, no key, 5 event sources
    counts = {
        "alarm_metrics": 10,
        "dashboards": 1,
        "secrets": 1,
        "kms_keys": 0,
        "event_source_mappings": 5,
        "custom_metrics": 0,
        "recurring_schedules": 0,
    }
    # When priced
    lines = prices.fixed_monthly(counts)
    # Then: $1 of alarms, $3 of dashboard, $0.40 of secret, and 5 x 5 pollers x 3/min a month of SQS
    assert lines["alarms"] == pytest.approx(1.0)
    assert lines["dashboard"] == pytest.approx(3.0)
    assert lines["secrets"] == pytest.approx(0.4)
    assert lines["sqs_idle_polling"] == pytest.approx(5 * 5 * 3 * 60 * 24 * 30 * 0.40e-6)
    assert lines["kms_keys"] == lines["scheduler"] == 0


def test_break_even_is_where_fixed_equals_the_variable_cost() -> None:
    # $5 a month against $0.005 per 1,000 emails: a million emails a month
    assert prices.break_even(5.0, 0.005) == 1_000_000


def test_counting_stream_keeps_sizes_by_function_and_emf_lines_apart() -> None:
    stream = _CountingStream()
    stream.function = "events"
    stream.write("héllo\n")
    stream.write(json.dumps({"_aws": {}}) + "\n")
    assert stream.bytes == {"events": 7}
    assert len(stream.emf) == 1


def test_a_delivery_notification_names_the_send_it_reports() -> None:
    # Given one accepted send
    sent = {"ses_message_id": "ses-1", "to": "a@example.com", "tags": {"message_id": "m1", "job_id": "j1"}}
    # When its notification is built
    body = cost_runs.delivery_notification(sent)
    # Then SES's Delivery event carries its ids, recipient and tags, as the events function reads them
    from mailsage.adapters.aws import ses_events

    report = ses_events.to_report(body)
    assert report is not None
    assert (report.message_id, report.recipient, body["mail"]["messageId"]) == (
        "m1",
        "a@example.com",
        "ses-1",
    )


def test_each_alternative_changes_only_its_own_line() -> None:
    # Given a run of 1,000 emails: 1,000 api requests, 500 traces, 100 s of sender waiting
    run = a_run(api_requests=1000, traces=500.0, io_wait_s={"sender": 100.0}, invocations={"api": 1000})
    total = sum(prices.price(run, 1000).values())
    # When the alternatives are priced
    other = prices.alternatives(run, 1000)
    # Then each removes exactly its line's difference
    assert total - other["http_api"] == pytest.approx(1000 * 2.50e-6)
    # (the deployed rule traces 1% of the 1,000 requests; Lambda's default rule gave the run's 500)
    assert other["xray_lambda_default"] - total == pytest.approx((500 - 10) * 5.00e-6)
    # (the sender waits at 512 MB: at 1,024 MB the same 100 s cost another 0.5 GB-s each)
    assert other["sender_1024mb"] - total == pytest.approx(100 * 0.5 * 0.0000133334)


def test_the_deployed_sampling_traces_a_share_of_api_requests_only() -> None:
    # Given 1,000 api requests, 1,000 sender and 100 events invocations
    run = a_run(api_requests=1000, invocations={"api": 1000, "sender": 1000, "events": 100}, traces=1100.0)
    # When X-Ray is priced at the deployed rule (cdk.json's trace_sample_rate)
    lines = prices.price(run, 1000)
    # Then only the sampled api requests are traces: the functions follow, SES events are untraced
    assert prices.sampled_traces(run) == pytest.approx(1000 * prices.TRACE_SAMPLE_RATE)
    assert lines["xray"] == pytest.approx(1000 * prices.TRACE_SAMPLE_RATE * 5.00e-6)
