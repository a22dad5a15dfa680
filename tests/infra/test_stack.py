"""The synthesized MailSage stack: what gets deployed, how it is wired, and who may do what."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from infra.config import (
    ARCHITECTURE,
    CONTEXT_KEYS,
    PYTHON_RUNTIME_VERSION,
    WHEEL_PLATFORMS,
    ConfigError,
    LayersNotBuilt,
    MailSageConfig,
)
from mailsage.adapters.aws import table as table_schema
from mailsage.domain.webhook_delivery import WebhookPolicy
from mailsage.settings import SenderSettings, WebhooksSettings
from tests.infra.conftest import CONFIGURED, ROOT, Synthesized, cdk_json_context

FUNCTION_NAMES = ("api", "sender", "ingest", "events", "webhooks")
CONFIGURED_IDENTITIES: list[str] = CONFIGURED["sender_identities"]
SETTINGS_CALL = re.compile(r"^settings = (\w+Settings)\(\)", re.MULTILINE)

# Wildcard actions ("*" or "<service>:*") that may appear in a policy, each with its reason.
JUSTIFIED_WILDCARD_ACTIONS = {
    ("Deny", "sqs:*"): "enforce_ssl on every queue: deny all SQS actions when aws:SecureTransport is false",
}
# The only actions allowed on Resource "*".
RESOURCE_STAR_ACTIONS = {
    "xray:PutTraceSegments": "tracing; X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "tracing; X-Ray has no resource-level permissions",
    "ses:GetAccount": "the sender reads its SES sending quota; the action has no resource type",
}


# --- helpers -----------------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def refers_to(value: Any, logical_id: str) -> bool:
    return f'"{logical_id}"' in json.dumps(value)


def function_ids(s: Synthesized) -> dict[str, str]:
    """Function name -> logical id, by the service name the helper sets."""
    ids = {}
    for logical_id, resource in s.resources("AWS::Lambda::Function").items():
        service = resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        ids[service.removeprefix("mailsage-")] = logical_id
    return ids


def function(s: Synthesized, name: str) -> dict[str, Any]:
    return s.data["Resources"][function_ids(s)[name]]["Properties"]


def environment(s: Synthesized, name: str) -> dict[str, Any]:
    return function(s, name)["Environment"]["Variables"]


def role_statements(s: Synthesized, role_id: str) -> list[dict[str, Any]]:
    """Every statement granted to a role: its inline policies and the AWS::IAM::Policy resources
    attached to it (resolved by the role's logical id)."""
    role = s.data["Resources"][role_id]["Properties"]
    statements = [st for p in role.get("Policies", []) for st in p["PolicyDocument"]["Statement"]]
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def function_role_id(s: Synthesized, name: str) -> str:
    return function(s, name)["Role"]["Fn::GetAtt"][0]


def function_statements(s: Synthesized, name: str) -> list[dict[str, Any]]:
    return role_statements(s, function_role_id(s, name))


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for st in statements if st["Effect"] == "Allow" for a in as_list(st["Action"])}


