"""Where SES's events go, by the context's `ses_event_destination`: an SNS topic by default, or
EventBridge's default bus as an opt-in. On the bus, the stack's rule selects this configuration
set's events of the consumed types and sends them to the events queue, which only that rule may
send to; what EventBridge cannot deliver lands in the events queue's own dead-letter queue. Either
way a template holds one destination, and a switch rewrites the queues' policies only once the new
path is complete. The eventbridge stack is synthesized once, with cdk-nag."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, MailSageConfig
from infra.constructs.ses import EVENTS
from mailsage.adapters.aws import ses_events
from tests.infra.conftest import Synthesized, cdk_json_context
from tests.infra.test_first_deploy import DESTINATION_NAMES, consumed_event_types
from tests.infra.test_logical_ids import PINNED, stateful_ids
from tests.infra.test_nag_and_lint import (
    CFN_LINT,
    EXPECTED_ACKNOWLEDGMENTS,
    LOGICAL_ID,
    synthesize_with_nag,
)
from tests.infra.test_stack import as_list, function_ids

EVENTS_TOPIC = "SesEventsTopic6239202B"  # pinned: tests/infra/test_logical_ids.py


def destination_of(s: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, destination),) = s.resources("AWS::SES::ConfigurationSetEventDestination").items()
    return logical_id, destination


def rule_of(s: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, rule),) = s.resources("AWS::Events::Rule").items()
    return logical_id, rule["Properties"]


def events_queue_id(s: Synthesized) -> str:
    """The queue the events function's event source reads."""
    (arn,) = [
        m["Properties"]["EventSourceArn"]
        for m in s.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_ids(s)["events"]}
    ]
    return str(arn["Fn::GetAtt"][0])


def allows_on(s: Synthesized, queue_id: str) -> list[dict[str, Any]]:
    """Every Allow statement of the queue's resource policies."""
    return [
        st
        for policy in s.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow"
    ]


def dead_letter_queue_id(s: Synthesized, queue_id: str) -> str:
    redrive = s.data["Resources"][queue_id]["Properties"]["RedrivePolicy"]
    return str(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0])


@pytest.fixture(scope="session")
def eventbridge_nagged(build_app: Callable[..., tuple[Any, Any]]) -> tuple[Synthesized, dict[str, str]]:
    """The stack with `ses_event_destination` "eventbridge", synthesized once with cdk-nag (which
    fails on a finding without acknowledgment), and the rules it acknowledged."""
    built: list[tuple[Any, Any]] = []

    def build(overrides: dict[str, Any], *, nag: bool = False) -> tuple[Any, Any]:
        built.append(build_app(overrides, nag=nag))
        return built[-1]

    acknowledged = synthesize_with_nag(build, {"ses_event_destination": "eventbridge"})
    ((app, stack),) = built
    path = Path(app.synth().directory) / stack.template_file  # the assembly synthesized above
    data = json.loads(path.read_text())
    from aws_cdk.assertions import Template

    return Synthesized(stack, Template.from_json(data), data, path), acknowledged


@pytest.fixture
def stack(eventbridge_nagged: tuple[Synthesized, dict[str, str]]) -> Synthesized:
    return eventbridge_nagged[0]


