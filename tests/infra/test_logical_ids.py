"""Logical ids of the resources that hold state or an address, pinned.

A resource's logical id comes from its construct path: moving a construct (a refactor of the stack)
changes it, and CloudFormation then replaces the resource on the next deploy: a new, empty table
or queue, a new signing key (every tracking and unsubscribe link in delivered mail stops
verifying), a new REST API id (a new URL for every link already sent). Change an id here only with
a migration plan.
"""

from __future__ import annotations

from tests.infra.conftest import Synthesized

STATEFUL_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::SNS::Topic",
    "AWS::SES::ConfigurationSet",
    "AWS::SES::EmailIdentity",
    "AWS::ApiGateway::RestApi",
)

PINNED = {
    "StorageTableB43FDCE7",
    "QueuesSendQueue0BDF6128",
    "QueuesSendDeadLettersF39D43A6",
    "QueuesPriorityQueue668CF19D",
    "QueuesPriorityDeadLetters32218A4D",
    "QueuesIngestQueue0C0F4024",
    "QueuesIngestDeadLetters1A637C5B",
    "QueuesEventsQueueDD24C13C",
    "QueuesEventsDeadLetters59598A81",
    "QueuesWebhooksQueue9EA20A36",
    "QueuesWebhooksDeadLetters2C0994B6",
    "SchedulingDeadLettersD564B8FB",
    "SchedulingGroupF9AE2582",
    "SigningSecretCF7EC744",
    "ApiRestApiE35FEAFE",
    "ApiAccessLogs50B185DB",
    "ApiFunctionLogsA98C1C37",
    "SenderFunctionLogs9EC11552",
    "IngestFunctionLogsF4222A5F",
    "EventsFunctionLogsF2744197",
    "WebhooksFunctionLogs6BBDD086",
    "MonitoringAlarmTopicAF62D4F1",
    "SesEventsTopic6239202B",
    "SesConfigurationSet74E7EAAF",
}
# Identities exist only when sender_identities names them (the configured stack).
PINNED_IDENTITIES = {"SesIdentityMailExampleComCDBFF120", "SesIdentityAlertsExampleOrgFD936EEA"}


def stateful_ids(s: Synthesized) -> set[str]:
    return {logical_id for type_ in STATEFUL_TYPES for logical_id in s.resources(type_)}


def test_stateful_resources_keep_their_logical_ids(synthesized: Synthesized) -> None:
    # Given the stack with cdk.json's defaults
    # When its stateful resources are listed
    # Then each has the logical id it was deployed with, and none is new or gone unnoticed
    assert stateful_ids(synthesized) == PINNED


def test_sender_identities_keep_their_logical_ids(configured: Synthesized) -> None:
    # Given the stack with every optional feature on
    # Then its stateful resources are the same ones, plus the two named identities
    assert stateful_ids(configured) == PINNED | PINNED_IDENTITIES
