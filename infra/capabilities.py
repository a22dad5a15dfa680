"""The capabilities MailSage deploys, one class each: it owns its function, that function's
environment and every grant the function needs, so "who may do what" reads in one place per
function (see infra/platform.py for why the functions sit at the stack's top level).

- `HttpApi`: the api function and the REST API in front of it.
- `Sending`: the sender, consuming the send queue, sending through SES or an SMTP relay.
- `Ingest`: send requests dropped on the ingest queue.
- `Feedback`: SES notifications applied to message status (the events function).
- `WebhookDelivery`: signed events posted to customer endpoints.
"""

from __future__ import annotations

import json

from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager

from infra.constructs.api import Api
from infra.constructs.functions import API, EVENTS, INGEST, SENDER, WEBHOOKS, MailSageFunction
from infra.platform import Platform

# SQS consumers: records per invocation and the most concurrent invocations per event source.
SENDER_BATCH_SIZE = 5  # chunks of up to 50 messages: up to 250 sends per invocation
INGEST_BATCH_SIZE, INGEST_MAX_CONCURRENCY = 10, 5
EVENTS_BATCH_SIZE, EVENTS_MAX_CONCURRENCY = 10, 5
# Delivery notifications gather for up to 10 s: about ten per invocation instead of one at a
# steady 1-14/s (fewer invocations, log lines and traces); statuses and webhooks lag by <= 10 s.
EVENTS_BATCHING_WINDOW_S = 10
# Each webhook record is one POST that may take the whole webhook timeout (10 s): two fit in the
# function's 30 s with room to spare. The concurrency bounds how hard MailSage hits endpoints.
WEBHOOKS_BATCH_SIZE, WEBHOOKS_MAX_CONCURRENCY = 2, 10


class HttpApi:
    """api: store, enqueue, schedule, verify signed URLs. It cannot send email."""

    def __init__(self, platform: Platform) -> None:
        config = platform.config
        # The gateway answers CORS preflights; the function adds the headers to its own replies.
        self.function: MailSageFunction = platform.function(
            API,
            {
                **platform.submitting_environment(),
                **platform.chunk_environment(),
                **platform.signing_environment(),
                "MAILSAGE_ALLOWED_ORIGINS": json.dumps(list(config.allowed_origins)),
                "MAILSAGE_ACCOUNT_RATE_LIMIT": str(config.account_rate[0]),
                "MAILSAGE_ACCOUNT_RATE_BURST": str(config.account_rate[1]),
                # What still fits Lambda's payload limit once the gateway has base64-encoded it.
                "MAILSAGE_MAX_REQUEST_BYTES": str(config.max_request_bytes),
                # The team's own domain is a plain string, not a reference to the REST API, so the
                # api may know it (and build the same links the sender does) without a cycle.
                **(
                    {"MAILSAGE_PUBLIC_URL": config.custom_domain.url}
                    if config.custom_domain is not None
                    else {}
                ),
            },
        )
        handler = self.function.function
        platform.storage.grant_read_write_data(handler)
        platform.grant_enqueue_chunks(self.function)
        platform.scheduling.grant_schedule_management(handler)
        platform.grant_publish_events(self.function)
        platform.grant_signing(self.function)
        self.gateway = Api(platform.stack, "Api", config=config, handler=handler)

    @property
    def url(self) -> str:
        """The base of every link in mail: the team's own domain when there is one (links survive
        a replaced API), otherwise the stage's execute-api URL."""
        domain = self.gateway.config.custom_domain
        return domain.url if domain is not None else self.gateway.rest_api.url


