"""The MailSage stack: composes the capability constructs, wires each function's environment and
grants it exactly what it uses. Environment-agnostic: it synthesizes without credentials."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs import acknowledge
from infra.constructs.api import Api
from infra.constructs.functions import (
    API,
    EVENTS,
    INGEST,
    SENDER,
    WEBHOOKS,
    FunctionSpec,
    MailSageFunction,
    SharedLayers,
)
from infra.constructs.monitoring import Monitoring
from infra.constructs.queues import Queues
from infra.constructs.scheduling import Scheduling
from infra.constructs.ses import Ses
from infra.constructs.storage import Storage

# SQS consumers: records per invocation and the most concurrent invocations per event source.
SENDER_BATCH_SIZE = 5  # chunks of up to 50 messages: up to 250 sends per invocation
INGEST_BATCH_SIZE, INGEST_MAX_CONCURRENCY = 10, 5
EVENTS_BATCH_SIZE, EVENTS_MAX_CONCURRENCY = 10, 5
# Each webhook record is one POST that may take the whole webhook timeout (10 s): two fit in the
# function's 30 s with room to spare. The concurrency bounds how hard MailSage hits endpoints.
WEBHOOKS_BATCH_SIZE, WEBHOOKS_MAX_CONCURRENCY = 2, 10


class MailSageStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: MailSageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        storage = Storage(self, "Storage", config=config)
        queues = Queues(self, "Queues", config=config)
        scheduling = Scheduling(self, "Scheduling", send_queue=queues.send.queue)
        ses = Ses(self, "Ses", config=config, events_queue=queues.events.queue)
        layers = SharedLayers(self, "Layers", config=config)
        # The key that signs tracking and unsubscribe URLs: generated once, never leaves Secrets
        # Manager; the sender signs with it, the api verifies.
        signing_secret = secretsmanager.Secret(
            self,
            "SigningSecret",
            description="MailSage: HMAC key signing tracking and one-click unsubscribe URLs",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY,
        )
        acknowledge(
            signing_secret,
            "AwsSolutions-SMG4",
            "No automatic rotation: the key verifies the tracking and unsubscribe links in mail already "
            "delivered, so rotating it would break every one-click unsubscribe link sent before.",
        )

        common = {
            "MAILSAGE_BACKEND": "aws",
            "MAILSAGE_TABLE_NAME": storage.table.table_name,
            "MAILSAGE_SEND_QUEUE_URL": queues.send.queue.queue_url,
            # Where events go for the webhooks function (which itself retries through this queue).
            "MAILSAGE_WEBHOOK_QUEUE_URL": queues.webhooks.queue.queue_url,
        }
        if config.retention_days:
            common["MAILSAGE_RETENTION_DAYS"] = str(config.retention_days)
        # Provider names, default and failover: the sender uses them, and api and ingest check a
        # requested provider against the same names. Only the sender reads the relay secrets.
        providers = {
            "MAILSAGE_SMTP_RELAYS": json.dumps(dict(config.smtp_relay_secrets), sort_keys=True),
            "MAILSAGE_DEFAULT_PROVIDER": config.default_provider,
        }
        if config.failover_provider:
            providers["MAILSAGE_FAILOVER_PROVIDER"] = config.failover_provider
        submitting = {  # api and ingest accept requests: they enqueue now or schedule for later
            **providers,
            "MAILSAGE_SEND_QUEUE_ARN": queues.send.queue.queue_arn,
            "MAILSAGE_SCHEDULE_GROUP": scheduling.group_name,
            "MAILSAGE_SCHEDULER_ROLE_ARN": scheduling.role.role_arn,
            "MAILSAGE_SCHEDULE_DLQ_ARN": scheduling.dead_letter_queue.queue_arn,
            "MAILSAGE_DEFAULT_FROM": config.default_from,
        }
        signing = {"MAILSAGE_SIGNING_SECRET_NAME": signing_secret.secret_arn}  # GetSecretValue takes the ARN
        sending = {**providers, **signing, "MAILSAGE_SES_CONFIGURATION_SET": ses.configuration_set_name}
        ingesting = {**submitting, "MAILSAGE_INGEST_DLQ_URL": queues.ingest.dlq.queue_url}

        def function(spec: FunctionSpec, environment: dict[str, str]) -> MailSageFunction:
            return MailSageFunction(
                self,
                f"{spec.name.capitalize()}Function",
                spec=spec,
                config=config,
                layers=layers,
                environment={**common, **environment},
            )

        # The gateway answers CORS preflights; the function adds the headers to its own replies.
        api = function(
            API,
            {
                **submitting,
                **signing,
                "MAILSAGE_ALLOWED_ORIGINS": json.dumps(list(config.allowed_origins)),
            },
        )
        sender = function(SENDER, sending)
        ingest = function(INGEST, ingesting)
        events = function(EVENTS, {})
        webhooks = function(WEBHOOKS, {})

        # api: store, enqueue, schedule. It cannot send email.
        storage.grant_read_write_data(api.function)
        queues.send.queue.grant_send_messages(api.function)
        scheduling.grant_schedule_management(api.function)

        # sender: store, consume the send queue (incl. ChangeMessageVisibility for delayed retries),
        # send through SES with this configuration set, read the named SMTP relay secrets.
        storage.grant_read_write_data(sender.function)
        queues.send.consume_with(
            sender.function, batch_size=SENDER_BATCH_SIZE, max_concurrency=config.sender_max_concurrency
        )
        ses.grant_send(sender.function)
        for relay, secret_name in sorted(config.smtp_relay_secrets.items()):
            secret = secretsmanager.Secret.from_secret_name_v2(
                self, f"Relay{relay.capitalize()}Secret", secret_name
            )
            secret.grant_read(sender.function)

        # ingest: store, consume the ingest queue (invalid records go to its DLQ with the reason),
        # enqueue, schedule.
        storage.grant_read_write_data(ingest.function)
        queues.ingest.consume_with(
            ingest.function, batch_size=INGEST_BATCH_SIZE, max_concurrency=INGEST_MAX_CONCURRENCY
        )
        queues.ingest.dlq.grant_send_messages(ingest.function)
        queues.send.queue.grant_send_messages(ingest.function)
        scheduling.grant_schedule_management(ingest.function)

        # events: store, consume the events queue.
        storage.grant_read_write_data(events.function)
        queues.events.consume_with(
            events.function, batch_size=EVENTS_BATCH_SIZE, max_concurrency=EVENTS_MAX_CONCURRENCY
        )

        # Every function that changes a message's status publishes events onto the webhook queue.
        for publisher in (api, sender, ingest, events):
            queues.webhooks.queue.grant_send_messages(publisher.function)
        # Tracking and unsubscribe URLs: the sender signs them, the api verifies them (ingest
        # submits like the api but serves no URL).
        for reader in (api, sender):
            signing_secret.grant_read(reader.function)

        # webhooks: store (webhooks, their counters and delivery log), consume the webhook queue
        # (ChangeMessageVisibility delays its retries). No email, no other queue, no secret.
        storage.grant_read_write_data(webhooks.function)
        queues.webhooks.consume_with(
            webhooks.function, batch_size=WEBHOOKS_BATCH_SIZE, max_concurrency=WEBHOOKS_MAX_CONCURRENCY
        )

        http = Api(self, "Api", config=config, handler=api.function)
        # The sender writes the API's URL into tracking pixels, links and List-Unsubscribe. Only the
        # sender: the api function is behind the REST API, so giving it the URL would be a cycle.
        sender.function.add_environment("MAILSAGE_PUBLIC_URL", http.rest_api.url)
        self.functions = {
            "api": api,
            "sender": sender,
            "ingest": ingest,
            "events": events,
            "webhooks": webhooks,
        }
        monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            functions={name: f.function for name, f in self.functions.items()},
            queues=queues.all,
            schedule_dead_letters=scheduling.dead_letter_queue,
            rest_api=http.rest_api,
        )

        # The API's base URL is output by LambdaRestApi itself (ApiRestApiEndpoint...).
        cdk.CfnOutput(self, "IngestQueueUrl", value=queues.ingest.queue.queue_url)
        cdk.CfnOutput(self, "IngestQueueArn", value=queues.ingest.queue.queue_arn)
        cdk.CfnOutput(self, "ConfigurationSetName", value=ses.configuration_set_name)
        cdk.CfnOutput(self, "AlarmTopicArn", value=monitoring.alarm_topic.topic_arn)
        cdk.CfnOutput(self, "TableName", value=storage.table.table_name)
        cdk.CfnOutput(self, "WebhookQueueUrl", value=queues.webhooks.queue.queue_url)
