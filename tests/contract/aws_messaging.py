"""Queue and scheduler factories for the AWS adapters (SQS, EventBridge Scheduler under moto),
merged into conftest.QUEUES and conftest.SCHEDULERS.

Each factory starts its own `moto.mock_aws()` with a region and fake credentials (the previous
environment is restored afterwards), creates what the infrastructure would (queues and redrive
policy, a schedule group) and yields the adapter, which creates its boto3 client lazily inside the
mock. Queues are fresh and small per test: moto's SQS slows down as a queue fills.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from mailsage.ports import Queue, Scheduler
from tests.moto_env import REGION, mocked_aws

SCHEDULE_GROUP = "mailsage-contract"

# Queue timing per adapter, for test_queue_contract's `queue_config`: SQS visibility timeouts are
# whole seconds, so the contract's sub-second timeout becomes 1 s (its assertions scale with it).
VISIBILITY_TIMEOUTS: dict[str, float] = {"sqs": 1.0, "laned-sqs": 1.0}


@contextmanager
def atomic_moto_receives() -> Iterator[None]:
    """Make moto's ReceiveMessage atomic across threads, as SQS's is.

    moto checks a message's visibility and marks it received without a lock, so two threads
    receiving at once can both get it (the contract's racing-receivers test shows it); SQS hides a
    received message from every other consumer for the visibility timeout. Each poll runs under one
    lock here; a long poll waits between polls outside the lock, so other threads keep going."""
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message
    lock = threading.Lock()

    def receive_message(
        backend: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with lock:
                result = original(backend, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if result or remaining <= 0:
                return result
            time.sleep(min(remaining, 0.05))

    with mock.patch.object(SQSBackend, "receive_message", receive_message):
        yield


@contextmanager
def _sqs_queue(tmp_path: Path, config: Any) -> Iterator[Queue]:
    import boto3

    from mailsage.adapters.aws.sqs_queue import SqsQueue

    visibility = config.visibility_timeout
    if visibility != int(visibility) or visibility < 0:
        # Rounding here would silently change what the contract tests measure.
        raise ValueError(f"SQS visibility timeouts are whole seconds, got {visibility}")
    with mocked_aws(), atomic_moto_receives():
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="contract-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName="contract",
            Attributes={
                "VisibilityTimeout": str(int(visibility)),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": config.max_receives}
                ),
            },
        )["QueueUrl"]
        yield SqsQueue(queue_url, dead_letter_url=dlq_url)


@contextmanager
def _eventbridge_scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID as account

    from mailsage.adapters.aws.eventbridge_scheduler import EventBridgeScheduler

    with mocked_aws():
        boto3.client("scheduler", region_name=REGION).create_schedule_group(Name=SCHEDULE_GROUP)
        yield EventBridgeScheduler(
            group_name=SCHEDULE_GROUP,
            target_arn=f"arn:aws:sqs:{REGION}:{account}:contract-send",
            role_arn=f"arn:aws:iam::{account}:role/mailsage-scheduler",
            dead_letter_arn=f"arn:aws:sqs:{REGION}:{account}:contract-schedule-dlq",
        )


QUEUES: dict[str, Callable[[Path, Any], AbstractContextManager[Queue]]] = {"sqs": _sqs_queue}
SCHEDULERS: dict[str, Callable[[Path], AbstractContextManager[Scheduler]]] = {
    "eventbridge": _eventbridge_scheduler
}