class Sending:
    """sender: store (the pacer's shared state is items of the same table), consume both lanes
    (incl. ChangeMessageVisibility for delayed retries) and re-enqueue chunks to them, read the SES
    quota and send through SES with this configuration set, read the named SMTP relay secrets,
    sign URLs."""

    def __init__(self, platform: Platform, *, public_url: str) -> None:
        config = platform.config
        self.function: MailSageFunction = platform.function(
            SENDER,
            {
                **platform.provider_environment(),
                **platform.chunk_environment(),
                **platform.signing_environment(),
                **_rate_environment(config.ses_max_rate),
                "MAILSAGE_SES_CONFIGURATION_SET": platform.ses.configuration_set_name,
                # Written into tracking pixels, links and List-Unsubscribe. Without a custom domain
                # only the sender gets it: the api function is behind the REST API, so giving it
                # the execute-api URL would be a cycle.
                "MAILSAGE_PUBLIC_URL": public_url,
            },
        )
        handler = self.function.function
        platform.storage.grant_read_write_data(handler)
        platform.queues.send.consume_with(
            handler, batch_size=SENDER_BATCH_SIZE, max_concurrency=config.sender_max_concurrency
        )
        # Its own event source: its senders are never all busy with a campaign's chunks.
        platform.queues.priority.consume_with(
            handler, batch_size=SENDER_BATCH_SIZE, max_concurrency=config.sender_priority_concurrency
        )
        platform.grant_enqueue_chunks(self.function)
        platform.ses.grant_send(handler)
        # The quota the pacer keeps every sender under (MaxSendRate). GetAccount has no resource type.
        handler.add_to_role_policy(iam.PolicyStatement(actions=["ses:GetAccount"], resources=["*"]))
        for relay, secret_name in sorted(config.smtp_relay_secrets.items()):
            secret = secretsmanager.Secret.from_secret_name_v2(
                platform.stack, f"Relay{relay.capitalize()}Secret", secret_name
            )
            secret.grant_read(handler)
        platform.grant_publish_events(self.function)
        platform.grant_signing(self.function)


class Ingest:
    """ingest: store, consume the ingest queue (invalid records go to its DLQ with the reason),
    enqueue, schedule. It submits like the api but serves no URL, so it holds no signing key."""

    def __init__(self, platform: Platform) -> None:
        queues = platform.queues
        self.function: MailSageFunction = platform.function(
            INGEST,
            {
                **platform.submitting_environment(),
                **platform.chunk_environment(),
                "MAILSAGE_INGEST_DLQ_URL": queues.ingest.dlq.queue_url,
            },
        )
        handler = self.function.function
        platform.storage.grant_read_write_data(handler)
        queues.ingest.consume_with(
            handler, batch_size=INGEST_BATCH_SIZE, max_concurrency=INGEST_MAX_CONCURRENCY
        )
        queues.ingest.dlq.grant_send_messages(handler)
        platform.grant_enqueue_chunks(self.function)
        platform.scheduling.grant_schedule_management(handler)
        platform.grant_publish_events(self.function)


def _rate_environment(ses_max_rate: float | None) -> dict[str, str]:
    """MAILSAGE_SES_MAX_RATE only when the context lowers the rate: unset, the sender paces to the
    quota SES reports."""
    return {} if ses_max_rate is None else {"MAILSAGE_SES_MAX_RATE": f"{ses_max_rate:g}"}


class Feedback:
    """events: store, consume the events queue (SES notifications), publish the resulting events."""

    def __init__(self, platform: Platform) -> None:
        self.function: MailSageFunction = platform.function(EVENTS, {})
        handler = self.function.function
        platform.storage.grant_read_write_data(handler)
        platform.queues.events.consume_with(
            handler,
            batch_size=EVENTS_BATCH_SIZE,
            max_concurrency=EVENTS_MAX_CONCURRENCY,
            batching_window_s=EVENTS_BATCHING_WINDOW_S,
        )
        platform.grant_publish_events(self.function)


class WebhookDelivery:
    """webhooks: store (webhooks, their counters and delivery log), consume the webhook queue
    (ChangeMessageVisibility delays its retries). No email, no other queue, no secret."""

    def __init__(self, platform: Platform) -> None:
        self.function: MailSageFunction = platform.function(WEBHOOKS, {})
        handler = self.function.function
        platform.storage.grant_read_write_data(handler)
        platform.queues.webhooks.consume_with(
            handler, batch_size=WEBHOOKS_BATCH_SIZE, max_concurrency=WEBHOOKS_MAX_CONCURRENCY
        )
