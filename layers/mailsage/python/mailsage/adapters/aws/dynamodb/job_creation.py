"""Creating a job: its messages, content, members, chunk states, campaign entry and, last, its head."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

from mailsage.adapters.aws.dynamodb.chunk_layout import PACKED, PACKED_MARK
from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.codec import item_size, to_json
from mailsage.adapters.aws.dynamodb.keys import (
    ACTIVE_PK,
    BODY_SK,
    CHUNK_MESSAGES_PREFIX,
    CONTENT_SK,
    DATA_SK,
    DAY,
    JOB_OF_ONE,
    Item,
    campaign_key,
    chunk_messages_key,
    head_key,
    index_time,
    job_pk,
    key_of,
    make_key,
    members_key,
    message_key,
    messages_index,
    packed_prefix,
    state_key,
)
from mailsage.adapters.aws.dynamodb.records import BODY_FIELDS
from mailsage.adapters.aws.table import (
    GSI1_PARTITION_KEY,
    GSI1_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from mailsage.domain import job_states
from mailsage.domain.models import Job, Message
from mailsage.errors import Conflict, PayloadTooLarge

log = logging.getLogger(__name__)


def _smaller(text: str) -> str | bytes:
    """The JSON text, or its zlib compression when that is smaller (records.json_text reads both).
    The size check is made on the text: what a job may hold does not depend on how it packs."""
    packed = zlib.compress(text.encode(), 6)
    return packed if len(packed) < len(text.encode()) else text


class JobCreation(TableClient):
    """JobStore.create_job on the table."""

    PACKED_MESSAGES_MAX_BYTES = 65_536  # a chunk whose messages compress to more: an item each
    # A job's content item (and its bodies' item): DynamoDB refuses an item over 400 KB; 10 KB less
    # leaves room for where item_size's estimate differs from DynamoDB's own accounting.
    CONTENT_ITEM_MAX_BYTES = 390 * 1024

    retention_seconds: float | None  # set by the store (see DynamoStore)

    def _metadata_ttl(self, job: Job) -> int | None:
        """When the job's records go: its own retention_metadata_days (0 or None: none of its own,
        as in the embedded store), else the store's retention, else never."""
        if job.retention_metadata_days:
            return int(job.created_at + DAY * job.retention_metadata_days)
        if self.retention_seconds is not None:
            return int(job.created_at + self.retention_seconds)
        return None

    def create_job(self, job: Job, messages: Sequence[Message]) -> None:
        """Messages, content and members first (batches of 25, in parallel), then each chunk state
        only if absent, then the head only if absent. Reads go through the head, so nothing is
        visible before that last write; if any step fails, the job stays invisible: what was
        written is unreachable (its message ids were never handed out) and is overwritten by a
        retry with the same job id, or deleted by the TTL when a retention is configured. Nothing
        is deleted on failure: a concurrent create of the same id (a redelivered ingest record)
        may already reference these keys. A chunk state that exists is kept, never overwritten, so
        that such a duplicate cannot reset the statuses of a job that is already sending.

        With a data retention (`retention_data_days`), the variables and the content's bodies are
        items of their own, so that they can go before the rest (see finish_message)."""
        ids = [m.id for m in messages]
        if len(set(ids)) != len(ids):
            raise ValueError(f"job {job.id!r}: message ids must be unique")
        if self._get(head_key(job.id)) is not None:
            raise Conflict(f"job {job.id!r} already exists")
        ttl = self._metadata_ttl(job)
        separate_data = job.retention_data_days is not None
        by_chunk: dict[int, list[Message]] = {}
        for m in sorted(messages, key=lambda m: (m.chunk, m.seq)):
            by_chunk.setdefault(m.chunk, []).append(m)

        variables = {m.id: to_json(m.variables) for m in messages}
        message_items, prefixes = self._message_items_to_write(job, by_chunk, variables, separate_data, ttl)
        data_items = [
            {**message_key(m.id, DATA_SK), "variables": variables[m.id], TTL_ATTRIBUTE: ttl}
            for m in messages
            if separate_data
        ]
        job_items = self._content_items(job, separate_data, ttl)
        self._check_content_size(job_items)  # before any write: a refused job leaves nothing behind
        for item in job_items:  # a 2 KB template is 3 write units as text, often 1 compressed
            for name in ("content", "body"):
                if name in item:
                    item[name] = _smaller(item[name])
        self._batch_write([*message_items, *data_items, *job_items])
        self._batch_write(
            [
                self._members_item(job, chunk, members, prefixes.get(chunk), ttl)
                for chunk, members in by_chunk.items()
            ]
        )
        self._write_states(job, by_chunk, ttl)
        if job.campaign_id is not None:
            # The job's entry in its campaign (campaign_stats), before the head like everything else:
            # campaign_stats counts only jobs whose head exists. Only if absent: the entry's
            # engagement counters of a job already sending survive a duplicate create.
            campaign = {
                **campaign_key(job.account_id, job.campaign_id, job.id),
                "campaign_id": job.campaign_id,
                "job_id": job.id,
                "created_at": job.created_at,
                TTL_ATTRIBUTE: ttl,
            }
            self._put(campaign, "attribute_not_exists(#pk)")
        if not self._put(self._head_item(job, ttl), "attribute_not_exists(#pk)"):
            raise Conflict(f"job {job.id!r} already exists")

    def _message_items_to_write(
        self,
        job: Job,
        by_chunk: dict[int, list[Message]],
        variables: dict[str, str],
        separate_data: bool,
        ttl: int | None,
    ) -> tuple[list[Item], dict[int, str]]:
        """The items that hold what the messages are: one per packed chunk, else one per message;
        and the prefix of each packed chunk's ids, by chunk."""
        message_items: list[Item] = []
        prefixes: dict[int, str] = {}  # chunk -> its ids' prefix, for the packed chunks
        for chunk, members in by_chunk.items():
            packed = self._packed_messages(job, chunk, members, separate_data, ttl)
            prefix = None if packed is None else packed[PARTITION_KEY].removeprefix(CHUNK_MESSAGES_PREFIX)
            if packed is not None and prefix not in prefixes.values():  # a prefix names one chunk
                prefixes[chunk] = str(prefix)
                message_items.append(packed)
                continue
            message_items += [
                {
                    **message_key(m.id),
                    "job_id": job.id,
                    "account_id": job.account_id,
                    "chunk": chunk,
                    "pos": pos,
                    "seq": m.seq,
                    "email": m.email,
                    "name": m.name,
                    "subject": m.subject,
                    "variables": None if separate_data else variables[m.id],
                    "data_days": job.retention_data_days,
                    PACKED_MARK: job.created_at,  # its chunk state is packed (see chunk_layout)
                    JOB_OF_ONE: True if job.total == 1 else None,
                    TTL_ATTRIBUTE: ttl,
                }
                for pos, m in enumerate(members)
            ]
        return message_items, prefixes

    @staticmethod
    def _content_items(job: Job, separate_data: bool, ttl: int | None) -> list[Item]:
        """The job's content item, and with a data retention its bodies' item apart."""
        content = job.content.to_dict()
        job_items = [
            {
                **make_key(job_pk(job.id), CONTENT_SK),
                "content": to_json({k: v for k, v in content.items() if k not in BODY_FIELDS})
                if separate_data
                else to_json(content),
                "body_separate": True if separate_data else None,
                TTL_ATTRIBUTE: ttl,
            }
        ]
        if separate_data:
            body = to_json({k: content[k] for k in BODY_FIELDS})
            job_items.append({**make_key(job_pk(job.id), BODY_SK), "body": body, TTL_ATTRIBUTE: ttl})
        return job_items

    @staticmethod
    def _members_item(
        job: Job, chunk: int, members: Sequence[Message], prefix: str | None, ttl: int | None
    ) -> Item:
        return {
            **members_key(job.id, chunk),
            # a packed chunk's ids are its prefix and the positions (see member_ids)
            "ids": None if prefix is not None else [m.id for m in members],
            "prefix": prefix,
            "emails": [m.email.lower() for m in members],
            "account_id": job.account_id,
            "created_at": job.created_at,
            # the account's messages, newest first (list_messages): one entry per chunk
            GSI1_PARTITION_KEY: messages_index(job.account_id),
            GSI1_SORT_KEY: f"{index_time(job.created_at)}#{job.id}#{chunk:06d}",
            TTL_ATTRIBUTE: ttl,
        }

    def _write_states(self, job: Job, by_chunk: dict[int, list[Message]], ttl: int | None) -> None:
        """Each chunk state (packed) only if absent: one that exists is kept (see create_job)."""
        states = [
            {
                **state_key(job.id, chunk),
                PACKED_MARK: job.created_at,
                "s": [PACKED.code(m.status.value) for m in members],
                "a": [0] * len(members),
                "c": [0] * len(members),
                # set for the messages created suppressed
                "ec": {str(p): m.error_code for p, m in enumerate(members) if m.error_code is not None},
                "em": {str(p): m.error_message for p, m in enumerate(members) if m.error_message is not None},
                TTL_ATTRIBUTE: ttl,
            }
            for chunk, members in by_chunk.items()
        ]
        written = self._in_parallel(lambda state: self._put(state, "attribute_not_exists(#pk)"), states)
        kept = [state for state, was_written in zip(states, written, strict=True) if not was_written]
        if kept:
            self._check_kept_states(job.id, kept)

    @staticmethod
    def _head_item(job: Job, ttl: int | None) -> Item:
        """The head, written last: every read of the job goes through it."""
        active = job.state in job_states.ACTIVE
        return {
            **head_key(job.id),
            "account_id": job.account_id,
            "kind": job.kind,
            "state": job.state.value,
            "total": job.total,
            "chunks": job.chunks,
            "campaign_id": job.campaign_id,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "dead_letters": list(job.dead_letters),
            "first_attempt_at": job.first_attempt_at,
            "expires_at": job.expires_at,
            "retention_metadata_days": job.retention_metadata_days,
            "retention_data_days": job.retention_data_days,
            GSI1_PARTITION_KEY: ACTIVE_PK if active else None,
            GSI1_SORT_KEY: job.id if active else None,
            TTL_ATTRIBUTE: ttl,
        }

    def _check_content_size(self, items: Sequence[Item]) -> None:
        """PayloadTooLarge if an item holding the job's content would not fit one DynamoDB item
        (BatchWriteItem would refuse it with a ValidationException, an opaque 500 to the caller).
        The API's limits (bodies, attachments) are checked on decoded sizes; what is stored is JSON,
        attachments in base64, so a request within them can still be too large here."""
        limit = self.CONTENT_ITEM_MAX_BYTES
        size = max(item_size(item) for item in items)
        if size > limit:
            raise PayloadTooLarge(
                f"the message content and attachments are {size} bytes stored (attachments in base64);"
                f" this deployment stores at most {limit} bytes ({limit // 1024} KB) per job"
                " (DynamoDB's item limit): send large files as links",
                {"stored_bytes": size, "max": limit},
            )

    def _packed_messages(
        self, job: Job, chunk: int, members: Sequence[Message], separate_data: bool, ttl: int | None
    ) -> Item | None:
        """The item that holds a chunk's messages, if their ids are its packed ids (new_message_ids)
        and the item stays small enough (PACKED_MESSAGES_MAX_BYTES compressed); else None, and the
        chunk's messages get an item each. Variables stay apart with a data retention."""
        prefix = packed_prefix([m.id for m in members])
        if prefix is None:
            return None
        rows = [[m.seq, m.email, m.name, m.subject, None if separate_data else m.variables] for m in members]
        packed = zlib.compress(to_json(rows).encode(), 6)
        if len(packed) > self.PACKED_MESSAGES_MAX_BYTES:
            return None
        return {
            **chunk_messages_key(prefix),
            "job_id": job.id,
            "account_id": job.account_id,
            "chunk": chunk,
            "rows": packed,
            "data_days": job.retention_data_days,
            PACKED_MARK: job.created_at,  # its chunk state is packed (see chunk_layout)
            JOB_OF_ONE: True if job.total == 1 else None,
            TTL_ATTRIBUTE: ttl,
        }

    def _check_kept_states(self, job_id: str, kept: list[Item]) -> None:
        """Chunk states an earlier (failed) or concurrent create of this job id wrote first. They
        are used as they are, which is only right for the same messages: the same number per
        chunk. Anything else is a different request reusing the job id."""
        current = self._batch_get([make_key(s[PARTITION_KEY], s[SORT_KEY]) for s in kept], consistent=True)
        for state in kept:
            existing = current.get(key_of(state))
            if existing is None or len(existing["statuses"]) != len(state["s"]):
                raise Conflict(f"job {job_id!r} is being created with other messages by another call")
        log.warning("job %s: kept %d chunk states an earlier or concurrent create wrote", job_id, len(kept))
