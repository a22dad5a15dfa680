"""The alarms and the dashboard, as synthesized: every alarm's metric, statistic, threshold and
dimensions (or expression), names and dimensions that differ between two stages, and a dashboard
that shows every business metric of the stage's own functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constructs import alarms as limits
from infra.constructs.metrics import BUSINESS_METRICS, CONFIGURATION_SET_DIMENSION, METRICS_NAMESPACE
from mailsage.adapters.aws.metrics import NAMESPACE
from tests.infra.conftest import Synthesized
from tests.infra.test_stack import all_policy_statements, as_list, environment, function_ids, queue_ids

FUNCTIONS = ("api", "sender", "ingest", "events", "webhooks")
# name (after "<stack name>-") -> how many metrics CloudWatch bills it for
EXPECTED_ALARMS = {
    **{f"{q}DeadLetters": 1 for q in ("Send", "Priority", "Ingest", "Events", "Webhooks", "Schedule")},
    **{f"{f.capitalize()}FailureRate": 3 for f in FUNCTIONS},
    "SenderProviderThrottles": 1,
    "SenderJobsParked": 1,
    "PriorityQueueAge": 1,
    "SendQueueAge": 1,
    "Api5xxRate": 1,
    "ApiLatencyP90": 1,
    "TableThrottles": 2,
    "SesBounceRate": 1,
    "SesComplaintRate": 1,
}


def alarms(s: Synthesized) -> dict[str, dict[str, Any]]:
    """The alarms by name, without the stack-name prefix."""
    prefix = f"{s.stack.stack_name}-"
    named = {
        a["Properties"]["AlarmName"]: a["Properties"] for a in s.resources("AWS::CloudWatch::Alarm").values()
    }
    assert all(name.startswith(prefix) for name in named), sorted(named)
    return {name.removeprefix(prefix): props for name, props in named.items()}


def dimensions(props: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}


def math_metrics(alarm: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """(expression, {id: MetricStat}) of a metric-math alarm."""
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    return expression, {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}


def resource_id(s: Synthesized, type_: str, prefix: str = "") -> str:
    (logical_id,) = [k for k in s.resources(type_) if k.startswith(prefix)]
    return logical_id


def metric_sets(s: Synthesized) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of every metric every alarm reads."""
    found = []
    for alarm in alarms(s).values():
        if "MetricName" in alarm:
            found.append((alarm["Namespace"], alarm["MetricName"], dimensions(alarm)))
        else:
            for stat in math_metrics(alarm)[1].values():
                metric = stat["Metric"]
                found.append((metric["Namespace"], metric["MetricName"], dimensions(metric)))
    return found


# --- the set of alarms and what they have in common ----------------------------------------------


def test_the_alarms_are_these_named_after_the_stack_each_notifying_the_topic(
    synthesized: Synthesized,
) -> None:
    found = alarms(synthesized)
    assert set(found) == set(EXPECTED_ALARMS)
    topic = resource_id(synthesized, "AWS::SNS::Topic", "MonitoringAlarmTopic")
    billed = {}
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
        # No traffic is no failure, and SES publishes no rate before the first bounce
        assert alarm["TreatMissingData"] == "notBreaching", name
        billed[name] = 1 if "MetricName" in alarm else len(math_metrics(alarm)[1])
    assert billed == EXPECTED_ALARMS
    # The fixed cost the notes state: $0.10 a month per metric an alarm reads, 31 metrics in 20 alarms
    assert (len(billed), sum(billed.values())) == (20, 31)


# --- each alarm ----------------------------------------------------------------------------------


