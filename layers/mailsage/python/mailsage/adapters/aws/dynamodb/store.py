"""The store port on one DynamoDB table (single-table design: TABLE.md next to this package).

What makes it cheap and exact without transactions: the mutable per-message state (status,
attempts, last change, error) does not live on the message items but in one "chunk state" item
per chunk of up to 50 messages, as parallel lists indexed by the message's position in its chunk.
Every message transition is then ONE conditional UpdateItem on that item (`SET statuses[3] = ...
IF statuses[3] = 'sending'`), a claim of a chunk one UpdateItem per 25 messages, and the job's
counts are the chunk states added up: they cannot drift from the statuses, because they are the
statuses.
What a message is (recipient, variables, subject) is written once and never changes: for the
domain's ids (a chunk's ids share a prefix and hold their position) one compressed item per chunk,
found by the prefix; for other ids an item per message. The adapter remembers what it read of them.
What a message accumulates after that (its event log, sent_at, delivered_at) goes to a small
per-message log item, written after the transition it records, so the chunk state stays small; the
send itself writes no log (its time is the state's), nor does the first delivery report after it
(the state holds it, with the send's time: see chunk_layout.py).

Every read of a job's data goes through its head item, which `create_job` writes last: a job whose
creation failed part way is not visible, whatever it left behind (see `create_job`).

boto3 is imported lazily, on first use, never at import time.
"""

from __future__ import annotations

from typing import Any

from mailsage.adapters.aws.dynamodb.accounts import Accounts
from mailsage.adapters.aws.dynamodb.campaigns import Campaigns
from mailsage.adapters.aws.dynamodb.chunks import Chunks
from mailsage.adapters.aws.dynamodb.idempotency import Idempotency
from mailsage.adapters.aws.dynamodb.job_creation import JobCreation
from mailsage.adapters.aws.dynamodb.jobs import Jobs
from mailsage.adapters.aws.dynamodb.listing import MessageListing
from mailsage.adapters.aws.dynamodb.messages import Messages
from mailsage.adapters.aws.dynamodb.pacing import Pacing
from mailsage.adapters.aws.dynamodb.retention import Retention
from mailsage.adapters.aws.dynamodb.suppressions import Suppressions
from mailsage.adapters.aws.dynamodb.templates import Templates
from mailsage.adapters.aws.dynamodb.webhooks import Webhooks


class DynamoStore(
    Accounts,
    Templates,
    JobCreation,
    Jobs,
    Chunks,
    Messages,
    MessageListing,
    Suppressions,
    Idempotency,
    Webhooks,
    Campaigns,
    Retention,
    Pacing,
):
    """Every storage port on one table. Each base class is one aggregate's module and implements
    one port of mailsage/ports/stores.py; they are one class, not one object per aggregate, because
    they share the table client, the remembered immutable items (reads.py) and the chunk-state
    writes (chunk_states.py).

    `retention_seconds`: when set, every item of a job carries `ttl` = created_at + retention
    and DynamoDB deletes the job some time after; reads treat an expired job as gone already. A
    job's own `retention_metadata_days` takes its place for that job."""

    def __init__(
        self, table_name: str, client: Any | None = None, *, retention_seconds: float | None = None
    ) -> None:
        super().__init__(table_name, client)
        self.retention_seconds = retention_seconds