@pytest.fixture(params=["synthesized", "stack"])
def either(request: pytest.FixtureRequest) -> Synthesized:
    """The default (SNS) stack, then the eventbridge one."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


# --- the context key -----------------------------------------------------------------------------


def test_sns_is_the_default_destination() -> None:
    assert cdk_json_context()["ses_event_destination"] == "sns"
    assert MailSageConfig.from_context({}.get).ses_event_destination == "sns"
    assert MailSageConfig.from_context(
        {"ses_event_destination": "EventBridge"}.get
    ).ses_event_destination == ("eventbridge")


@pytest.mark.parametrize("value", ["kinesis", "sns,eventbridge", "both"])
def test_any_other_destination_is_refused_with_one_clear_line(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        MailSageConfig.from_context({"ses_event_destination": value}.get)
    assert str(refused.value) == (
        f"context 'ses_event_destination' must be one of sns, eventbridge (got {value!r})"
    )


# --- the default: an SNS topic -------------------------------------------------------------------


def test_by_default_ses_publishes_to_the_topic_the_events_queue_subscribes_to_and_no_rule_exists(
    synthesized: Synthesized,
) -> None:
    # Given the default stack's one event destination
    _, destination = destination_of(synthesized)
    event_destination = destination["Properties"]["EventDestination"]
    # Then it is the pinned topic, which the events queue subscribes to
    assert event_destination["SnsDestination"] == {"TopicARN": {"Ref": EVENTS_TOPIC}}
    assert "EventBridgeDestination" not in event_destination
    (subscription,) = synthesized.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["TopicArn"] == {"Ref": EVENTS_TOPIC}
    queue_id = events_queue_id(synthesized)
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # And no rule exists, nor may EventBridge send to the events queue or its dead-letter queue
    assert synthesized.resources("AWS::Events::Rule") == {}
    for target_id in (queue_id, dead_letter_queue_id(synthesized, queue_id)):
        assert [a["Principal"] for a in allows_on(synthesized, target_id)] == [
            {"Service": "sns.amazonaws.com"}
        ]


# --- opted in: EventBridge's default bus ---------------------------------------------------------


def test_the_configuration_set_publishes_to_the_default_event_bus_and_nowhere_else(
    stack: Synthesized,
) -> None:
    # Given the configuration set's one event destination
    _, destination = destination_of(stack)
    event_destination = destination["Properties"]["EventDestination"]
    # Then it is EventBridge's default bus of this account and region (SES supports no other bus)
    bus = event_destination["EventBridgeDestination"]["EventBusArn"]["Fn::Join"][1]
    assert bus[0::2] == ["arn:", ":events:", ":", ":event-bus/default"]
    assert bus[1::2] == [{"Ref": "AWS::Partition"}, {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}]
    assert not {"SnsDestination", "KinesisFirehoseDestination", "CloudWatchDestination"} & set(
        event_destination
    )
    # And no SNS topic or subscription is left for SES events (the one topic is the alarms')
    assert [k for k in stack.resources("AWS::SNS::Topic") if not k.startswith("MonitoringAlarmTopic")] == []
    assert stack.resources("AWS::SNS::Subscription") == {}


def test_the_rule_matches_this_configuration_sets_events_of_the_subscribed_types(stack: Synthesized) -> None:
    # Given the destination and the stack's rule
    _, destination = destination_of(stack)
    _, rule = rule_of(stack)
    config_set = destination["Properties"]["ConfigurationSetName"]
    # Then the rule listens on the default bus (no EventBusName) for SES's events of this
    # configuration set only, by the tag SES puts on each of them
    assert "EventBusName" not in rule and rule["State"] == "ENABLED"
    assert rule["EventPattern"] == ses_events.event_pattern(config_set, EVENTS.values())
    assert rule["EventPattern"]["detail"] == {"mail": {"tags": {"ses:configuration-set": [config_set]}}}
    # And its detail-types are exactly the event types the destination subscribes, which are the
    # ones the events function acts on
    matched = {DESTINATION_NAMES[ses_events.DETAIL_TYPES[t]] for t in rule["EventPattern"]["detail-type"]}
    assert len(rule["EventPattern"]["detail-type"]) == len(matched)
    assert matched == set(destination["Properties"]["EventDestination"]["MatchingEventTypes"])
    assert matched == consumed_event_types()


def test_the_rule_sends_to_the_events_queue_and_dead_letters_to_its_dead_letter_queue(
    stack: Synthesized,
) -> None:
    # Given the rule's targets
    _, rule = rule_of(stack)
    (target,) = rule["Targets"]
    queue_id = events_queue_id(stack)
    # Then the one target is the queue the events function reads, with the body as EventBridge
    # sends it (no input transformation: the function reads the envelope)
    assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)
    # And what it cannot deliver goes where the events queue itself dead-letters
    dlq_id = dead_letter_queue_id(stack, queue_id)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}


def test_only_this_rule_may_send_to_the_events_queue_and_its_dead_letter_queue(stack: Synthesized) -> None:
    # Given the rule and the events queue with its dead-letter queue
    rule_id, _ = rule_of(stack)
    queue_id = events_queue_id(stack)
    for target_id in (queue_id, dead_letter_queue_id(stack, queue_id)):
        # Then each resource policy allows EventBridge alone, for this rule alone, to send
        (allow,) = allows_on(stack, target_id)
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert "sqs:SendMessage" in as_list(allow["Action"])
        assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}
        assert allow["Resource"] == {"Fn::GetAtt": [target_id, "Arn"]}


def test_ses_publishes_to_the_bus_only_once_the_rule_exists(stack: Synthesized) -> None:
    # Given the destination (a first deploy, or the switch from SNS, creates it)
    _, destination = destination_of(stack)
    rule_id, _ = rule_of(stack)
    # Then CloudFormation creates it after the rule: no event reaches the bus before a rule takes it
    assert rule_id in destination["DependsOn"]


def test_the_dead_letter_queue_eventbridge_writes_to_has_an_alarm(stack: Synthesized) -> None:
    _, rule = rule_of(stack)
    dlq_id = rule["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    alarmed = [
        a
        for a in stack.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert alarmed


def test_the_eventbridge_stack_keeps_every_pinned_logical_id_but_the_topics(stack: Synthesized) -> None:
    # Switching back to SNS recreates the topic (nothing is stored in it); all else stays in place
    assert stateful_ids(stack) == PINNED - {EVENTS_TOPIC}


def test_the_eventbridge_stack_passes_cdk_nag_with_the_reviewed_acknowledgments(
    eventbridge_nagged: tuple[Synthesized, dict[str, str]],
) -> None:
    _, acknowledged = eventbridge_nagged
    assert {LOGICAL_ID.sub("<…", rule) for rule in acknowledged} == EXPECTED_ACKNOWLEDGMENTS


def test_the_eventbridge_stack_passes_cfn_lint(stack: Synthesized) -> None:
    result = subprocess.run(
        [*CFN_LINT, str(stack.path), "--ignore-checks", "W3005"], capture_output=True, text=True, timeout=120
    )
    # exit code bits: 2 errors, 4 warnings, 8 informational; 1 means cfn-lint itself failed
    assert result.returncode & (1 | 2) == 0, f"{result.stdout}\n{result.stderr}"


# --- a switch from one to the other --------------------------------------------------------------


def test_the_queue_policies_change_only_once_the_new_path_is_complete(either: Synthesized) -> None:
    # Given the destination and what else its path needs (the rule, or the topic's subscription)
    destination_id, _ = destination_of(either)
    path = {
        destination_id,
        *either.resources("AWS::Events::Rule"),
        *either.resources("AWS::SNS::Subscription"),
    }
    assert len(path) == 2
    queue_id = events_queue_id(either)
    policies = {
        k: p
        for k, p in either.resources("AWS::SQS::QueuePolicy").items()
        if p["Properties"]["Queues"]
        in ([{"Ref": queue_id}], [{"Ref": dead_letter_queue_id(either, queue_id)}])
    }
    assert len(policies) == 2
    # Then the policies of the events queue and its dead-letter queue, which a switch rewrites (the
    # old path's statement gone), are written after them: until then the old path delivers (it is
    # deleted only at the end of the deploy)
    for policy in policies.values():
        assert path <= set(policy["DependsOn"])
    # And no part of the new path waits for those policies (CDK's subscription would, by default)
    for part in path:
        assert not set(policies) & set(either.data["Resources"][part].get("DependsOn", []))
