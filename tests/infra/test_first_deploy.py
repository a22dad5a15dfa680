"""What a first deploy into a fresh account needs, proven on the synthesized template: the API
Gateway account's CloudWatch role, a default sender the stack can send from, identities already in
the account referenced instead of created, and SES set up as documented (only the events MailSage
consumes; a dead-letter queue for what SNS cannot deliver)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.config import ConfigError, MailSageConfig
from mailsage.adapters.aws import ses_events
from mailsage.domain import feedback
from mailsage.domain.delivery_reports import ReportOutcome
from tests.infra.conftest import Synthesized
from tests.infra.test_nag_and_lint import CFN_LINT, synthesize_with_nag
from tests.infra.test_stack import as_list, function_statements, refers_to, statements_with

# A prod stack sending from identities verified before it existed, beside one it creates.
IMPORTED: dict[str, Any] = {
    "stage": "prod",
    "sender_identities": ["mail.example.com"],
    "existing_sender_identities": ["example.net", "ops@example.org"],
    "default_from": "Example <noreply@example.net>",
}
# SES eventType (in a notification) -> its name in an event destination's MatchingEventTypes.
DESTINATION_NAMES = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "DeliveryDelay": "deliveryDelay",
    "Reject": "reject",
    "Rendering Failure": "renderingFailure",
    "Open": "open",
    "Click": "click",
}
# A Bounce notification reports one of these, by its bounceType.
BOUNCE_OUTCOMES = (ReportOutcome.BOUNCED, ReportOutcome.SOFT_BOUNCED, ReportOutcome.UNDETERMINED_BOUNCE)
PUSH_TO_LOGS = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


@pytest.fixture(scope="module")
def imported(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    _, stack = build_app(IMPORTED)
    template = Template.from_stack(stack)
    data = dict(template.to_json())
    path = tmp_path_factory.mktemp("template") / "MailSage-prod-imported.template.json"
    path.write_text(json.dumps(data, indent=1))
    return Synthesized(stack, template, data, path)


def one(s: Synthesized, type_: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = s.resources(type_).items()
    return logical_id, resource


# --- the API Gateway account's CloudWatch role --------------------------------------------------


def test_the_stack_sets_the_api_gateway_cloudwatch_role_before_the_logging_stage(
    synthesized: Synthesized,
) -> None:
    # Given the stack with cdk.json's defaults (its stage writes access logs)
    account_id, account = one(synthesized, "AWS::ApiGateway::Account")
    _, stage = one(synthesized, "AWS::ApiGateway::Stage")
    # Then the region's account setting names a role API Gateway assumes to push logs
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = synthesized.data["Resources"][role_id]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert [PUSH_TO_LOGS in json.dumps(arn) for arn in role["Properties"]["ManagedPolicyArns"]] == [True]
    # And the stage with access logging is created only once the setting is in place
    assert "AccessLogSetting" in stage["Properties"]
    assert account_id in as_list(stage.get("DependsOn", []))


def test_a_deleted_stack_leaves_the_account_setting_and_its_role_in_place(synthesized: Synthesized) -> None:
    # Given the regional setting that every REST API of the account shares
    account_id, account = one(synthesized, "AWS::ApiGateway::Account")
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    # Then deleting this stack (dev beside prod) keeps both, so other APIs keep logging
    for logical_id in (account_id, role_id):
        resource = synthesized.data["Resources"][logical_id]
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"


# --- the default sender outside dev -------------------------------------------------------------


@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_a_non_dev_stage_refuses_a_default_sender_without_an_identity(stage: str) -> None:
    # Given a non-dev stage with the placeholder default_from and no identities
    # When the context is read
    with pytest.raises(ConfigError) as raised:
        MailSageConfig.from_context({"stage": stage}.get)
    # Then synthesis fails with one line naming the keys to set
    message = str(raised.value)
    assert "\n" not in message
    for key in ("'default_from'", "'sender_identities'", "'existing_sender_identities'"):
        assert key in message
    assert "mailsage.example" in message


def test_synthesis_of_a_non_dev_stage_fails_before_any_resource(
    build_app: Callable[..., tuple[Any, Any]],
) -> None:
    # Given identities that do not cover the default sender's domain
    context = {"stage": "prod", "sender_identities": ["example.com"], "default_from": "a@other.example"}
    # When the app is built, Then it stops on the configuration
    with pytest.raises(ConfigError, match=re.escape("'default_from' (a@other.example)")):
        build_app(context)


def test_dev_synthesizes_with_the_placeholder_sender(synthesized: Synthesized) -> None:
    # Given cdk.json's defaults (stage dev, no identities)
    config = MailSageConfig.from_context({}.get)
    assert (config.stage, config.all_sender_identities) == ("dev", ())
    # Then the stack exists and the functions get the placeholder
    api = next(
        f
        for f in synthesized.resources("AWS::Lambda::Function").values()
        if f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "mailsage-api"
    )
    assert "mailsage.example" in api["Properties"]["Environment"]["Variables"]["MAILSAGE_DEFAULT_FROM"]


@pytest.mark.parametrize(
    ("identities", "default_from"),
    [
        ({"sender_identities": ["example.com"]}, "MailSage <noreply@example.com>"),
        ({"sender_identities": ["Example.COM"]}, "noreply@example.com"),
        ({"existing_sender_identities": ["example.net"]}, "Team <hi@EXAMPLE.net>"),
        ({"existing_sender_identities": ["hi@example.net"]}, "hi@example.net"),
    ],
)
def test_a_default_sender_at_a_created_or_imported_identity_is_accepted(
    identities: dict[str, list[str]], default_from: str
) -> None:
    config = MailSageConfig.from_context({"stage": "prod", "default_from": default_from, **identities}.get)
    assert config.default_from == default_from


@pytest.mark.parametrize(
    ("identities", "default_from"),
    [
        ({"existing_sender_identities": ["hi@example.net"]}, "other@example.net"),  # another address
        ({"sender_identities": ["example.com"]}, "noreply@mail.example.com"),  # a subdomain: its own identity
    ],
)
def test_a_default_sender_no_identity_names_is_refused(
    identities: dict[str, list[str]], default_from: str
) -> None:
    with pytest.raises(ConfigError, match="uses no SES identity"):
        MailSageConfig.from_context({"stage": "prod", "default_from": default_from, **identities}.get)


# --- identities already in the account -----------------------------------------------------------


def test_imported_identities_are_read_from_the_command_line() -> None:
    config = MailSageConfig.from_context(
        {"existing_sender_identities": "example.net, ops@example.org", "sender_identities": "a.example"}.get
    )
    assert config.existing_sender_identities == ("example.net", "ops@example.org")
    assert config.all_sender_identities == ("a.example", "example.net", "ops@example.org")


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"existing_sender_identities": ["not an identity"]}, "neither a domain nor an address"),
        (
            {"sender_identities": ["example.com"], "existing_sender_identities": ["EXAMPLE.com"]},
            "both list example.com",
        ),
    ],
)
def test_bad_imported_identities_fail_with_a_clear_error(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        MailSageConfig.from_context(context.get)


def test_imported_identities_are_referenced_not_created(imported: Synthesized) -> None:
    # Given identities already verified in the account beside one the stack creates
    created = [
        r["Properties"]["EmailIdentity"] for r in imported.resources("AWS::SES::EmailIdentity").values()
    ]
    # Then only the stack's own one is an EmailIdentity resource
    assert created == ["mail.example.com"]
    assert "example.net" not in json.dumps(imported.resources("AWS::SES::EmailIdentity"))


def test_the_sender_may_send_from_created_and_imported_identities_only(imported: Synthesized) -> None:
    # Given the sender's SendEmail statement
    (statement,) = statements_with(function_statements(imported, "sender"), "ses:SendEmail")
    resources = as_list(statement["Resource"])
    text = json.dumps(resources)
    # Then it names each imported identity's ARN, the created identity and no wildcard
    for name in IMPORTED["existing_sender_identities"]:
        assert f":identity/{name}" in text
    (created_id,) = imported.resources("AWS::SES::EmailIdentity")
    assert any(refers_to(resource, created_id) for resource in resources)
    assert ":identity/*" not in text
    assert len(resources) == 4  # three identities and the configuration set


def test_imported_identities_need_no_identity_wildcard_acknowledgment(
    build_app: Callable[..., tuple[Any, Any]],
) -> None:
    # Given only imported identities (nothing created by the stack)
    context = {**IMPORTED, "sender_identities": []}
    # When cdk-nag checks the stack, Then it passes without accepting a wildcard identity
    acknowledged = synthesize_with_nag(build_app, context)
    assert not [rule for rule in acknowledged if ":identity/*" in rule]


# --- SES events ----------------------------------------------------------------------------------


def consumed_event_types() -> set[str]:
    """SES event types whose report moves a message (feedback's transitions), from the domain."""
    consumed = set()
    for event_type, outcome in ses_events._OUTCOMES.items():
        outcomes = BOUNCE_OUTCOMES if outcome is None else (outcome,)
        if any(feedback._TRANSITIONS[o] is not None for o in outcomes):
            consumed.add(DESTINATION_NAMES[event_type])
    return consumed


def test_the_event_destination_subscribes_exactly_the_events_feedback_consumes(
    synthesized: Synthesized,
) -> None:
    # Given the configuration set's one event destination
    _, destination = one(synthesized, "AWS::SES::ConfigurationSetEventDestination")
    subscribed = destination["Properties"]["EventDestination"]["MatchingEventTypes"]
    # Then it subscribes each event the events function applies, once, and nothing else
    assert sorted(subscribed) == sorted(consumed_event_types())
    assert consumed_event_types() == {
        "delivery",
        "deliveryDelay",
        "bounce",
        "complaint",
        "reject",
        "renderingFailure",
    }


def test_no_event_destination_turns_on_ses_tracking_or_send_events(
    synthesized: Synthesized, configured: Synthesized
) -> None:
    # OPEN/CLICK would make SES add its pixel and rewrite links in every HTML message; SEND is ignored.
    for s in (synthesized, configured):
        for destination in s.resources("AWS::SES::ConfigurationSetEventDestination").values():
            subscribed = set(destination["Properties"]["EventDestination"]["MatchingEventTypes"])
            assert not subscribed & {"open", "click", "send"}


def test_what_sns_cannot_deliver_goes_to_the_events_dead_letter_queue(synthesized: Synthesized) -> None:
    # Given the subscription of the events queue to the SES events topic
    _, subscription = one(synthesized, "AWS::SNS::Subscription")
    queue_id = subscription["Properties"]["Endpoint"]["Fn::GetAtt"][0]
    topic = subscription["Properties"]["TopicArn"]
    # Then its redrive policy names the dead-letter queue the events queue itself redrives to
    queue = synthesized.data["Resources"][queue_id]
    dlq_arn = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    assert subscription["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": dlq_arn}
    # And that queue's policy lets SNS send to it for this topic only
    dlq_id = dlq_arn["Fn::GetAtt"][0]
    (policy,) = [
        p
        for p in synthesized.resources("AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": dlq_id}]
    ]
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Action": "sqs:SendMessage",
            "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Resource": dlq_arn,
        }
    ]


def test_the_dead_letter_queue_sns_writes_to_has_an_alarm(synthesized: Synthesized) -> None:
    _, subscription = one(synthesized, "AWS::SNS::Subscription")
    dlq_id = subscription["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    alarms = [
        a
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if refers_to(a["Properties"].get("Dimensions", []), dlq_id)
    ]
    assert alarms


def test_cfn_lint_reports_no_errors_with_imported_identities(imported: Synthesized) -> None:
    result = subprocess.run(
        [*CFN_LINT, str(imported.path), "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode & (1 | 2) == 0, result.stdout + result.stderr
