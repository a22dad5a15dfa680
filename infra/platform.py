"""What every capability builds on: the shared resources (table, queues, scheduling, SES, layers,
the URL signing key), the environment each kind of function needs, and the one way a capability
adds a function.

Capabilities add their functions at the stack's top level (`<Name>Function`), not under a
construct of their own: a resource's logical id is derived from its construct path, and a changed
logical id makes CloudFormation replace the resource (a new function, role and log group) on the
next deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs import acknowledge
from infra.constructs.functions import FunctionSpec, MailSageFunction, SharedLayers
from infra.constructs.queues import Queues
from infra.constructs.scheduling import Scheduling
from infra.constructs.ses import Ses
from infra.constructs.storage import Storage
from infra.reattach import existing_signing_secret, secret_reference


def signing_secret(scope: Construct, config: MailSageConfig) -> secretsmanager.ISecret:
    """The key that signs tracking and unsubscribe URLs: generated once, never leaves Secrets
    Manager; the sender signs with it, the api verifies. A retained one is re-attached by name."""
    existing = existing_signing_secret(scope, "SigningSecret", config)
    if existing is not None:
        return existing
    secret = secretsmanager.Secret(
        scope,
        "SigningSecret",
        description="MailSage: HMAC key signing tracking and one-click unsubscribe URLs",
        generate_secret_string=secretsmanager.SecretStringGenerator(
            password_length=64, exclude_punctuation=True
        ),
        removal_policy=cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY,
    )
    acknowledge(
        secret,
        "AwsSolutions-SMG4",
        "No automatic rotation: the key verifies the tracking and unsubscribe links in mail already "
        "delivered, so rotating it would break every one-click unsubscribe link sent before.",
    )
    return secret


@dataclass(frozen=True)
class Platform:
    stack: cdk.Stack
    config: MailSageConfig
    storage: Storage
    queues: Queues
    scheduling: Scheduling
    ses: Ses
    layers: SharedLayers
    signing_secret: secretsmanager.ISecret

    @classmethod
    def build(cls, stack: cdk.Stack, config: MailSageConfig) -> Platform:
        storage = Storage(stack, "Storage", config=config)
        queues = Queues(stack, "Queues", config=config)
        return cls(
            stack=stack,
            config=config,
            storage=storage,
            queues=queues,
            scheduling=Scheduling(stack, "Scheduling", send_queue=queues.send.queue),
            ses=Ses(
                stack,
                "Ses",
                config=config,
                events_queue=queues.events.queue,
                events_dead_letters=queues.events.dlq,
            ),
            layers=SharedLayers(stack, "Layers", config=config),
            signing_secret=signing_secret(stack, config),
        )

    def function(self, spec: FunctionSpec, environment: dict[str, str]) -> MailSageFunction:
        """A function at the stack's top level with the common environment plus `environment`."""
        return MailSageFunction(
            self.stack,
            f"{spec.name.capitalize()}Function",
            spec=spec,
            config=self.config,
            layers=self.layers,
            environment={**self.common_environment(), **environment},
        )

    # --- environments -------------------------------------------------------------------------

    def common_environment(self) -> dict[str, str]:
        common = {
            "MAILSAGE_BACKEND": "aws",
            "MAILSAGE_TABLE_NAME": self.storage.table.table_name,
            "MAILSAGE_SEND_QUEUE_URL": self.queues.send.queue.queue_url,
            # Where events go for the webhooks function (which itself retries through this queue).
            "MAILSAGE_WEBHOOK_QUEUE_URL": self.queues.webhooks.queue.queue_url,
        }
        if self.config.retention_days:
            common["MAILSAGE_RETENTION_DAYS"] = str(self.config.retention_days)
        return common

    def provider_environment(self) -> dict[str, str]:
        """Provider names, default and failover: the sender uses them, and api and ingest check a
        requested provider against the same names. Only the sender reads the relay secrets."""
        providers = {
            "MAILSAGE_SMTP_RELAYS": json.dumps(dict(self.config.smtp_relay_secrets), sort_keys=True),
            "MAILSAGE_DEFAULT_PROVIDER": self.config.default_provider,
        }
        if self.config.failover_provider:
            providers["MAILSAGE_FAILOVER_PROVIDER"] = self.config.failover_provider
        return providers

    def submitting_environment(self) -> dict[str, str]:
        """api and ingest accept requests: they enqueue now or schedule for later."""
        return {
            **self.provider_environment(),
            "MAILSAGE_SEND_QUEUE_ARN": self.queues.send.queue.queue_arn,
            "MAILSAGE_SCHEDULE_GROUP": self.scheduling.group_name,
            "MAILSAGE_SCHEDULER_ROLE_ARN": self.scheduling.role.role_arn,
            "MAILSAGE_SCHEDULE_DLQ_ARN": self.scheduling.dead_letter_queue.queue_arn,
            "MAILSAGE_DEFAULT_FROM": self.config.default_from,
        }

    def chunk_environment(self) -> dict[str, str]:
        """Functions that enqueue chunks (api, ingest, sender) put transactional ones in the priority
        lane; the send queue (the bulk lane) is in the common environment."""
        return {"MAILSAGE_PRIORITY_QUEUE_URL": self.queues.priority.queue.queue_url}

    def signing_environment(self) -> dict[str, str]:
        return {
            "MAILSAGE_SIGNING_SECRET_NAME": secret_reference(self.signing_secret)
        }  # GetSecretValue takes the ARN or the name

    # --- grants shared by several capabilities ------------------------------------------------

    def grant_enqueue_chunks(self, function: MailSageFunction) -> None:
        """SendMessage on both lanes: submission enqueues, and the sender re-enqueues a chunk's rest
        (paced, throttled or after progress) and a scheduled job's chunks."""
        for work in self.queues.chunks:
            work.queue.grant_send_messages(function.function)

    def grant_publish_events(self, function: MailSageFunction) -> None:
        """Every function that changes a message's status publishes events onto the webhook queue."""
        self.queues.webhooks.queue.grant_send_messages(function.function)

    def grant_signing(self, function: MailSageFunction) -> None:
        """Tracking and unsubscribe URLs: the sender signs them, the api verifies them."""
        self.signing_secret.grant_read(function.function)
