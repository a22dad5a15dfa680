"""The work queues (send and priority, the two lanes of chunks; ingest, events, webhooks), each with
its dead-letter queue, and the one way a function consumes a queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs.functions import EVENTS, INGEST, SENDER, WEBHOOKS, FunctionSpec

# AWS's guidance for Lambda consumers: visibility timeout at least six times the function timeout,
# so a message is not redelivered while a (retried) invocation still holds it.
VISIBILITY_FACTOR = 6
# How long a message may wait in a work queue. It must hold a webhook delivery through its whole
# backoff (about 15 hours with the default MAILSAGE_WEBHOOK_* settings).
RETENTION = cdk.Duration.days(4)


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """A dead-letter queue: kept 14 days (the most SQS allows) for someone to inspect and redrive."""
    return sqs.Queue(
        scope,
        construct_id,
        retention_period=cdk.Duration.days(14),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )


class WorkQueue(Construct):
    """A queue consumed by one function, dead-lettered after `max_receive_count` receives."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        consumer: FunctionSpec,
        config: MailSageConfig,
        max_receive_count: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.consumer = consumer
        self.dlq = dead_letter_queue(self, "DeadLetters")
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=cdk.Duration.seconds(consumer.timeout_seconds * VISIBILITY_FACTOR),
            retention_period=RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=max_receive_count or config.max_receive_count
            ),
        )

    def consume_with(
        self,
        function: lambda_.IFunction,
        *,
        batch_size: int,
        max_concurrency: int,
        batching_window_s: int = 0,
    ) -> None:
        """Attach the consumer. The event source grants ReceiveMessage, DeleteMessage and
        ChangeMessageVisibility on this queue only (the sender delays retries through the latter).
        `batching_window_s`: how long records may gather before an invocation (0: none)."""
        function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=batch_size,
                report_batch_item_failures=True,
                max_concurrency=max_concurrency,
                max_batching_window=cdk.Duration.seconds(batching_window_s) if batching_window_s else None,
            )
        )


class Queues(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: MailSageConfig) -> None:
        super().__init__(scope, construct_id)
        self.send = WorkQueue(self, "Send", consumer=SENDER, config=config)  # bulk: campaigns, batches
        # Transactional chunks (a single send): their own queue and event source, so they never wait
        # behind a campaign's backlog in the send queue.
        self.priority = WorkQueue(self, "Priority", consumer=SENDER, config=config)
        self.ingest = WorkQueue(self, "Ingest", consumer=INGEST, config=config)
        self.events = WorkQueue(self, "Events", consumer=EVENTS, config=config)
        # The webhooks function retries a delivery through this queue (ChangeMessageVisibility, up to
        # 6 h a time) and gives it up itself; the redrive only catches what it never got to finish.
        self.webhooks = WorkQueue(
            self,
            "Webhooks",
            consumer=WEBHOOKS,
            config=config,
            max_receive_count=config.webhook_max_receive_count,
        )

    @property
    def all(self) -> dict[str, WorkQueue]:
        return {
            "send": self.send,
            "priority": self.priority,
            "ingest": self.ingest,
            "events": self.events,
            "webhooks": self.webhooks,
        }

    @property
    def chunks(self) -> tuple[WorkQueue, WorkQueue]:
        """The queues chunk records go to: every producer may send to both lanes."""
        return self.send, self.priority
