"""Other systems' requests on a laptop: the real ingest function over the embedded queue, fed by
`mailsage ingest FILE` (JSON lines), and over an SQS queue when MAILSAGE_INGEST_QUEUE_URL names one
(with AWS_ENDPOINT_URL for an SQS-compatible server). Invalid records go to the local dead-letter
list (the `ingest-dlq` queue) with the reason, as the stack's ingest dead-letter queue holds them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.ports import Queue
from mailsage.wiring import Backends

INGEST_QUEUE = "ingest"
DEAD_LETTERS = "ingest-dlq"  # where the ingest function puts what it rejects (wiring.ingest_service)
SEND_BATCH = 500


def local_queues(backends: Backends) -> tuple[SqliteQueue, SqliteQueue]:
    """The embedded ingest queue and its dead-letter list, in the data directory's database."""
    store = backends.store
    assert isinstance(store, SqliteStore)
    return SqliteQueue(store.db, INGEST_QUEUE), SqliteQueue(store.db, DEAD_LETTERS)


def sqs_ingest_queue() -> Queue | None:
    """The SQS queue MAILSAGE_INGEST_QUEUE_URL names, polled like the stack's event source."""
    url = os.environ.get("MAILSAGE_INGEST_QUEUE_URL")
    if not url:
        return None
    try:
        from mailsage.adapters.aws.sqs_queue import SqsQueue
    except ImportError:  # boto3 is not part of the light local install
        raise ValueError("MAILSAGE_INGEST_QUEUE_URL needs boto3: pip install -e '.[aws]'") from None
    return SqsQueue(url)


def records_of(lines: Iterable[str]) -> list[dict[str, Any]]:
    """One record per non-blank line. A line that is not a JSON object is kept as it is
    (`raw_body`, as an SQS body that is not JSON arrives) so the ingest function rejects it with
    its reason, into the dead-letter list, like any other invalid record."""
    records = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        records.append(value if isinstance(value, dict) else {"raw_body": text})
    return records


def enqueue(queue: Queue, records: list[dict[str, Any]]) -> int:
    for start in range(0, len(records), SEND_BATCH):
        queue.send(records[start : start + SEND_BATCH])
    return len(records)


def dead_letter_listing(dead_letters: SqliteQueue) -> list[dict[str, Any]]:
    """What the ingest function rejected: the record, why, and when."""
    return [{**entry["body"], "at": entry["sent_at"]} for entry in dead_letters.waiting()]