def statements_with(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [st for st in statements if action in as_list(st["Action"])]


def all_policy_statements(s: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, statement) for every policy document in the template."""
    found = []
    for logical_id, resource in s.data["Resources"].items():
        props = resource.get("Properties", {})
        documents = [props.get("PolicyDocument"), props.get("AssumeRolePolicyDocument")]
        documents += [p.get("PolicyDocument") for p in props.get("Policies", [])]
        for document in documents:
            if document:
                found += [(logical_id, st) for st in document["Statement"]]
    return found


def queue_ids(s: Synthesized) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(work queues, dead-letter queues) by logical id."""
    queues = s.resources("AWS::SQS::Queue")
    work = {k: v for k, v in queues.items() if "RedrivePolicy" in v["Properties"]}
    return work, {k: v for k, v in queues.items() if k not in work}


def webhook_queue_id(s: Synthesized) -> str:
    [queue_id] = [k for k in queue_ids(s)[0] if k.startswith("QueuesWebhooks")]
    return queue_id


def signing_secret_id(s: Synthesized) -> str:
    [secret_id] = s.resources("AWS::SecretsManager::Secret")
    return secret_id


def secret_resources(statements: list[dict[str, Any]]) -> list[Any]:
    """Every resource a secretsmanager action is allowed on."""
    return [
        r
        for st in statements
        if st["Effect"] == "Allow" and any(a.startswith("secretsmanager:") for a in as_list(st["Action"]))
        for r in as_list(st["Resource"])
    ]


# --- what gets deployed ------------------------------------------------------------------------


def test_resource_counts(synthesized: Synthesized) -> None:
    t = synthesized.template
    t.resource_count_is("AWS::Lambda::Function", 5)
    t.resource_count_is("AWS::Lambda::LayerVersion", 2)
    t.resource_count_is("AWS::SQS::Queue", 11)  # 5 work queues, their 5 DLQs, the scheduler's DLQ
    t.resource_count_is("AWS::DynamoDB::Table", 1)
    t.resource_count_is("AWS::ApiGateway::RestApi", 1)
    t.resource_count_is("AWS::Scheduler::ScheduleGroup", 1)
    t.resource_count_is("AWS::SES::ConfigurationSet", 1)
    t.resource_count_is("AWS::SNS::Topic", 2)  # SES events, alarms
    t.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    t.resource_count_is("AWS::Lambda::EventSourceMapping", 5)  # the sender consumes both lanes
    t.resource_count_is("AWS::SES::EmailIdentity", 0)  # none by default
    t.resource_count_is("AWS::SecretsManager::Secret", 1)  # the URL signing key
    # every one in tests/infra/test_monitoring.py
    assert len(synthesized.resources("AWS::CloudWatch::Alarm")) == 20


def test_every_function_has_its_source_under_functions(synthesized: Synthesized) -> None:
    assert set(function_ids(synthesized)) == set(FUNCTION_NAMES)
    for name in FUNCTION_NAMES:
        source = (ROOT / "functions" / name / "handler.py").read_text()
        assert "def lambda_handler(" in source, name


def test_no_hard_coded_physical_names(synthesized: Synthesized) -> None:
    name_properties = {
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Lambda::Function": "FunctionName",
        "AWS::Lambda::LayerVersion": "LayerName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::IAM::Role": "RoleName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::Scheduler::ScheduleGroup": "Name",
        "AWS::SES::ConfigurationSet": "Name",
        "AWS::CloudWatch::Dashboard": "DashboardName",
    }  # (a REST API's Name is a label, not an identifier: APIs are addressed by their generated id;
    # alarms are named after the stack, so each stage's are told apart: tests/infra/test_monitoring.py)
    named = [
        (logical_id, prop)
        for type_, prop in name_properties.items()
        for logical_id, resource in synthesized.resources(type_).items()
        if prop in resource["Properties"]
    ]
    assert named == []


# --- functions ---------------------------------------------------------------------------------


def test_functions_share_runtime_architecture_logs_and_tracing(synthesized: Synthesized) -> None:
    log_groups = synthesized.resources("AWS::Logs::LogGroup")
    layer_ids = set(synthesized.resources("AWS::Lambda::LayerVersion"))
    for name in FUNCTION_NAMES:
        props = function(synthesized, name)
        assert props["Runtime"] == f"python{PYTHON_RUNTIME_VERSION}" == "python3.12"
        assert props["Architectures"] == [ARCHITECTURE] == ["arm64"]
        assert props["Handler"] == "handler.lambda_handler"
        assert props["TracingConfig"] == {"Mode": "PassThrough"}  # the API's rule samples
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[log_group]["Properties"]["RetentionInDays"] > 0
        assert {layer["Ref"] for layer in props["Layers"]} == layer_ids
        assert "ReservedConcurrentExecutions" not in props
        assert 128 <= props["MemorySize"] <= 3008 and props["Timeout"] <= 900


def test_the_cost_bench_prices_each_function_at_its_deployed_memory(synthesized: Synthesized) -> None:
    from bench.prices import MEMORY_MB

    assert {name: function(synthesized, name)["MemorySize"] for name in FUNCTION_NAMES} == MEMORY_MB


def test_layers_target_the_same_runtime_and_architecture(synthesized: Synthesized) -> None:
    for layer in synthesized.resources("AWS::Lambda::LayerVersion").values():
        assert layer["Properties"]["CompatibleRuntimes"] == [f"python{PYTHON_RUNTIME_VERSION}"]
        assert layer["Properties"]["CompatibleArchitectures"] == [ARCHITECTURE]


def test_api_timeout_fits_the_api_gateway_integration_limit(synthesized: Synthesized) -> None:
    assert function(synthesized, "api")["Timeout"] <= 29


def test_every_function_gets_the_common_environment(synthesized: Synthesized) -> None:
    for name in FUNCTION_NAMES:
        env = environment(synthesized, name)
        assert env["MAILSAGE_BACKEND"] == "aws"
        assert env["POWERTOOLS_SERVICE_NAME"] == f"mailsage-{name}"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert "Ref" in env["MAILSAGE_TABLE_NAME"]
        assert "Ref" in env["MAILSAGE_SEND_QUEUE_URL"]


def test_submitting_functions_know_the_scheduler_and_the_default_sender(synthesized: Synthesized) -> None:
    group_id = next(iter(synthesized.resources("AWS::Scheduler::ScheduleGroup")))
    for name in ("api", "ingest"):
        env = environment(synthesized, name)
        assert env["MAILSAGE_SCHEDULE_GROUP"] == {"Ref": group_id}
        assert "Fn::GetAtt" in env["MAILSAGE_SEND_QUEUE_ARN"]
        assert "Fn::GetAtt" in env["MAILSAGE_SCHEDULER_ROLE_ARN"]
        assert env["MAILSAGE_DEFAULT_FROM"] == cdk_json_context()["default_from"]
    assert "MAILSAGE_INGEST_DLQ_URL" in environment(synthesized, "ingest")


def test_sender_environment_names_providers_and_configuration_set(synthesized: Synthesized) -> None:
    env = environment(synthesized, "sender")
    config_set = next(iter(synthesized.resources("AWS::SES::ConfigurationSet")))
    assert env["MAILSAGE_SES_CONFIGURATION_SET"] == {"Ref": config_set}
    assert json.loads(env["MAILSAGE_SMTP_RELAYS"]) == {}
    assert env["MAILSAGE_DEFAULT_PROVIDER"] == "ses"
    assert "MAILSAGE_FAILOVER_PROVIDER" not in env


def test_configured_relays_and_failover_reach_the_functions(configured: Synthesized) -> None:
    for name in ("api", "sender", "ingest"):
        env = environment(configured, name)
        assert json.loads(env["MAILSAGE_SMTP_RELAYS"]) == CONFIGURED["smtp_relay_secrets"]
        assert env["MAILSAGE_FAILOVER_PROVIDER"] == "relay"


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_function_environment_passes_the_handlers_cold_start_validation(
    synthesized: Synthesized, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the env the stack sets (deploy-time tokens replaced by placeholders), when the
    settings class the handler instantiates at cold start reads it, then it validates."""
    import mailsage.settings

    match = SETTINGS_CALL.search((ROOT / "functions" / name / "handler.py").read_text())
    assert match, f"functions/{name}/handler.py builds no settings model"
    for key in [k for k in os.environ if k.startswith("MAILSAGE_")]:
        monkeypatch.delenv(key)
    for key, value in environment(synthesized, name).items():
        monkeypatch.setenv(key, value if isinstance(value, str) else f"placeholder-for-{key.lower()}")
    settings = getattr(mailsage.settings, match.group(1))()
    assert settings.backend == "aws"


# --- queues ------------------------------------------------------------------------------------


def test_every_sqs_event_source_reports_batch_item_failures_with_max_concurrency(
    synthesized: Synthesized,
) -> None:
    mappings = synthesized.resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 5
    for mapping in mappings.values():
        props = mapping["Properties"]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 2 <= props["ScalingConfig"]["MaximumConcurrency"] <= 1000
    send_queue = environment(synthesized, "sender")["MAILSAGE_SEND_QUEUE_URL"]["Ref"]
    (sender_mapping,) = [
        m
        for m in mappings.values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [send_queue, "Arn"]}
    ]
    assert (
        sender_mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        == cdk_json_context()["sender_max_concurrency"]
    )


def test_each_work_queue_redrives_to_its_own_dead_letter_queue(synthesized: Synthesized) -> None:
    work, dead = queue_ids(synthesized)
    dead = {k: v for k, v in dead.items() if not k.startswith("SchedulingDeadLetters")}
    assert len(work) == 5 and len(dead) == 5
    targets = set()
    for queue_id, queue in work.items():
        redrive = queue["Properties"]["RedrivePolicy"]
        targets.add(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0])
        if queue_id.startswith("QueuesWebhooks"):
            continue  # its own count: test_the_webhook_queue_outlasts_every_retry
        assert redrive["maxReceiveCount"] == cdk_json_context()["max_receive_count"] == 8
        # the sender gives a chunk up itself before the queue dead-letters it
        assert redrive["maxReceiveCount"] > SenderSettings.model_fields["max_attempts"].default
    assert targets == set(dead)
    for queue in dead.values():
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_scheduler_has_its_own_dead_letter_queue_with_an_alarm(synthesized: Synthesized) -> None:
    [(dlq_id, dlq)] = [
        (k, v)
        for k, v in synthesized.resources("AWS::SQS::Queue").items()
        if k.startswith("SchedulingDeadLetters")
    ]
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    # The api function hands it to every schedule it creates
    api = next(v for k, v in synthesized.resources("AWS::Lambda::Function").items() if k.startswith("Api"))
    variables = api["Properties"]["Environment"]["Variables"]
    assert variables["MAILSAGE_SCHEDULE_DLQ_ARN"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    # And someone is told when a schedule lands there
    alarmed = [
        a
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert len(alarmed) == 1


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(synthesized: Synthesized) -> None:
    resources = synthesized.data["Resources"]
    consumed = set()
    for mapping in synthesized.resources("AWS::Lambda::EventSourceMapping").values():
        queue_id = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        function_id = mapping["Properties"]["FunctionName"]["Ref"]
        visibility = resources[queue_id]["Properties"]["VisibilityTimeout"]
        assert visibility >= 6 * resources[function_id]["Properties"]["Timeout"], queue_id
        consumed.add(queue_id)
    assert consumed == set(queue_ids(synthesized)[0])  # every work queue has exactly its consumer


def test_queues_are_encrypted_and_refuse_plain_http(synthesized: Synthesized) -> None:
    queues = synthesized.resources("AWS::SQS::Queue")
    ssl_enforced = set()
    for policy in synthesized.resources("AWS::SQS::QueuePolicy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny" and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                ssl_enforced.add(st["Resource"]["Fn::GetAtt"][0])
    assert ssl_enforced == set(queues)
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


# --- storage -----------------------------------------------------------------------------------


def test_table_uses_the_adapters_key_schema(synthesized: Synthesized) -> None:
    (table,) = synthesized.resources("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    expected = table_schema.create_table_kwargs("unused")
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == table_schema.GSI1_NAME
    assert gsi["KeySchema"] == expected["GlobalSecondaryIndexes"][0]["KeySchema"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": table_schema.TTL_ATTRIBUTE, "Enabled": True}
    assert table_schema.TTL_ATTRIBUTE == "ttl"


def test_dev_table_is_disposable(synthesized: Synthesized) -> None:
    (table,) = synthesized.resources("AWS::DynamoDB::Table").values()
    assert table["Properties"]["DeletionProtectionEnabled"] is False
    assert table["DeletionPolicy"] == "Delete"


def test_prod_table_is_protected_and_retained(configured: Synthesized) -> None:
    (table,) = configured.resources("AWS::DynamoDB::Table").values()
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"


# --- least privilege ---------------------------------------------------------------------------


def test_function_roles_carry_no_managed_policies(synthesized: Synthesized) -> None:
    for name in FUNCTION_NAMES:
        role = synthesized.data["Resources"][function_role_id(synthesized, name)]["Properties"]
        assert "ManagedPolicyArns" not in role, name


def test_no_policy_grants_wildcard_actions(synthesized: Synthesized, configured: Synthesized) -> None:
    for s in (synthesized, configured):
        for logical_id, st in all_policy_statements(s):
            for action in as_list(st["Action"]):
                if action == "*" or action.endswith(":*"):
                    assert (st["Effect"], action) in JUSTIFIED_WILDCARD_ACTIONS, (logical_id, st)


def test_resource_star_only_for_xray(synthesized: Synthesized, configured: Synthesized) -> None:
    for s in (synthesized, configured):
        for logical_id, st in all_policy_statements(s):
            if st["Effect"] == "Allow" and "*" in as_list(st.get("Resource", [])):
                assert set(as_list(st["Action"])) <= set(RESOURCE_STAR_ACTIONS), (logical_id, st)


def test_api_cannot_send_email(synthesized: Synthesized) -> None:
    statements = function_statements(synthesized, "api")
    granted = actions(statements)
    assert not [a for a in granted if a.startswith("ses:") and "Send" in a]
    # secrets: the URL signing key only (it verifies tracking and unsubscribe links)
    assert secret_resources(statements) == [{"Ref": signing_secret_id(synthesized)}]


def test_sender_reads_and_writes_items_but_cannot_drop_the_table(synthesized: Synthesized) -> None:
    granted = actions(function_statements(synthesized, "sender"))
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= granted
    assert "dynamodb:DeleteTable" not in granted
    assert "dynamodb:*" not in granted
    assert not {"dynamodb:CreateTable", "dynamodb:UpdateTable"} & granted


def test_sender_consumes_the_two_lanes_only(synthesized: Synthesized) -> None:
    statements = function_statements(synthesized, "sender")
    env = environment(synthesized, "sender")
    lanes = [
        {"Fn::GetAtt": [env[k]["Ref"], "Arn"]}
        for k in ("MAILSAGE_SEND_QUEUE_URL", "MAILSAGE_PRIORITY_QUEUE_URL")
    ]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        resources = [r for st in statements_with(statements, action) for r in as_list(st["Resource"])]
        assert sorted(resources, key=str) == sorted(lanes, key=str), action
    # it sends chunks to the two lanes (what is left of a chunk, a scheduled job's chunks) and events
    sent_to = [r for st in statements_with(statements, "sqs:SendMessage") for r in as_list(st["Resource"])]
    webhooks = {"Fn::GetAtt": [webhook_queue_id(synthesized), "Arn"]}
    assert sorted(sent_to, key=str) == sorted([*lanes, webhooks], key=str)


def test_sender_sends_with_the_configuration_set_and_account_identities_by_default(
    synthesized: Synthesized,
) -> None:
    statements = function_statements(synthesized, "sender")
    (statement,) = statements_with(statements, "ses:SendEmail")
    assert set(as_list(statement["Action"])) == {"ses:SendEmail", "ses:SendRawEmail"}
    resources = json.dumps(statement["Resource"])
    assert ":configuration-set/" in resources and ":identity/*" in resources
    # no relays configured: the URL signing key is the one secret it reads
    assert secret_resources(statements) == [{"Ref": signing_secret_id(synthesized)}]


def test_sender_sends_from_named_identities_and_reads_named_relay_secrets(configured: Synthesized) -> None:
    statements = function_statements(configured, "sender")
    (statement,) = statements_with(statements, "ses:SendEmail")
    identities = set(configured.resources("AWS::SES::EmailIdentity"))
    assert len(identities) == 2
    resources = as_list(statement["Resource"])
    assert ":identity/*" not in json.dumps(resources)
    for resource in resources:
        assert any(refers_to(resource, i) for i in identities) or ":configuration-set/" in json.dumps(
            resource
        )
    for identity in identities:
        assert any(refers_to(resource, identity) for resource in resources)
    (secret_statement,) = statements_with(statements, "secretsmanager:GetSecretValue")
    assert set(as_list(secret_statement["Action"])) <= {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    secret_resources = json.dumps(secret_statement["Resource"])
    assert ":secret:mailsage/smtp/relay-??????" in secret_resources
    assert secret_resources.count(":secret:") == 1


def test_only_the_sender_may_send_email(configured: Synthesized) -> None:
    for name in ("api", "ingest", "events", "webhooks"):
        assert not [a for a in actions(function_statements(configured, name)) if a.startswith("ses:")], name


@pytest.mark.parametrize("name", ["api", "ingest"])
def test_submitting_functions_manage_schedules_in_the_group_and_pass_only_the_scheduler_role(
    synthesized: Synthesized, name: str
) -> None:
    statements = function_statements(synthesized, name)
    group_id = next(iter(synthesized.resources("AWS::Scheduler::ScheduleGroup")))
    scheduler_actions = {a for a in actions(statements) if a.startswith("scheduler:")}
    assert scheduler_actions == {
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
    }
    for st in statements:
        if any(a.startswith("scheduler:") for a in as_list(st["Action"])):
            resource = json.dumps(st["Resource"])
            assert ":schedule/" in resource and refers_to(st["Resource"], group_id)
    (pass_role,) = statements_with(statements, "iam:PassRole")
    scheduler_role = environment(synthesized, name)["MAILSAGE_SCHEDULER_ROLE_ARN"]
    assert pass_role["Resource"] == scheduler_role
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    assert "sqs:SendMessage" in actions(statements)


def test_events_function_only_stores_consumes_and_publishes_events(synthesized: Synthesized) -> None:
    statements = function_statements(synthesized, "events")
    services = {a.split(":")[0] for a in actions(statements)}
    assert services == {"logs", "xray", "dynamodb", "sqs"}
    (send,) = statements_with(statements, "sqs:SendMessage")
    assert as_list(send["Resource"]) == [{"Fn::GetAtt": [webhook_queue_id(synthesized), "Arn"]}]


def test_scheduler_role_may_only_send_to_the_send_queue_and_its_dlq(synthesized: Synthesized) -> None:
    role_id = environment(synthesized, "api")["MAILSAGE_SCHEDULER_ROLE_ARN"]["Fn::GetAtt"][0]
    role = synthesized.data["Resources"][role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    statements = role_statements(synthesized, role_id)
    assert actions(statements) == {"sqs:SendMessage"}
    send_queue = environment(synthesized, "api")["MAILSAGE_SEND_QUEUE_ARN"]["Fn::GetAtt"][0]
    send_dlq = environment(synthesized, "api")["MAILSAGE_SCHEDULE_DLQ_ARN"]["Fn::GetAtt"][0]
    targets = {r["Fn::GetAtt"][0] for st in statements for r in as_list(st["Resource"])}
    assert targets == {send_queue, send_dlq}


# --- SES ---------------------------------------------------------------------------------------


def test_ses_events_reach_the_events_queue_as_raw_json(synthesized: Synthesized) -> None:
    (destination,) = synthesized.resources("AWS::SES::ConfigurationSetEventDestination").values()
    event_destination = destination["Properties"]["EventDestination"]
    # which events: tests/infra/test_first_deploy.py
    topic_id = event_destination["SnsDestination"]["TopicARN"]["Ref"]
    (subscription,) = synthesized.resources("AWS::SNS::Subscription").values()
    props = subscription["Properties"]
    assert props["Protocol"] == "sqs" and props["TopicArn"] == {"Ref": topic_id}
    assert props["RawMessageDelivery"] is True
    events_mapping_queue = next(
        m["Properties"]["EventSourceArn"]
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_ids(synthesized)["events"]}
    )
    assert props["Endpoint"] == events_mapping_queue


def test_only_ses_for_this_configuration_set_may_publish_to_the_events_topic(
    synthesized: Synthesized,
) -> None:
    (destination,) = synthesized.resources("AWS::SES::ConfigurationSetEventDestination").values()
    topic_id = destination["Properties"]["EventDestination"]["SnsDestination"]["TopicARN"]["Ref"]
    config_set = destination["Properties"]["ConfigurationSetName"]["Ref"]
    allows = [
        st
        for policy in synthesized.resources("AWS::SNS::TopicPolicy").values()
        if policy["Properties"]["Topics"] == [{"Ref": topic_id}]
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow"
    ]
    assert allows
    for st in allows:
        assert st["Principal"] == {"Service": "ses.amazonaws.com"} and st["Action"] == "sns:Publish"
        assert refers_to(st["Condition"], config_set)


def test_named_identities_use_the_configuration_set(configured: Synthesized) -> None:
    config_set = next(iter(configured.resources("AWS::SES::ConfigurationSet")))
    names = set()
    for identity in configured.resources("AWS::SES::EmailIdentity").values():
        names.add(identity["Properties"]["EmailIdentity"])
        assert identity["Properties"]["ConfigurationSetAttributes"]["ConfigurationSetName"] == {
            "Ref": config_set
        }
    assert names == set(CONFIGURED_IDENTITIES)


# --- API ---------------------------------------------------------------------------------------


def test_api_stage_is_throttled_and_writes_json_access_logs(synthesized: Synthesized) -> None:
    (stage,) = synthesized.resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    # the stage's own ("/*"); /t and /u have theirs (tests/infra/test_custom_domain.py)
    (method_settings,) = [m for m in props["MethodSettings"] if m["ResourcePath"] == "/*"]
    assert method_settings["ThrottlingRateLimit"] == cdk_json_context()["api_rate_limit"]
    assert method_settings["ThrottlingBurstLimit"] == cdk_json_context()["api_burst_limit"]
    assert json.loads(props["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"
    assert props["TracingEnabled"] is True
    assert props["StageName"] == "dev"


def test_api_proxies_everything_to_the_api_function_without_gateway_keys(synthesized: Synthesized) -> None:
    api_id = function_ids(synthesized)["api"]
    methods = synthesized.resources("AWS::ApiGateway::Method")
    assert {m["Properties"]["HttpMethod"] for m in methods.values()} == {"ANY"}  # no CORS by default
    for method in methods.values():
        props = method["Properties"]
        assert props["AuthorizationType"] == "NONE" and not props.get("ApiKeyRequired", False)
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert refers_to(props["Integration"]["Uri"], api_id)
    resources = synthesized.resources("AWS::ApiGateway::Resource")
    # the catch-all, plus /t and /u with their own proxies (throttled apart, same integration)
    assert sorted(r["Properties"]["PathPart"] for r in resources.values()) == sorted(
        ["{proxy+}", "t", "{proxy+}", "u", "{proxy+}"]
    )
    synthesized.template.resource_count_is("AWS::ApiGateway::ApiKey", 0)
    synthesized.template.resource_count_is("AWS::ApiGateway::Authorizer", 0)


def test_configured_origins_get_cors_preflight(configured: Synthesized) -> None:
    options = [
        m
        for m in configured.resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert options
    headers = json.dumps([m["Properties"]["Integration"] for m in options])
    assert "https://app.example.com" in headers
    (stage,) = configured.resources("AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["MethodSettings"][0]["ThrottlingRateLimit"] == 200


# --- monitoring --------------------------------------------------------------------------------


def alarms(s: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in s.resources("AWS::CloudWatch::Alarm").values()]


def test_every_dead_letter_queue_has_an_alarm(synthesized: Synthesized) -> None:
    _, dead = queue_ids(synthesized)
    watched = set()
    for alarm in alarms(synthesized):
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
            (dimension,) = alarm["Dimensions"]
            watched.add(dimension["Value"]["Fn::GetAtt"][0])
    assert watched == set(dead)


def test_every_function_alarms_on_errors_and_throttles(synthesized: Synthesized) -> None:
    for metric in ("Errors", "Throttles"):
        watched = {
            m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
            for a in alarms(synthesized)
            for m in a.get("Metrics", [])
            if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == metric
            and m["MetricStat"]["Metric"]["Namespace"] == "AWS/Lambda"
        }
        assert watched == set(function_ids(synthesized).values()), metric


def test_api_5xx_alarm_and_every_alarm_notifies_the_alarm_topic(synthesized: Synthesized) -> None:
    assert [
        a
        for a in alarms(synthesized)
        if a.get("MetricName") == "5XXError" and a["Namespace"] == "AWS/ApiGateway"
    ]
    topics = synthesized.resources("AWS::SNS::Topic")
    (alarm_topic,) = [k for k in topics if "Alarm" in k]
    for alarm in alarms(synthesized):
        assert alarm["AlarmActions"] == [{"Ref": alarm_topic}]
    synthesized.template.resource_count_is("AWS::SNS::Subscription", 1)  # only the events queue


def test_alarm_email_subscribes_to_the_alarm_topic(configured: Synthesized) -> None:
    emails = [
        s["Properties"]
        for s in configured.resources("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]
    assert [e["Endpoint"] for e in emails] == [CONFIGURED["alarm_email"]]


# --- configuration -----------------------------------------------------------------------------


def test_cdk_json_context_is_the_config_default() -> None:
    context = cdk_json_context()
    assert set(CONTEXT_KEYS) <= set(context), "document every context key in cdk.json"
    from_cdk_json = MailSageConfig.from_context(context.get)
    from_nothing = MailSageConfig.from_context(lambda key: None)
    assert from_cdk_json == from_nothing
    assert context["cli-telemetry"] is False
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert cdk_json["app"] == "python3 infra/app.py" and cdk_json["notices"] is False


def test_the_cdk_cli_is_pinned() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    assert package["devDependencies"]["aws-cdk"] == "2.1148.1"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == "2.1148.1"


def test_command_line_strings_are_parsed() -> None:
    config = MailSageConfig.from_context(
        {
            "sender_identities": "example.com, ops@example.org",
            "allowed_origins": '["https://a.example.com"]',
            "smtp_relay_secrets": '{"relay": "mailsage/relay"}',
            "default_provider": "relay",
            "max_receive_count": "10",
            "deletion_protection": "true",
        }.get
    )
    assert config.sender_identities == ("example.com", "ops@example.org")
    assert config.allowed_origins == ("https://a.example.com",)
    assert config.smtp_relay_secrets == {"relay": "mailsage/relay"}
    assert (config.default_provider, config.max_receive_count, config.deletion_protection) == (
        "relay",
        10,
        True,
    )


def test_prod_stage_protects_the_table_unless_told_otherwise() -> None:
    prod = {"stage": "prod", "sender_identities": "example.com", "default_from": "noreply@example.com"}
    assert MailSageConfig.from_context(prod.get).deletion_protection is True
    assert (
        MailSageConfig.from_context({**prod, "deletion_protection": False}.get).deletion_protection is False
    )
    assert MailSageConfig.from_context({"stage": "dev"}.get).deletion_protection is False


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"max_receive_count": 5}, "must exceed the sender's MAILSAGE_MAX_ATTEMPTS"),
        ({"default_provider": "mailgun"}, "known providers"),
        ({"failover_provider": "ses"}, "other than the default"),
        ({"smtp_relay_secrets": '{"relay": '}, "not valid JSON"),
        ({"smtp_relay_secrets": {"ses": "x"}}, "not 'ses'"),
        ({"sender_identities": ["not an identity"]}, "neither a domain nor an address"),
        ({"allowed_origins": ["app.example.com"]}, "scheme and host"),
        ({"alarm_email": "oncall"}, "not an email address"),
        ({"stage": "Prod!"}, "context 'stage'"),
        ({"sender_max_concurrency": 1}, "between 2 and 1000"),
        ({"api_rate_limit": "fast"}, "must be an integer"),
        ({"deletion_protection": "maybe"}, "true or false"),
    ],
)
def test_bad_context_fails_with_a_clear_error(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        MailSageConfig.from_context(context.get)


def test_missing_layers_say_run_make_build(tmp_path: Path) -> None:
    config = MailSageConfig.from_context({"layers_dir": str(tmp_path / "nowhere")}.get)
    with pytest.raises(LayersNotBuilt, match=re.escape("run `make build` first")):
        config.require_layers()


def test_layer_build_targets_the_runtime_constant_and_leaves_boto3_out() -> None:
    import tomllib

    from infra.build_layers import runtime_requirements

    assert WHEEL_PLATFORMS[ARCHITECTURE] == "manylinux2014_aarch64"
    requirements = runtime_requirements()
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert requirements == [r for r in pinned if not r.lower().startswith("boto3")]
    assert all("==" in r for r in requirements)
    assert not [r for r in requirements if r.lower().startswith(("boto3", "botocore"))]


def test_retention_days_reaches_every_function(build_app: Any) -> None:
    from aws_cdk.assertions import Template

    _, stack = build_app({"retention_days": 30})
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    assert {
        f["Properties"]["Environment"]["Variables"].get("MAILSAGE_RETENTION_DAYS") for f in functions.values()
    } == {"30"}


# --- webhooks, events and signed URLs ----------------------------------------------------------


def test_the_webhooks_function_consumes_the_webhook_queue_in_small_batches(synthesized: Synthesized) -> None:
    from infra.capabilities import WEBHOOKS_BATCH_SIZE

    props = function(synthesized, "webhooks")
    assert props["Timeout"] == 30
    [mapping] = [
        m["Properties"]
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_ids(synthesized)["webhooks"]}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [webhook_queue_id(synthesized), "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == WEBHOOKS_BATCH_SIZE
    # every record of a batch may take the whole webhook timeout, and the batch must still finish
    timeout = WebhooksSettings.model_fields["webhook_timeout_seconds"].default
    assert WEBHOOKS_BATCH_SIZE * timeout < props["Timeout"]


def test_the_webhook_queue_outlasts_every_retry(synthesized: Synthesized) -> None:
    queue = synthesized.data["Resources"][webhook_queue_id(synthesized)]["Properties"]
    max_attempts = WebhooksSettings.model_fields["webhook_max_attempts"].default
    # the function gives a delivery up on its last attempt; the queue dead-letters only after that
    assert queue["RedrivePolicy"]["maxReceiveCount"] > max_attempts
    # the whole default backoff fits in the retention period, and it is at least a day
    defaults = {name: field.default for name, field in WebhooksSettings.model_fields.items()}
    policy = WebhookPolicy(
        retry_base_seconds=defaults["webhook_retry_base_seconds"],
        retry_factor=defaults["webhook_retry_factor"],
        retry_max_seconds=defaults["webhook_retry_max_seconds"],
    )
    backoff = sum(policy.retry_delay(n) for n in range(1, max_attempts))
    assert queue["MessageRetentionPeriod"] >= max(86_400, backoff + max_attempts * 30)
    # one retry delay is a ChangeMessageVisibility: SQS allows at most 12 hours
    assert policy.retry_max_seconds <= 12 * 3600
    assert queue["VisibilityTimeout"] >= function(synthesized, "webhooks")["Timeout"]


def test_event_publishers_know_the_webhook_queue_and_may_send_to_it(synthesized: Synthesized) -> None:
    queue = webhook_queue_id(synthesized)
    for name in FUNCTION_NAMES:
        assert environment(synthesized, name)["MAILSAGE_WEBHOOK_QUEUE_URL"] == {"Ref": queue}, name
    for name in ("api", "sender", "ingest", "events"):
        sends = statements_with(function_statements(synthesized, name), "sqs:SendMessage")
        assert any({"Fn::GetAtt": [queue, "Arn"]} in as_list(st["Resource"]) for st in sends), name


def test_the_webhooks_function_cannot_send_email_read_secrets_or_drop_data(
    synthesized: Synthesized, configured: Synthesized
) -> None:
    for s in (synthesized, configured):
        statements = function_statements(s, "webhooks")
        granted = actions(statements)
        assert not [a for a in granted if a.startswith(("ses:", "secretsmanager:", "scheduler:", "iam:"))]
        assert not {"dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:CreateTable"} & granted
        assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= granted
        assert "sqs:SendMessage" not in granted  # it retries by changing visibility, never re-sending
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
            (statement,) = statements_with(statements, action)
            assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [webhook_queue_id(s), "Arn"]}]


def test_the_signing_secret_is_generated_and_read_by_api_and_sender_only(
    synthesized: Synthesized, configured: Synthesized
) -> None:
    secret_id = signing_secret_id(synthesized)
    secret = synthesized.data["Resources"][secret_id]
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert secret["DeletionPolicy"] == "Delete"
    for name in ("api", "sender"):
        assert environment(synthesized, name)["MAILSAGE_SIGNING_SECRET_NAME"] == {"Ref": secret_id}
        assert {"Ref": secret_id} in secret_resources(function_statements(synthesized, name))
    for name in ("ingest", "events", "webhooks"):
        assert "MAILSAGE_SIGNING_SECRET_NAME" not in environment(synthesized, name)
        assert secret_resources(function_statements(synthesized, name)) == []
    # prod keeps the key: links in delivered mail must stay verifiable
    (prod_secret,) = configured.resources("AWS::SecretsManager::Secret").values()
    assert prod_secret["DeletionPolicy"] == "Retain"


def test_the_sender_knows_the_api_url_for_tracking_links(synthesized: Synthesized) -> None:
    (rest_api,) = synthesized.resources("AWS::ApiGateway::RestApi")
    public_url = environment(synthesized, "sender")["MAILSAGE_PUBLIC_URL"]
    assert refers_to(public_url, rest_api)
    assert json.dumps(public_url).startswith('{"Fn::Join": ["", ["https://"')
    # the api function is what the REST API calls: its own URL would be a dependency cycle
    assert "MAILSAGE_PUBLIC_URL" not in environment(synthesized, "api")
    # the api verifies tracking tokens with the signing key alone, and serves the pixel as binary
    assert "MAILSAGE_SIGNING_SECRET_NAME" in environment(synthesized, "api")
    assert synthesized.resources("AWS::ApiGateway::RestApi")[rest_api]["Properties"]["BinaryMediaTypes"] == [
        "*/*"
    ]


def test_the_webhooks_function_alarms_and_its_dead_letters_alarm(synthesized: Synthesized) -> None:
    webhooks = function_ids(synthesized)["webhooks"]
    watched = {json.dumps([a.get("Dimensions", []), a.get("Metrics", [])]) for a in alarms(synthesized)}
    assert any(webhooks in w for w in watched)
    dlq = synthesized.data["Resources"][webhook_queue_id(synthesized)]["Properties"]["RedrivePolicy"][
        "deadLetterTargetArn"
    ]["Fn::GetAtt"][0]
    assert any(dlq in w for w in watched)