def test_ses_reputation_alarms_watch_this_stages_configuration_set_below_the_review_thresholds(
    synthesized: Synthesized,
) -> None:
    configuration_set = resource_id(synthesized, "AWS::SES::ConfigurationSet")
    # SES publishes a configuration set's rates only with reputation metrics on
    (config_set,) = synthesized.resources("AWS::SES::ConfigurationSet").values()
    assert config_set["Properties"]["ReputationOptions"] == {"ReputationMetricsEnabled": True}
    found = alarms(synthesized)
    for name, metric, threshold, review in (
        ("SesBounceRate", "Reputation.BounceRate", limits.BOUNCE_RATE, 0.05),
        ("SesComplaintRate", "Reputation.ComplaintRate", limits.COMPLAINT_RATE, 0.001),
    ):
        alarm = found[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SES", metric)
        assert dimensions(alarm) == {CONFIGURATION_SET_DIMENSION: {"Ref": configuration_set}}
        assert alarm["Statistic"] == "Maximum" and alarm["Period"] == 3600
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == threshold < review
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 1
    assert (limits.BOUNCE_RATE, limits.COMPLAINT_RATE) == (0.02, 0.0005)


def test_both_lanes_alarm_on_their_oldest_chunk(synthesized: Synthesized) -> None:
    env = synthesized.resources("AWS::Lambda::Function")[function_ids(synthesized)["sender"]]
    variables = env["Properties"]["Environment"]["Variables"]
    found = alarms(synthesized)
    for name, variable, threshold in (
        ("SendQueueAge", "MAILSAGE_SEND_QUEUE_URL", 6 * 3600),
        ("PriorityQueueAge", "MAILSAGE_PRIORITY_QUEUE_URL", 60),
    ):
        alarm = found[name]
        queue = variables[variable]["Ref"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
        assert dimensions(alarm) == {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}
        assert alarm["Statistic"] == "Maximum" and alarm["Period"] == 300
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == threshold
    # The bulk lane's limit leaves days before SQS would delete a chunk unsent (4 days' retention)
    send = synthesized.data["Resources"][variables["MAILSAGE_SEND_QUEUE_URL"]["Ref"]]
    assert send["Properties"]["MessageRetentionPeriod"] >= limits.SEND_MAX_AGE_SECONDS * 8


def api_dimensions(s: Synthesized) -> dict[str, Any]:
    (api,) = s.resources("AWS::ApiGateway::RestApi").values()
    return {"ApiName": api["Properties"]["Name"], "Stage": {"Ref": resource_id(s, "AWS::ApiGateway::Stage")}}


def test_api_5xx_alarm_is_a_rate_of_this_stages_api(synthesized: Synthesized) -> None:
    alarm = alarms(synthesized)["Api5xxRate"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    # 5XXError is 0 or 1 per request: its Average is the share of requests that got a 5XX
    assert alarm["Statistic"] == "Average" and alarm["Period"] == 300
    assert dimensions(alarm) == api_dimensions(synthesized)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0.01
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)


def test_api_p90_latency_alarm_skips_periods_too_quiet_for_a_percentile(synthesized: Synthesized) -> None:
    alarm = alarms(synthesized)["ApiLatencyP90"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert alarm["ExtendedStatistic"] == "p90" and "Statistic" not in alarm
    assert dimensions(alarm) == api_dimensions(synthesized)
    assert alarm["Threshold"] == 1000 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3
    assert alarm["EvaluateLowSampleCountPercentile"] == "ignore"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_function_alarms_on_its_failure_rate(synthesized: Synthesized, name: str) -> None:
    alarm = alarms(synthesized)[f"{name.capitalize()}FailureRate"]
    expression, metrics = math_metrics(alarm)
    assert expression == "(errors + FILL(throttles, 0)) / (invocations + FILL(throttles, 0))"
    function = function_ids(synthesized)[name]
    for metric_id, metric_name in (
        ("errors", "Errors"),
        ("throttles", "Throttles"),
        ("invocations", "Invocations"),
    ):
        stat = metrics[metric_id]
        assert stat["Metric"]["Namespace"] == "AWS/Lambda" and stat["Metric"]["MetricName"] == metric_name
        assert dimensions(stat["Metric"]) == {"FunctionName": {"Ref": function}}
        assert stat["Stat"] == "Sum" and stat["Period"] == 300
    assert alarm["Threshold"] == 0.01 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)


def test_table_throttles_alarm_when_they_persist(synthesized: Synthesized) -> None:
    alarm = alarms(synthesized)["TableThrottles"]
    expression, metrics = math_metrics(alarm)
    assert expression == "FILL(reads, 0) + FILL(writes, 0)"
    table = resource_id(synthesized, "AWS::DynamoDB::Table")
    for metric_id, metric_name in (("reads", "ReadThrottleEvents"), ("writes", "WriteThrottleEvents")):
        stat = metrics[metric_id]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"]) == ("AWS/DynamoDB", metric_name)
        assert dimensions(stat["Metric"]) == {"TableName": {"Ref": table}}
        assert stat["Stat"] == "Sum" and stat["Period"] == 300
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3


def test_dead_letter_alarms_fire_on_one_message(synthesized: Synthesized) -> None:
    _, dead = queue_ids(synthesized)
    found = alarms(synthesized)
    watched = set()
    for name in (n for n in EXPECTED_ALARMS if n.endswith("DeadLetters")):
        alarm = found[name]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Statistic"] == "Maximum"
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        watched.add(dimensions(alarm)["QueueName"]["Fn::GetAtt"][0])
    scheduler_dlq = resource_id(synthesized, "AWS::SQS::Queue", "SchedulingDeadLetters")
    assert watched == set(dead) | {scheduler_dlq}


# --- two stages ----------------------------------------------------------------------------------


def identity(s: Synthesized, value: Any) -> Any:
    """A dimension value as deployed: a reference to this stack's own resource (whose physical name
    CloudFormation derives from the stack name) or to the stack's name is this stack's."""
    if isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
        assert "AWS::StackName" in text or any(f'"{k}"' in text for k in s.data["Resources"]), value
        return (s.stack.stack_name, text)
    return value


def test_two_stages_share_no_alarm_name_and_no_watched_metric(
    synthesized: Synthesized, configured: Synthesized
) -> None:
    assert synthesized.stack.stack_name != configured.stack.stack_name
    dev, prod = alarms(synthesized), alarms(configured)
    assert set(dev) == set(prod)  # the same alarms...
    names = [a["AlarmName"] for s in (dev, prod) for a in s.values()]
    assert len(names) == len(set(names))  # ...under names of their own

    def watched(s: Synthesized) -> set[tuple[Any, ...]]:
        found = set()
        for namespace, metric, dims in metric_sets(s):
            deployed = tuple(sorted((k, identity(s, v)) for k, v in dims.items()))
            # Every metric is selected by something of this stage: a resource of its stack, or the
            # API's stage
            assert any(isinstance(v, tuple) for _, v in deployed), (metric, dims)
            found.add((namespace, metric, deployed))
        return found

    assert watched(synthesized).isdisjoint(watched(configured))


# --- the dashboard -------------------------------------------------------------------------------


def dashboard_body(s: Synthesized) -> dict[str, Any]:
    """The dashboard's JSON, each reference in it written as `<logical id>`."""
    (dashboard,) = s.resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else f"<{p.get('Ref') or p['Fn::GetAtt'][0]}>" for p in parts)
    return dict(json.loads(text))


def dashboard_metrics(s: Synthesized) -> list[list[Any]]:
    return [
        m
        for widget in dashboard_body(s)["widgets"]
        for m in widget.get("properties", {}).get("metrics", [])
        if isinstance(m[0], str)
    ]


def metric_dimensions(metric: list[Any]) -> dict[str, Any]:
    """[namespace, name, dimension, value, ..., {options}] -> {dimension: value}"""
    pairs = [v for v in metric[2:] if not isinstance(v, dict)]
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


def test_the_dashboard_shows_every_business_metric_of_every_function(synthesized: Synthesized) -> None:
    assert METRICS_NAMESPACE == NAMESPACE == "MailSage"
    # The service each function's Powertools publishes under: the one its environment names
    service_of = {
        f"<{logical_id}>": environment(synthesized, name)["POWERTOOLS_SERVICE_NAME"]
        for name, logical_id in function_ids(synthesized).items()
    }
    shown: dict[str, set[str]] = {}
    for metric in dashboard_metrics(synthesized):
        if metric[0] == METRICS_NAMESPACE:
            # Selected by the dimensions each function's meter publishes
            dims = metric_dimensions(metric)
            assert set(dims) == {"service", "function_name"}
            assert dims["service"] == service_of[dims["function_name"]], metric
            shown.setdefault(metric[1], set()).add(dims["function_name"])
    assert set(shown) == set(BUSINESS_METRICS)
    for name, where in shown.items():
        assert where == set(service_of), name


def test_the_dashboard_shows_the_api_functions_table_queues_and_reputation(synthesized: Synthesized) -> None:
    shown = {(m[0], m[1]) for m in dashboard_metrics(synthesized)}
    for namespace, name in (
        ("AWS/ApiGateway", "Count"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/SES", "Reputation.BounceRate"),
        ("AWS/SES", "Reputation.ComplaintRate"),
    ):
        assert (namespace, name) in shown, name
    # Every alarm's state is on it
    (status,) = [w for w in dashboard_body(synthesized)["widgets"] if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == len(EXPECTED_ALARMS)


def test_metrics_need_no_permission_of_their_own(synthesized: Synthesized) -> None:
    # EMF metrics are log lines: each function's grant on its own log group publishes them, so no
    # role may call CloudWatch's PutMetricData (which would let a function write any namespace)
    granted = {a for _, st in all_policy_statements(synthesized) for a in as_list(st.get("Action", []))}
    assert not {a for a in granted if a.lower().startswith("cloudwatch:")}
    assert "logs:PutLogEvents" in granted
