"""Sending within the provider's limits, as deployed: the transactional lane's queue and event
source, who may enqueue chunks to which lane, the sender's quota read and its pacer state, and the
alarms on throttles, parked jobs and waiting transactional mail."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.config import ConfigError, MailSageConfig
from infra.constructs.monitoring import PRIORITY_MAX_AGE_SECONDS, THROTTLE_PERIODS, THROTTLES_PER_PERIOD
from mailsage.adapters.aws.metrics import NAMESPACE
from tests.infra.conftest import CONFIGURED, Synthesized, cdk_json_context
from tests.infra.test_stack import (
    as_list,
    environment,
    function_ids,
    function_statements,
    statements_with,
)

PRODUCERS = ("api", "ingest", "sender")  # every function that enqueues chunks


def lane_ids(s: Synthesized) -> tuple[str, str]:
    """(send queue, priority queue) logical ids, as the sender's environment names them."""
    env = environment(s, "sender")
    return env["MAILSAGE_SEND_QUEUE_URL"]["Ref"], env["MAILSAGE_PRIORITY_QUEUE_URL"]["Ref"]


def mapping_of(s: Synthesized, queue_id: str) -> dict[str, Any]:
    (mapping,) = [
        m["Properties"]
        for m in s.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    return mapping


def alarm_on(s: Synthesized, metric_name: str, namespace: str) -> dict[str, Any]:
    """The alarm on that metric (of the priority lane, for a queue metric: both lanes have one)."""
    _, priority_id = lane_ids(s)
    (alarm,) = [
        a["Properties"]
        for a in s.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == metric_name
        and a["Properties"]["Namespace"] == namespace
        and (namespace != "AWS/SQS" or priority_id in json.dumps(a["Properties"]["Dimensions"]))
    ]
    return alarm


# --- the transactional lane --------------------------------------------------------------------


def test_the_priority_queue_is_built_like_the_send_queue_with_its_own_dead_letters(
    synthesized: Synthesized,
) -> None:
    # Given the two lanes' queues
    resources = synthesized.data["Resources"]
    send_id, priority_id = lane_ids(synthesized)
    send, priority = resources[send_id]["Properties"], resources[priority_id]["Properties"]
    # Then the priority queue keeps, hides and encrypts messages as the send queue does
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled"):
        assert priority[key] == send[key], key
    # And it redrives after as many receives, to a dead-letter queue of its own
    assert priority["RedrivePolicy"]["maxReceiveCount"] == send["RedrivePolicy"]["maxReceiveCount"]
    priority_dlq = priority["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert priority_dlq != send["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert resources[priority_dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


@pytest.mark.parametrize(("fixture", "expected"), [("synthesized", 2), ("configured", 4)])
def test_the_sender_consumes_the_priority_queue_with_its_own_concurrency(
    fixture: str, expected: int, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(fixture)
    # Given the event source of each lane
    send_id, priority_id = lane_ids(s)
    priority, send = mapping_of(s, priority_id), mapping_of(s, send_id)
    # Then the sender consumes the priority lane, reporting item failures, with its own maximum
    # concurrency (cdk.json's default, or the context's), beside the bulk lane's
    assert priority["FunctionName"] == {"Ref": function_ids(s)["sender"]}
    assert priority["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert priority["ScalingConfig"]["MaximumConcurrency"] == expected
    assert send["ScalingConfig"]["MaximumConcurrency"] != expected
    assert cdk_json_context()["sender_priority_concurrency"] == 2


def test_producers_know_the_priority_queue_and_may_send_to_both_lanes(synthesized: Synthesized) -> None:
    send_id, priority_id = lane_ids(synthesized)
    lanes = [{"Fn::GetAtt": [send_id, "Arn"]}, {"Fn::GetAtt": [priority_id, "Arn"]}]
    for name in PRODUCERS:
        # Given a function that enqueues chunks: it is told both lanes' URLs
        env = environment(synthesized, name)
        assert env["MAILSAGE_PRIORITY_QUEUE_URL"] == {"Ref": priority_id}, name
        assert env["MAILSAGE_SEND_QUEUE_URL"] == {"Ref": send_id}, name
        # And it may send to each
        statements = statements_with(function_statements(synthesized, name), "sqs:SendMessage")
        granted = [r for st in statements if st["Effect"] == "Allow" for r in as_list(st["Resource"])]
        for lane in lanes:
            assert lane in granted, (name, lane)
    for name in ("events", "webhooks"):
        assert "MAILSAGE_PRIORITY_QUEUE_URL" not in environment(synthesized, name), name


# --- the quota and the pacer's state -----------------------------------------------------------


def test_only_the_sender_reads_the_ses_quota(synthesized: Synthesized) -> None:
    # Given the sender's policy: GetAccount on "*" (the action has no resource type)
    (statement,) = statements_with(function_statements(synthesized, "sender"), "ses:GetAccount")
    assert statement["Effect"] == "Allow" and statement["Resource"] == "*"
    # Then no other function may read it
    for name in ("api", "ingest", "events", "webhooks"):
        assert not statements_with(function_statements(synthesized, name), "ses:GetAccount"), name


def test_ses_max_rate_reaches_the_sender_only_when_set(
    synthesized: Synthesized, configured: Synthesized
) -> None:
    assert "MAILSAGE_SES_MAX_RATE" not in environment(synthesized, "sender")
    assert (
        environment(configured, "sender")["MAILSAGE_SES_MAX_RATE"]
        == "12.5"
        == f"{CONFIGURED['ses_max_rate']}"
    )
    for name in ("api", "ingest", "events", "webhooks"):
        assert "MAILSAGE_SES_MAX_RATE" not in environment(configured, name), name


def test_the_pacer_state_is_covered_by_the_senders_table_grant(synthesized: Synthesized) -> None:
    # The pacer's state is items of the main table, read consistently and changed by conditional
    # Put/UpdateItem: the sender's grant on the table covers it, and nothing else is needed.
    (table_id,) = synthesized.resources("AWS::DynamoDB::Table")
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    assert environment(synthesized, "sender")["MAILSAGE_TABLE_NAME"] == {"Ref": table_id}
    statements = function_statements(synthesized, "sender")
    for action in (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    ):
        resources = [r for st in statements_with(statements, action) for r in as_list(st["Resource"])]
        assert table_arn in resources, action


# --- alarms ------------------------------------------------------------------------------------


def test_persisting_provider_throttles_alarm(synthesized: Synthesized) -> None:
    alarm = alarm_on(synthesized, "Throttles", NAMESPACE)
    assert NAMESPACE == "MailSage"
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == THROTTLES_PER_PERIOD > 0
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == THROTTLE_PERIODS == 3
    assert alarm["TreatMissingData"] == "notBreaching"


def test_a_parked_job_alarms(synthesized: Synthesized) -> None:
    alarm = alarm_on(synthesized, "JobsParked", NAMESPACE)
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"


def test_sender_metric_alarms_watch_this_stages_sender_by_the_dimensions_it_publishes(
    synthesized: Synthesized,
) -> None:
    # Given the dimensions PowertoolsMeter publishes (service, function_name: see
    # tests/integration/test_sender_metrics_aws.py), the alarms select this stack's sender by them
    sender = function_ids(synthesized)["sender"]
    for metric in ("Throttles", "JobsParked"):
        dimensions = {d["Name"]: d["Value"] for d in alarm_on(synthesized, metric, NAMESPACE)["Dimensions"]}
        assert dimensions == {"service": "mailsage-sender", "function_name": {"Ref": sender}}, metric


def test_transactional_mail_waiting_over_a_minute_alarms(synthesized: Synthesized) -> None:
    _, priority_id = lane_ids(synthesized)
    alarm = alarm_on(synthesized, "ApproximateAgeOfOldestMessage", "AWS/SQS")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [priority_id, "QueueName"]}}]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == PRIORITY_MAX_AGE_SECONDS == 60


def test_the_new_alarms_are_per_stage(synthesized: Synthesized, configured: Synthesized) -> None:
    # Given two stages: each alarm is named after its stack, and selects its own stack's resources
    for s in (synthesized, configured):
        for metric, namespace in (
            ("Throttles", NAMESPACE),
            ("JobsParked", NAMESPACE),
            ("ApproximateAgeOfOldestMessage", "AWS/SQS"),
        ):
            alarm = alarm_on(s, metric, namespace)
            assert alarm["AlarmName"].startswith(f"{s.stack.stack_name}-")
            assert any(isinstance(d["Value"], dict) for d in alarm["Dimensions"]), metric
            assert alarm["AlarmActions"], metric


# --- configuration -----------------------------------------------------------------------------


def test_limits_context_parses_command_line_strings() -> None:
    config = MailSageConfig.from_context({"sender_priority_concurrency": "3", "ses_max_rate": "7.5"}.get)
    assert (config.sender_priority_concurrency, config.ses_max_rate) == (3, 7.5)
    assert MailSageConfig.from_context({"ses_max_rate": 14}.get).ses_max_rate == 14.0


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"sender_priority_concurrency": 1}, "between 2 and 1000"),
        ({"ses_max_rate": "fast"}, "number of messages per second"),
        ({"ses_max_rate": 0}, "above 0"),
        ({"ses_max_rate": "nan"}, "above 0"),
        ({"ses_max_rate": True}, "number of messages per second"),
    ],
)
def test_bad_limits_context_fails_with_a_clear_error(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        MailSageConfig.from_context(context.get)
