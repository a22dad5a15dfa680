"""The store port on one DynamoDB table (single-table design: TABLE.md next to this file).

What makes it cheap and exact without transactions: the mutable per-message state (status,
attempts, last change, error) does not live on the message items but in one "chunk state" item
per chunk of up to 50 messages, as parallel lists indexed by the message's position in its chunk.
Every message transition is then ONE conditional UpdateItem on that item (`SET statuses[3] = ...
IF statuses[3] = 'sending'`), a claim of a chunk one UpdateItem per 25 messages, and the job's
counts are the chunk states added up: they cannot drift from the statuses, because they are the
statuses.
Message items (recipient, variables) are written once and never change.

Every read of a job's data goes through its head item, which `create_job` writes last: a job whose
creation failed part way is not visible, whatever it left behind (see `create_job`).

boto3 is imported lazily, on first use, never at import time.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mailsage.adapters.aws.table import (
    GSI1_NAME,
    GSI1_PARTITION_KEY,
    GSI1_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from mailsage.domain.models import (
    JOB_FINAL,
    MESSAGE_UNSENT,
    Account,
    Content,
    Job,
    JobState,
    Message,
    MessageStatus,
    Template,
)
from mailsage.errors import Conflict

log = logging.getLogger(__name__)

Item = dict[str, Any]  # an item as plain Python values (see _to_attribute / _from_attribute)
T = TypeVar("T")

# -- keys -----------------------------------------------------------------------------------------
# pk                  sk                  what
# ACCOUNT#{account}   ACCOUNT             account preferences
# ACCOUNT#{account}   TEMPLATE#{id}       template
# APIKEY#{key_id}     APIKEY              api key
# JOB#{job}           CHUNK#{n:06d}       chunk state: per-message status lists (mutable)
# JOB#{job}           JOB                 job head: state, times, dead letters; gsi1 ACTIVE/{job}
# JOB#{job}           JOB#CONTENT         the job's content (subject, bodies, envelope)
# JOB#{job}           MEMBERS#{n:06d}     the chunk's message ids in seq order (immutable)
# MSG#{message}       MSG                 message: recipient and variables (immutable)
# The sort keys of a job are chosen so that one range query reads exactly what a call needs:
# CHUNK#... < JOB < JOB#CONTENT < MEMBERS#...
HEAD_SK = "JOB"
CONTENT_SK = "JOB#CONTENT"
CHUNK_PREFIX = "CHUNK#"
MEMBERS_PREFIX = "MEMBERS#"
TEMPLATE_PREFIX = "TEMPLATE#"
ACTIVE = "ACTIVE"  # gsi1pk of the jobs that are queued or running (a sparse index)

_ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})
_COMPLETABLE = (JobState.QUEUED, JobState.RUNNING, JobState.PAUSED)
_PENDING = frozenset({MessageStatus.QUEUED.value, MessageStatus.SENDING.value})
_UNSENT = frozenset(s.value for s in MESSAGE_UNSENT)

# Every attribute an expression names goes through a placeholder (several are reserved words).
_NAMES = {
    "#pk": PARTITION_KEY,
    "#sk": SORT_KEY,
    "#g1pk": GSI1_PARTITION_KEY,
    "#g1sk": GSI1_SORT_KEY,
    "#account": "account_id",
    "#state": "state",
    "#updated": "updated_at",
    "#started": "started_at",
    "#finished": "finished_at",
    "#dead": "dead_letters",
    "#st": "statuses",
    "#tries": "attempts",
    "#changed": "changed_at",
    "#codes": "error_codes",
    "#errors": "error_messages",
}


def _key(pk: str, sk: str) -> Item:
    return {PARTITION_KEY: pk, SORT_KEY: sk}


def _job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _head_key(job_id: str) -> Item:
    return _key(_job_pk(job_id), HEAD_SK)


def _state_key(job_id: str, chunk: int) -> Item:
    return _key(_job_pk(job_id), f"{CHUNK_PREFIX}{chunk:06d}")


def _members_key(job_id: str, chunk: int) -> Item:
    return _key(_job_pk(job_id), f"{MEMBERS_PREFIX}{chunk:06d}")


def _message_key(message_id: str) -> Item:
    return _key(f"MSG#{message_id}", "MSG")


def _template_key(account_id: str, template_id: str) -> Item:
    return _key(f"ACCOUNT#{account_id}", f"{TEMPLATE_PREFIX}{template_id}")


def _key_of(item: Item) -> tuple[str, str]:
    return item[PARTITION_KEY], item[SORT_KEY]


# -- attribute values -----------------------------------------------------------------------------
# Hand-rolled instead of boto3's TypeSerializer: floats round-trip exactly (repr), no Decimals.


def _to_attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, list | tuple):
        return {"L": [_to_attribute(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: _to_attribute(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: {value!r}")


def _from_attribute(attribute: dict[str, Any]) -> Any:
    [(kind, raw)] = attribute.items()
    if kind == "S" or kind == "BOOL":
        return raw
    if kind == "N":
        try:
            return int(raw)
        except ValueError:
            return float(raw)
    if kind == "NULL":
        return None
    if kind == "L":
        return [_from_attribute(v) for v in raw]
    if kind == "M":
        return {k: _from_attribute(v) for k, v in raw.items()}
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def _marshal(item: Item) -> dict[str, Any]:
    """Top-level None means "no such attribute" (absent), so optional fields read back as None."""
    return {name: _to_attribute(value) for name, value in item.items() if value is not None}


def _unmarshal(raw: dict[str, Any]) -> Item:
    return {name: _from_attribute(value) for name, value in raw.items()}


def _names(*expressions: str | None) -> dict[str, str]:
    """The ExpressionAttributeNames the expressions use (DynamoDB rejects unused ones)."""
    used = set(re.findall(r"#\w+", " ".join(e for e in expressions if e)))
    return {name: _NAMES[name] for name in sorted(used)}


def _placeholders(prefix: str, values: Iterable[str]) -> dict[str, str]:
    return {f":{prefix}{i}": v for i, v in enumerate(values)}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- items <-> domain -----------------------------------------------------------------------------


def _job(head: Item, content: Item, counts: dict[str, int]) -> Job:
    return Job(
        id=head[PARTITION_KEY].removeprefix("JOB#"),
        account_id=head["account_id"],
        kind=head["kind"],
        state=JobState(head["state"]),
        content=Content.from_dict(json.loads(content["content"])),
        total=int(head["total"]),
        created_at=float(head["created_at"]),
        updated_at=float(head["updated_at"]),
        campaign_id=head.get("campaign_id"),
        chunks=int(head["chunks"]),
        started_at=_optional_float(head.get("started_at")),
        finished_at=_optional_float(head.get("finished_at")),
        counts=counts,
        dead_letters=list(head.get("dead_letters", [])),
    )


def _message_id(item: Item) -> str:
    return str(item[PARTITION_KEY]).removeprefix("MSG#")


def _message(item: Item, state: Item) -> Message:
    pos = int(item["pos"])
    return Message(
        id=_message_id(item),
        job_id=item["job_id"],
        account_id=item["account_id"],
        seq=int(item["seq"]),
        chunk=int(item["chunk"]),
        email=item["email"],
        name=item.get("name"),
        variables=json.loads(item["variables"]),
        status=MessageStatus(state["statuses"][pos]),
        attempts=int(state["attempts"][pos]),
        error_code=state["error_codes"][pos],
        error_message=state["error_messages"][pos],
        updated_at=float(state["changed_at"][pos]),
    )


def _template(item: Item) -> Template:
    return Template(
        id=item["id"],
        account_id=item["account_id"],
        name=item["name"],
        subject=item["subject"],
        html=item.get("html"),
        text=item.get("text"),
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
    )


def _counts(states: Iterable[Item]) -> dict[str, int]:
    return dict(Counter(status for state in states for status in state["statuses"]))


def _chunk_of(state: Item) -> int:
    return int(state[SORT_KEY].removeprefix(CHUNK_PREFIX))


class BatchIncomplete(RuntimeError):
    """DynamoDB kept returning unprocessed items or keys (throttling) after every retry."""


class DynamoStore:
    """`retention_seconds`: when set, every item of a job carries `ttl` = created_at + retention
    and DynamoDB deletes the job some time after; reads treat an expired job as gone already."""

    BATCH_WRITE_ITEMS = 25  # BatchWriteItem limit
    BATCH_GET_KEYS = 100  # BatchGetItem limit
    BATCH_ATTEMPTS = 8  # calls per batch while DynamoDB returns unprocessed items or keys
    BACKOFF_BASE_SECONDS = 0.05
    BACKOFF_MAX_SECONDS = 2.0
    WRITE_THREADS = 4  # concurrent batch calls while creating a large job
    POSITIONS_PER_UPDATE = 25  # messages moved by one UpdateItem (keeps expressions small)
    RACE_RETRIES = 10  # re-tries of a multi-message update that lost a race to another writer

    def __init__(
        self, table_name: str, client: Any | None = None, *, retention_seconds: float | None = None
    ) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_seconds
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client("dynamodb")
        return self._client

    # -- keys -------------------------------------------------------------------------------
    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None:
        self._put(
            {
                **_key(f"APIKEY#{key_id}", "APIKEY"),
                "account_id": account_id,
                "key_hash": key_hash,
                "created_at": time.time(),
            }
        )

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        item = self._get(_key(f"APIKEY#{key_id}", "APIKEY"))
        return (item["account_id"], item["key_hash"]) if item else None

    # -- accounts ---------------------------------------------------------------------------
    def put_account(self, account: Account) -> None:
        self._put(
            {
                **_key(f"ACCOUNT#{account.id}", "ACCOUNT"),
                "default_provider": account.default_provider,
                "sender_domains": account.sender_domains,
            }
        )

    def get_account(self, account_id: str) -> Account | None:
        item = self._get(_key(f"ACCOUNT#{account_id}", "ACCOUNT"))
        if item is None:
            return None
        return Account(account_id, item.get("default_provider"), item.get("sender_domains"))

    # -- templates --------------------------------------------------------------------------
    def put_template(self, template: Template) -> None:
        self._put(
            {
                **_template_key(template.account_id, template.id),
                "id": template.id,
                "account_id": template.account_id,
                "name": template.name,
                "subject": template.subject,
                "html": template.html,
                "text": template.text,
                "created_at": template.created_at,
                "updated_at": template.updated_at,
            }
        )

    def get_template(self, account_id: str, template_id: str) -> Template | None:
        item = self._get(_template_key(account_id, template_id))
        return _template(item) if item else None

    def list_templates(self, account_id: str, limit: int, after: str | None) -> list[Template]:
        if limit <= 0:
            return []
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :prefix)",
            {":pk": f"ACCOUNT#{account_id}", ":prefix": TEMPLATE_PREFIX},
            start=_template_key(account_id, after) if after is not None else None,
            limit=limit,
        )
        return [_template(item) for item in items]

    def delete_template(self, account_id: str, template_id: str) -> bool:
        response = self.client.delete_item(
            TableName=self.table_name,
            Key=_marshal(_template_key(account_id, template_id)),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in response

    # -- jobs -------------------------------------------------------------------------------
    def create_job(self, job: Job, messages: Sequence[Message]) -> None:
        """Messages, content and members first (batches of 25, in parallel), then each chunk state
        only if absent, then the head only if absent. Reads go through the head, so nothing is
        visible before that last write; if any step fails, the job stays invisible: what was
        written is unreachable (its message ids were never handed out) and is overwritten by a
        retry with the same job id, or deleted by the TTL when a retention is configured. Nothing
        is deleted on failure: a concurrent create of the same id (a redelivered ingest record)
        may already reference these keys. A chunk state that exists is kept, never overwritten, so
        that such a duplicate cannot reset the statuses of a job that is already sending."""
        ids = [m.id for m in messages]
        if len(set(ids)) != len(ids):
            raise ValueError(f"job {job.id!r}: message ids must be unique")
        if self._get(_head_key(job.id)) is not None:
            raise Conflict(f"job {job.id!r} already exists")
        ttl = None if self.retention_seconds is None else int(job.created_at + self.retention_seconds)
        by_chunk: dict[int, list[Message]] = {}
        for m in sorted(messages, key=lambda m: (m.chunk, m.seq)):
            by_chunk.setdefault(m.chunk, []).append(m)

        message_items = [
            {
                **_message_key(m.id),
                "job_id": job.id,
                "account_id": job.account_id,
                "chunk": chunk,
                "pos": pos,
                "seq": m.seq,
                "email": m.email,
                "name": m.name,
                "variables": json.dumps(m.variables, separators=(",", ":")),
                TTL_ATTRIBUTE: ttl,
            }
            for chunk, members in by_chunk.items()
            for pos, m in enumerate(members)
        ]
        content = {
            **_key(_job_pk(job.id), CONTENT_SK),
            "content": json.dumps(job.content.to_dict(), separators=(",", ":")),
            TTL_ATTRIBUTE: ttl,
        }
        self._batch_write([*message_items, content])
        self._batch_write(
            [
                {**_members_key(job.id, chunk), "ids": [m.id for m in members], TTL_ATTRIBUTE: ttl}
                for chunk, members in by_chunk.items()
            ]
        )
        states = [
            {
                **_state_key(job.id, chunk),
                "statuses": [m.status.value for m in members],
                "attempts": [0] * len(members),
                "changed_at": [job.created_at] * len(members),
                "error_codes": [None] * len(members),
                "error_messages": [None] * len(members),
                TTL_ATTRIBUTE: ttl,
            }
            for chunk, members in by_chunk.items()
        ]
        written = self._in_parallel(lambda state: self._put(state, "attribute_not_exists(#pk)"), states)
        kept = [state for state, was_written in zip(states, written, strict=True) if not was_written]
        if kept:
            self._check_kept_states(job.id, kept)
        active = job.state in _ACTIVE_STATES
        head = {
            **_head_key(job.id),
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
            GSI1_PARTITION_KEY: ACTIVE if active else None,
            GSI1_SORT_KEY: job.id if active else None,
            TTL_ATTRIBUTE: ttl,
        }
        if not self._put(head, "attribute_not_exists(#pk)"):
            raise Conflict(f"job {job.id!r} already exists")

    def _check_kept_states(self, job_id: str, kept: list[Item]) -> None:
        """Chunk states an earlier (failed) or concurrent create of this job id wrote first. They
        are used as they are, which is only right for the same messages: the same number per
        chunk. Anything else is a different request reusing the job id."""
        current = self._batch_get([_key(s[PARTITION_KEY], s[SORT_KEY]) for s in kept], consistent=True)
        for state in kept:
            existing = current.get(_key_of(state))
            if existing is None or len(existing["statuses"]) != len(state["statuses"]):
                raise Conflict(f"job {job_id!r} is being created with other messages by another call")
        log.warning("job %s: kept %d chunk states an earlier or concurrent create wrote", job_id, len(kept))

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        items = self._job_items(job_id, CHUNK_PREFIX if with_counts else HEAD_SK, CONTENT_SK)
        head = self._visible_head(items.pop(HEAD_SK, None), account_id)
        content = items.pop(CONTENT_SK, None)
        if head is None or content is None:
            return None
        return _job(head, content, _counts(items.values()) if with_counts else {})

    def transition_job(
        self, account_id: str, job_id: str, allowed_from: Iterable[JobState], to: JobState
    ) -> Job | None:
        allowed = _placeholders("from", [s.value for s in allowed_from])
        if not allowed:
            return None
        now = time.time()
        sets = ["#state = :to", "#updated = :now"]
        values: dict[str, Any] = {":to": to.value, ":now": now, ":account": account_id, **allowed}
        if to in JOB_FINAL:
            sets.append("#finished = :now")
        if to in _ACTIVE_STATES:
            sets += ["#g1pk = :active", "#g1sk = :job"]
            values |= {":active": ACTIVE, ":job": job_id}
            update = "SET " + ", ".join(sets)
        else:  # out of the sparse index of active jobs
            update = "SET " + ", ".join(sets) + " REMOVE #g1pk, #g1sk"
        condition = f"#account = :account AND #state IN ({', '.join(allowed)})"
        if not self._update(_head_key(job_id), update, values, condition):
            return None
        return self.get_job(account_id, job_id)

    def complete_job_if_done(self, job_id: str) -> bool:
        """Reads the chunk states and the head (one query), then one conditional UpdateItem on the
        head. Reading first is safe because "no message left to send" is final: no transition
        leads back to queued, scheduled or sending from a message that has left them."""
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        head = items.pop(HEAD_SK, None)
        if head is None or head["state"] not in _COMPLETABLE:
            return False  # checked here too, to spend no write on the common "not yet" answer
        if any(status in _UNSENT for state in items.values() for status in state["statuses"]):
            return False
        now = time.time()
        allowed = _placeholders("from", [s.value for s in _COMPLETABLE])
        return self._update(
            _head_key(job_id),
            "SET #state = :completed, #updated = :now, #finished = :now REMOVE #g1pk, #g1sk",
            {":completed": JobState.COMPLETED.value, ":now": now, **allowed},
            f"#state IN ({', '.join(allowed)})",
        )

    def record_dead_letter(self, job_id: str, chunk: int, reason: str) -> None:
        entry = {"chunk": chunk, "reason": reason, "at": time.time()}
        self._update(
            _head_key(job_id),
            "SET #dead = list_append(if_not_exists(#dead, :empty), :entry)",
            {":empty": [], ":entry": [entry]},
            "attribute_exists(#pk)",  # an unknown job gets no stray item
        )

    def active_jobs(self) -> list[tuple[str, str]]:
        # gsi1 is eventually consistent: a job that changed state a moment ago may be reported
        # (or missed) once; the callers (restart recovery) only re-enqueue, which is harmless.
        items = self._query("#g1pk = :active", {":active": ACTIVE}, index=GSI1_NAME)
        return [(item["account_id"], item[GSI1_SORT_KEY]) for item in items]

    # -- messages ---------------------------------------------------------------------------
    def chunk_messages(self, job_id: str, chunk: int) -> list[Message]:
        keys = [_head_key(job_id), _state_key(job_id, chunk), _members_key(job_id, chunk)]
        found = self._batch_get(keys, consistent=True)
        head, state, members = (found.get(_key_of(key)) for key in keys)
        if self._visible_head(head) is None or state is None or members is None:
            return []
        message_keys = [_message_key(message_id) for message_id in members["ids"]]
        items = self._immutable_items(message_keys)  # members are in seq order
        return [_message(items[_key_of(key)], state) for key in message_keys if _key_of(key) in items]

    def pending_chunks(self, job_id: str) -> list[int]:
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        if items.pop(HEAD_SK, None) is None:
            return []
        return sorted(
            _chunk_of(state) for state in items.values() if _PENDING.intersection(state["statuses"])
        )

    def claim_messages(self, job_id: str, message_ids: Sequence[str], lease_seconds: float) -> list[str]:
        now = time.time()
        messages = self._immutable_items([_message_key(mid) for mid in dict.fromkeys(message_ids)])
        by_chunk: dict[int, dict[int, str]] = {}  # chunk -> position -> message id
        for item in messages.values():
            if item["job_id"] == job_id:  # another job's ids are ignored
                by_chunk.setdefault(int(item["chunk"]), {})[int(item["pos"])] = _message_id(item)
        if not by_chunk:
            return []
        keys = [_head_key(job_id)] + [_state_key(job_id, chunk) for chunk in by_chunk]
        found = self._batch_get(keys, consistent=True)
        head = found.get(_key_of(keys[0]))
        if head is None:
            return []

        def claimable(status: str, changed_at: float) -> bool:
            return status == MessageStatus.QUEUED or (
                status == MessageStatus.SENDING and changed_at < now - lease_seconds
            )

        claimed: set[str] = set()
        for chunk, positions in by_chunk.items():
            moved = self._move_positions(
                _state_key(job_id, chunk),
                found.get(_key_of(_state_key(job_id, chunk))),
                positions,
                claimable,
                lambda p: f"(#st[{p}] = :queued OR (#st[{p}] = :sending AND #changed[{p}] < :cutoff))",
                {
                    ":queued": MessageStatus.QUEUED.value,
                    ":sending": MessageStatus.SENDING.value,
                    ":cutoff": now - lease_seconds,
                },
                MessageStatus.SENDING,
                now,
            )
            claimed.update(positions[p] for p in moved)
        if claimed and head["state"] == JobState.QUEUED:
            self._update(
                _head_key(job_id),
                "SET #state = :running, #started = :now, #updated = :now",
                {":running": JobState.RUNNING.value, ":queued": JobState.QUEUED.value, ":now": now},
                "#state = :queued",
            )
        return [mid for mid in dict.fromkeys(message_ids) if mid in claimed]

    def finish_message(
        self,
        message_id: str,
        status: MessageStatus,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        message = self._locate(message_id)
        if message is None:
            return False
        p = int(message["pos"])
        return self._update(
            _state_key(message["job_id"], int(message["chunk"])),
            f"SET #st[{p}] = :to, #tries[{p}] = #tries[{p}] + :one, #changed[{p}] = :now,"
            f" #codes[{p}] = :code, #errors[{p}] = :error",
            {
                ":to": status.value,
                ":one": 1,
                ":now": time.time(),
                ":code": error_code,
                ":error": error_message,
                ":sending": MessageStatus.SENDING.value,
            },
            f"#st[{p}] = :sending",
        )

    def release_message(self, message_id: str, error_message: str) -> bool:
        message = self._locate(message_id)
        if message is None:
            return False
        p = int(message["pos"])
        return self._update(
            _state_key(message["job_id"], int(message["chunk"])),
            f"SET #st[{p}] = :queued, #tries[{p}] = #tries[{p}] + :one, #changed[{p}] = :now,"
            f" #errors[{p}] = :error",
            {
                ":queued": MessageStatus.QUEUED.value,
                ":one": 1,
                ":now": time.time(),
                ":error": error_message,
                ":sending": MessageStatus.SENDING.value,
            },
            f"#st[{p}] = :sending",
        )

    def cancel_unsent(self, job_id: str) -> int:
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        if items.pop(HEAD_SK, None) is None:
            return 0
        now = time.time()
        cancellable = (MessageStatus.QUEUED.value, MessageStatus.SCHEDULED.value)
        cancelled = 0
        for state in items.values():
            moved = self._move_positions(
                _key(state[PARTITION_KEY], state[SORT_KEY]),
                state,
                range(len(state["statuses"])),
                lambda status, _changed_at: status in cancellable,
                lambda p: f"#st[{p}] IN (:queued, :scheduled)",
                {":queued": cancellable[0], ":scheduled": cancellable[1]},
                MessageStatus.CANCELLED,
                now,
            )
            cancelled += len(moved)
        return cancelled

    def get_message(self, account_id: str, message_id: str) -> Message | None:
        message = self._locate(message_id)
        if message is None or message["account_id"] != account_id:
            return None
        job_id, chunk, pos = message["job_id"], int(message["chunk"]), int(message["pos"])
        keys = [_head_key(job_id), _state_key(job_id, chunk), _members_key(job_id, chunk)]
        found = self._batch_get(keys, consistent=True)
        head, state, members = (found.get(_key_of(key)) for key in keys)
        if self._visible_head(head, account_id) is None or state is None or members is None:
            return None
        if members["ids"][pos : pos + 1] != [message_id]:
            return None  # left behind by a failed create_job whose job id was created again since
        return _message(message, state)

    def update_delivery_status(
        self,
        account_id: str,
        message_id: str,
        to: MessageStatus,
        allowed_from: Iterable[MessageStatus],
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        allowed = _placeholders("from", [s.value for s in allowed_from])
        message = self._locate(message_id)
        if not allowed or message is None or message["account_id"] != account_id:
            return False
        p = int(message["pos"])
        sets = [f"#st[{p}] = :to", f"#changed[{p}] = :now"]
        values: dict[str, Any] = {":to": to.value, ":now": time.time(), **allowed}
        if error_code is not None:  # like the embedded store: a missing detail keeps the old one
            sets.append(f"#codes[{p}] = :code")
            values[":code"] = error_code
        if error_message is not None:
            sets.append(f"#errors[{p}] = :error")
            values[":error"] = error_message
        return self._update(
            _state_key(message["job_id"], int(message["chunk"])),
            "SET " + ", ".join(sets),
            values,
            f"#st[{p}] IN ({', '.join(allowed)})",
        )

    # -- reads ------------------------------------------------------------------------------
    def _visible_head(self, head: Item | None, account_id: str | None = None) -> Item | None:
        """The head if it exists, belongs to the account (when one is given) and has not expired:
        DynamoDB deletes expired items only eventually (typically within days), so reads filter."""
        if head is None or (account_id is not None and head["account_id"] != account_id):
            return None
        expires = head.get(TTL_ATTRIBUTE)
        return None if expires is not None and expires <= time.time() else head

    def _job_items(self, job_id: str, first_sk: str, last_sk: str) -> dict[str, Item]:
        """The job's items whose sort key lies in [first_sk, last_sk], by sort key."""
        items = self._query(
            "#pk = :pk AND #sk BETWEEN :first AND :last",
            {":pk": _job_pk(job_id), ":first": first_sk, ":last": last_sk},
            consistent=True,
        )
        return {item[SORT_KEY]: item for item in items}

    def _locate(self, message_id: str) -> Item | None:
        """A message item. It never changes after create_job, so an eventually consistent read
        (half the price) is exact whenever it finds the item; only a miss is read again strongly
        consistent, in case the item was written a moment ago."""
        key = _message_key(message_id)
        return self._get(key, consistent=False) or self._get(key, consistent=True)

    def _immutable_items(self, keys: Sequence[Item]) -> dict[tuple[str, str], Item]:
        """Like _locate, for many items (message items only)."""
        found = self._batch_get(keys, consistent=False)
        missing = [key for key in keys if _key_of(key) not in found]
        if missing:
            found |= self._batch_get(missing, consistent=True)
        return found

    def _get(self, key: Item, consistent: bool = True) -> Item | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=_marshal(key), ConsistentRead=consistent
        )
        return _unmarshal(response["Item"]) if "Item" in response else None

    def _query(
        self,
        key_condition: str,
        values: dict[str, Any],
        *,
        index: str | None = None,
        consistent: bool = False,
        start: Item | None = None,
        limit: int | None = None,
    ) -> Iterator[Item]:
        """Every matching item (up to `limit`), following LastEvaluatedKey across 1 MB pages."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": _names(key_condition),
            "ExpressionAttributeValues": _marshal(values),
        }
        if index is not None:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent  # an index is only ever eventually consistent
        if start is not None:
            request["ExclusiveStartKey"] = _marshal(start)
        remaining = limit
        while remaining is None or remaining > 0:
            if remaining is not None:
                request["Limit"] = remaining
            response = self.client.query(**request)
            for raw in response.get("Items", []):
                yield _unmarshal(raw)
            if remaining is not None:
                remaining -= len(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _batch_get(self, keys: Sequence[Item], consistent: bool) -> dict[tuple[str, str], Item]:
        """The items that exist among `keys` (100 keys per call; unprocessed keys retried)."""
        unique = list({_key_of(key): key for key in keys}.values())  # duplicates are rejected
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(unique), self.BATCH_GET_KEYS):
            batch = unique[start : start + self.BATCH_GET_KEYS]
            request = {self.table_name: {"Keys": [_marshal(k) for k in batch], "ConsistentRead": consistent}}
            for attempt in range(self.BATCH_ATTEMPTS):
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = _unmarshal(raw)
                    found[_key_of(item)] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._backoff(attempt)
            else:
                raise BatchIncomplete(
                    f"BatchGetItem: keys still unprocessed after {self.BATCH_ATTEMPTS} calls"
                )
        return found

    # -- writes -----------------------------------------------------------------------------
    def _put(self, item: Item, condition: str | None = None) -> bool:
        """PutItem; False if `condition` did not hold."""
        request: dict[str, Any] = {"TableName": self.table_name, "Item": _marshal(item)}
        if condition is not None:
            request |= {"ConditionExpression": condition, "ExpressionAttributeNames": _names(condition)}
        try:
            self.client.put_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _update(self, key: Item, update: str, values: dict[str, Any], condition: str) -> bool:
        """A conditional UpdateItem; False if the condition did not hold."""
        return self._try_update(key, update, values, condition)[0]

    def _try_update(
        self, key: Item, update: str, values: dict[str, Any], condition: str
    ) -> tuple[bool, Item | None]:
        """A conditional UpdateItem: (True, None) if it was applied, else (False, the item as it is
        now), which DynamoDB returns with the failure at no extra cost."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _marshal(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": _names(update, condition),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            # Unlike top-level item attributes, a None value here is stored as NULL.
            request["ExpressionAttributeValues"] = {k: _to_attribute(v) for k, v in values.items()}
        try:
            self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            current = exc.response.get("Item")
            return False, _unmarshal(current) if current else None
        return True, None

    def _move_positions(
        self,
        key: Item,
        state: Item | None,
        positions: Iterable[int],
        movable: Callable[[str, float], bool],
        condition: Callable[[int], str],
        values: dict[str, Any],
        to: MessageStatus,
        now: float,
    ) -> list[int]:
        """Move the positions of one chunk state that `movable` allows to `to`, in conditional
        UpdateItems of up to POSITIONS_PER_UPDATE positions, each guarded by `condition` per
        position. A write that loses a race to another writer gets the item as it is now, and the
        positions still movable are tried again. Returns the positions this call moved."""
        moved: list[int] = []
        ordered = sorted(positions)
        for start in range(0, len(ordered), self.POSITIONS_PER_UPDATE):
            group = ordered[start : start + self.POSITIONS_PER_UPDATE]
            current = state
            for _ in range(self.RACE_RETRIES):
                if current is None:
                    break
                statuses, changed = current["statuses"], current["changed_at"]
                ready = [p for p in group if p < len(statuses) and movable(statuses[p], float(changed[p]))]
                if not ready:
                    break
                applied, current = self._try_update(
                    key,
                    "SET " + ", ".join(f"#st[{p}] = :to, #changed[{p}] = :now" for p in ready),
                    {**values, ":to": to.value, ":now": now},
                    " AND ".join(condition(p) for p in ready),
                )
                if applied:
                    moved += ready
                    break
        return moved

    def _batch_write(self, items: Sequence[Item]) -> None:
        batches = [
            items[start : start + self.BATCH_WRITE_ITEMS]
            for start in range(0, len(items), self.BATCH_WRITE_ITEMS)
        ]
        self._in_parallel(self._write_batch, batches)

    def _write_batch(self, items: Sequence[Item]) -> None:
        """One BatchWriteItem of up to 25 puts; unprocessed items (throttling) are retried."""
        request = {self.table_name: [{"PutRequest": {"Item": _marshal(item)}} for item in items]}
        for attempt in range(self.BATCH_ATTEMPTS):
            response = self.client.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                return
            self._backoff(attempt)
        left = len(request.get(self.table_name, []))
        raise BatchIncomplete(
            f"BatchWriteItem: {left} items still unprocessed after {self.BATCH_ATTEMPTS} calls"
        )

    def _in_parallel(self, work: Callable[[Any], T], inputs: Sequence[Any]) -> list[T]:
        """`work` on every input, a few at a time, results in order; the first failure is raised."""
        if len(inputs) <= 1:
            return [work(one) for one in inputs]
        with ThreadPoolExecutor(max_workers=min(self.WRITE_THREADS, len(inputs))) as pool:
            return list(pool.map(work, inputs))

    def _backoff(self, attempt: int) -> None:
        delay = min(self.BACKOFF_MAX_SECONDS, self.BACKOFF_BASE_SECONDS * 2**attempt)
        time.sleep(delay * random.uniform(0.5, 1.0))
