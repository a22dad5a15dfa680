"""SES events reach the events queue through EventBridge: the configuration set publishes to the
account's default bus, the stack's rule selects this configuration set's events of the consumed
types and sends them to the events queue, which only that rule may send to; what EventBridge
cannot deliver lands in the events queue's own dead-letter queue."""

from __future__ import annotations

from typing import Any

import pytest

from infra.constructs.ses import EVENTS
from mailsage.adapters.aws import ses_events
from tests.infra.conftest import Synthesized
from tests.infra.test_first_deploy import DESTINATION_NAMES, consumed_event_types
from tests.infra.test_stack import as_list, function_ids


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


@pytest.fixture
def stack(synthesized: Synthesized) -> Synthesized:
    """The stack with cdk.json's defaults: nothing in the context changes the events path (the
    configured and imported stacks pass cdk-nag and cfn-lint with it in test_nag_and_lint.py and
    test_first_deploy.py), and one synthesis keeps this file fast on its own."""
    return synthesized


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
    # And no SNS topic is left for SES events (the one topic is the alarms')
    assert [k for k in stack.resources("AWS::SNS::Topic") if not k.startswith("MonitoringAlarmTopic")] == []


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


def test_ses_publishes_only_once_the_rule_and_the_queue_policy_exist(stack: Synthesized) -> None:
    # Given the destination (a first deploy, or the switch from SNS, creates it)
    _, destination = destination_of(stack)
    rule_id, _ = rule_of(stack)
    queue_id = events_queue_id(stack)
    (policy_id,) = [
        k
        for k, p in stack.resources("AWS::SQS::QueuePolicy").items()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    # Then CloudFormation creates it after them: no event reaches the bus before a rule takes it
    assert {rule_id, policy_id} <= set(destination["DependsOn"])


def test_the_dead_letter_queue_eventbridge_writes_to_has_an_alarm(synthesized: Synthesized) -> None:
    _, rule = rule_of(synthesized)
    dlq_id = rule["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    alarmed = [
        a
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert alarmed
