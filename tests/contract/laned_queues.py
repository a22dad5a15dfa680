"""LanedQueue factories for the queue contract, merged into conftest.QUEUES: the transactional and
bulk lanes as two SQLite queues in one database, and as two SQS queues (each with its dead-letter
queue) under moto. Bodies without a lane go to the bulk queue, so the contract exercises the
LanedQueue's receive, receipts and waits over both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from mailsage.adapters.lanes import LanedQueue
from mailsage.ports import Queue
from tests.contract.aws_messaging import atomic_moto_receives
from tests.moto_env import REGION, mocked_aws


@contextmanager
def laned_sqlite(tmp_path: Path, config: Any) -> Iterator[LanedQueue]:
    from mailsage.adapters.sqlite.db import Database
    from mailsage.adapters.sqlite.queue import SqliteQueue

    db = Database(tmp_path / "laned.sqlite3")
    try:
        yield LanedQueue(
            *(
                SqliteQueue(
                    db, name, visibility_timeout=config.visibility_timeout, max_receives=config.max_receives
                )
                for name in ("contract-priority", "contract")
            )
        )
    finally:
        db.close()


def _sqs_with_dead_letters(sqs: Any, name: str, config: Any) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(int(config.visibility_timeout)),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": config.max_receives}
            ),
        },
    )["QueueUrl"]
    return url, dlq_url


@contextmanager
def laned_sqs(tmp_path: Path, config: Any) -> Iterator[LanedQueue]:
    import boto3

    from mailsage.adapters.aws.sqs_queue import SqsQueue

    if config.visibility_timeout != int(config.visibility_timeout):
        raise ValueError(f"SQS visibility timeouts are whole seconds, got {config.visibility_timeout}")
    with mocked_aws(), atomic_moto_receives():
        sqs = boto3.client("sqs", region_name=REGION)
        priority, bulk = (
            _sqs_with_dead_letters(sqs, name, config) for name in ("contract-priority", "contract")
        )
        yield LanedQueue(
            SqsQueue(priority[0], dead_letter_url=priority[1]), SqsQueue(bulk[0], dead_letter_url=bulk[1])
        )


QUEUES: dict[str, Callable[[Path, Any], AbstractContextManager[Queue]]] = {
    "laned-sqlite": laned_sqlite,
    "laned-sqs": laned_sqs,
}
