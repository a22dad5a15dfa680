"""The store port on one DynamoDB table (single-table design: TABLE.md next to this file).

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
send itself writes no log (its time is the state's).

Every read of a job's data goes through its head item, which `create_job` writes last: a job whose
creation failed part way is not visible, whatever it left behind (see `create_job`).

boto3 is imported lazily, on first use, never at import time.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import random
import re
import struct
import threading
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    ENGAGEMENT_KINDS,
    IDEMPOTENCY_LEASE_SECONDS,
    JOB_FINAL,
    MESSAGE_UNSENT,
    Account,
    CampaignStats,
    Content,
    EngagementKind,
    IdempotencyRecord,
    Job,
    JobState,
    Message,
    MessageQuery,
    MessageStatus,
    Suppression,
    Template,
    Webhook,
    WebhookDelivery,
)
from mailsage.errors import Conflict, PayloadTooLarge

log = logging.getLogger(__name__)

Item = dict[str, Any]  # an item as plain Python values (see _to_attribute / _from_attribute)
T = TypeVar("T")

# -- keys -----------------------------------------------------------------------------------------
# pk                  sk                      what
# ACCOUNT#{account}   ACCOUNT                 account preferences
# ACCOUNT#{account}   TEMPLATE#{id}           template
# ACCOUNT#{account}   SUPPRESSION#{email}#{domain}  suppression (domain "" for every domain);
#                                             gsi1 ACCOUNT#{account}#SUPPRESSIONS/{id}; ttl
# ACCOUNT#{account}   SUPPRESSIONS            whether the account has suppressions (suppressed)
# ACCOUNT#{account}   IDEMPOTENCY#{key}       idempotency record; ttl
# ACCOUNT#{account}   CAMPAIGN#{campaign}#{job}  a job of a campaign (written by create_job) and the
#                                             job's engaged-message counters (opened, clicked, ...)
# ACCOUNT#{account}   WEBHOOK#{id}            webhook endpoint and its attempt counters
# APIKEY#{key_id}     APIKEY                  api key
# JOB#{job}           CHUNK#{n:06d}           chunk state: per-message status lists (mutable)
# JOB#{job}           JOB                     job head: state, times, dead letters; gsi1 ACTIVE/{job}
# JOB#{job}           JOB#BODY                the content's bodies, when the job has a data retention
# JOB#{job}           JOB#CONTENT             the job's content (subject, bodies, envelope, tags)
# JOB#{job}           MEMBERS#{n:06d}         the chunk's message ids (or their prefix) and
#                                             recipients in seq order;
#                                             gsi1 ACCOUNT#{account}#MESSAGES/{created}#{job}#{n}
# MSG#{message}       DATA                    the message's variables, when the job has a data retention
# MSG#{message}       LOG                     events, sent_at, delivered_at (written after transitions);
#                                             {opened,clicked,unsubscribed}_count (record_engagement)
# MSG#{message}       MSG                     message: recipient, subject, variables (immutable);
#                                             only for ids that are not of a packed chunk (below)
# MSGCHUNK#{prefix}   MESSAGES                the messages of a chunk whose ids share `prefix`:
#                                             job, chunk, and per position recipient, subject,
#                                             variables (zlib JSON; immutable)
# WEBHOOK#{account}#{webhook}  DELIVERY#{id}  a delivery's log entry; ttl;
#                                             gsi1 WEBHOOK#{account}#{webhook}#DELIVERIES/{created}#{id}
# The sort keys of a job are chosen so that one range query reads exactly what a call needs:
# CHUNK#... < JOB < JOB#BODY < JOB#CONTENT < MEMBERS#...
# Suppressed-at-creation messages form chunk -1 (`CHUNK#-00001`), which is never sent.
HEAD_SK = "JOB"
BODY_SK = "JOB#BODY"
CONTENT_SK = "JOB#CONTENT"
CHUNK_PREFIX = "CHUNK#"
MEMBERS_PREFIX = "MEMBERS#"
MEMBERS_END = "MEMBERS$"  # just past every MEMBERS# sort key
MESSAGE_SK = "MSG"
CHUNK_MESSAGES_PREFIX = "MSGCHUNK#"  # + a chunk's message id prefix: its messages (see _packed_id)
CHUNK_MESSAGES_SK = "MESSAGES"
LOG_SK = "LOG"
DATA_SK = "DATA"
TEMPLATE_PREFIX = "TEMPLATE#"
SUPPRESSION_PREFIX = "SUPPRESSION#"
SUPPRESSION_MARK_SK = "SUPPRESSIONS"  # whether the account has suppressions (see suppressed)
NO_SUPPRESSIONS, SOME_SUPPRESSIONS = "none", "some"
IDEMPOTENCY_PREFIX = "IDEMPOTENCY#"
CAMPAIGN_PREFIX = "CAMPAIGN#"
WEBHOOK_PREFIX = "WEBHOOK#"
DELIVERY_PREFIX = "DELIVERY#"
ACTIVE = "ACTIVE"  # gsi1pk of the jobs that are queued or running (a sparse index)

_ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})
_COMPLETABLE = (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING, JobState.PAUSED)
_PENDING = frozenset({MessageStatus.QUEUED.value, MessageStatus.SENDING.value})
_UNSENT = frozenset(s.value for s in MESSAGE_UNSENT)
# A message in one of these statuses with no attempt has no event yet (see _may_have_events).
_NO_EVENTS_YET = frozenset(
    s.value
    for s in (MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.SENDING, MessageStatus.SUPPRESSED)
)
_BODY_FIELDS = ("text", "html", "amp", "attachments")  # the content's data (retention_data_days)
_DAY = 86_400
_AUTO_DISABLED = "disabled after {} consecutive failed deliveries"  # a webhook's disabled_reason

# Every attribute an expression names goes through a placeholder (several are reserved words).
_NAMES = {
    "#pk": PARTITION_KEY,
    "#sk": SORT_KEY,
    "#g1pk": GSI1_PARTITION_KEY,
    "#g1sk": GSI1_SORT_KEY,
    "#ttl": TTL_ATTRIBUTE,
    "#account": "account_id",
    "#state": "state",
    "#updated": "updated_at",
    "#started": "started_at",
    "#finished": "finished_at",
    "#dead": "dead_letters",
    # chunk states as written before the packed layout (see _Layout)
    "#st": "statuses",
    "#tries": "attempts",
    "#changed": "changed_at",
    "#codes": "error_codes",
    "#errors": "error_messages",
    # packed chunk states; their error maps are keyed by position, through #p{n} (see _names)
    "#s": "s",
    "#a": "a",
    "#c": "c",
    "#ec": "ec",
    "#em": "em",
    "#events": "events",
    "#sent": "sent_at",
    "#delivered": "delivered_at",
    "#expires": "expires_at",
    "#created": "created_at",
    "#status": "status",
    "#body": "body",
    "#headers": "headers",
    "#gen": "gen",
    # engagement: per message on its LOG item ({kind}_count), per campaign job on its campaign item
    **{f"#{kind}_count": f"{kind}_count" for kind in ENGAGEMENT_KINDS},
    **{f"#{kind}": kind for kind in ENGAGEMENT_KINDS},
    # webhooks
    "#enabled": "enabled",
    "#reason": "disabled_reason",
    "#successes": "success_count",
    "#failures": "error_count",
    "#streak": "errors_since_last_success",
    "#last_request": "last_request_at",
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


def _message_key(message_id: str, sk: str = MESSAGE_SK) -> Item:
    return _key(f"MSG#{message_id}", sk)


# A packed chunk: its message ids are UUIDs sharing their first 28 hex digits (the prefix: the
# domain's new_message_ids) and holding their position in the last 4, so one item per chunk, found
# by the prefix, holds what a message item held for each of them.
_PACKED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PACKED_PREFIX_LENGTH = 32  # "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx", then 4 hex digits of position


def _packed_id(message_id: str) -> tuple[str, int] | None:
    """(prefix, position) of an id that may be of a packed chunk (any lower-case UUID is: a
    message stored as an item of its own is found once its prefix is not)."""
    if not _PACKED_ID.fullmatch(message_id):
        return None
    return message_id[:_PACKED_PREFIX_LENGTH], int(message_id[_PACKED_PREFIX_LENGTH:], 16)


def _chunk_messages_key(prefix: str) -> Item:
    return _key(f"{CHUNK_MESSAGES_PREFIX}{prefix}", CHUNK_MESSAGES_SK)


def _packed_prefix(ids: Sequence[str]) -> str | None:
    """The prefix shared by a chunk's ids if they are its packed ids in position order."""
    parsed = [_packed_id(message_id) for message_id in ids]
    if not parsed or parsed[0] is None:
        return None
    prefix = parsed[0][0]
    return prefix if all(one == (prefix, pos) for pos, one in enumerate(parsed)) else None


def _member_ids(members: Item) -> list[str]:
    """A members item's message ids in position order (a packed chunk's from its prefix)."""
    if "ids" in members:
        return list(members["ids"])
    prefix = members["prefix"]
    return [f"{prefix}{pos:04x}" for pos in range(len(members["emails"]))]


def _template_key(account_id: str, template_id: str) -> Item:
    return _key(f"ACCOUNT#{account_id}", f"{TEMPLATE_PREFIX}{template_id}")


def _suppression_key(account_id: str, email: str, domain: str | None) -> Item:
    """Lower-cased email and domain ("" for a suppression of every sender domain). Domains hold
    no '#', so the key is unambiguous even for an email that does."""
    return _key(f"ACCOUNT#{account_id}", f"{SUPPRESSION_PREFIX}{email.lower()}#{(domain or '').lower()}")


def _idempotency_key(account_id: str, key: str) -> Item:
    return _key(f"ACCOUNT#{account_id}", f"{IDEMPOTENCY_PREFIX}{key}")


def _campaign_key(account_id: str, campaign_id: str, job_id: str) -> Item:
    return _key(f"ACCOUNT#{account_id}", f"{CAMPAIGN_PREFIX}{campaign_id}#{job_id}")


def _webhook_key(account_id: str, webhook_id: str) -> Item:
    return _key(f"ACCOUNT#{account_id}", f"{WEBHOOK_PREFIX}{webhook_id}")


def _delivery_key(account_id: str, webhook_id: str, delivery_id: str) -> Item:
    return _key(f"WEBHOOK#{account_id}#{webhook_id}", f"{DELIVERY_PREFIX}{delivery_id}")


def _deliveries_index(account_id: str, webhook_id: str) -> str:
    return f"WEBHOOK#{account_id}#{webhook_id}#DELIVERIES"


def _exact_time(when: float) -> str:
    """A time as a sort key that orders exactly like the float: the 16 hex digits of its IEEE 754
    bits, whose order is the numeric order for every non-negative float (negatives count as 0)."""
    return struct.pack(">d", when if when > 0 else 0.0).hex()


def _messages_index(account_id: str) -> str:
    return f"ACCOUNT#{account_id}#MESSAGES"


def _suppressions_index(account_id: str) -> str:
    return f"ACCOUNT#{account_id}#SUPPRESSIONS"


def _index_time(created_at: float) -> str:
    """created_at as a sort key prefix: fixed width, so that text order is time order."""
    return f"{max(created_at, 0.0):020.6f}"


def _key_of(item: Item) -> tuple[str, str]:
    return item[PARTITION_KEY], item[SORT_KEY]


def _ttl_not_before(when: float) -> int | None:
    """A TTL that never deletes an item before `when` (None: never, for a time beyond any TTL)."""
    return math.ceil(when) if math.isfinite(when) else None


def _expired(item: Item | None, now: float) -> bool:
    """DynamoDB deletes expired items only eventually (typically within days), so reads filter."""
    expires = None if item is None else item.get(TTL_ATTRIBUTE)
    return expires is not None and expires <= now


# -- attribute values -----------------------------------------------------------------------------
# Hand-rolled instead of boto3's TypeSerializer: floats round-trip exactly (repr), no Decimals.


def _to_attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
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
    if kind == "S" or kind == "BOOL" or kind == "B":
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
    """A packed chunk state also gets the plain view every reader uses (see _unpack_state)."""
    item = {name: _from_attribute(value) for name, value in raw.items()}
    if _PACKED_MARK in item and str(item.get(SORT_KEY, "")).startswith(CHUNK_PREFIX):
        _unpack_state(item)
    return item


def _names(*expressions: str | None) -> dict[str, str]:
    """The ExpressionAttributeNames the expressions use (DynamoDB rejects unused ones); `#p12` is
    the map key "12" (a position in a packed state's error maps)."""
    used = set(re.findall(r"#\w+", " ".join(e for e in expressions if e)))
    return {name: name[2:] if _POSITION_NAME.fullmatch(name) else _NAMES[name] for name in sorted(used)}


# -- chunk states ---------------------------------------------------------------------------------
# Packed (written since issue 6): statuses as one-letter codes (`s`), attempts (`a`), the last
# change (`c`) as whole microseconds since the job's creation (`t0`, stored in the state), and the
# error code / message (`ec` / `em`) as maps holding only the positions that have one. A state of
# 50 messages is ~0.65 KB instead of ~1.3 KB, so that each transition costs 1 write unit.
# Legacy (before): lists `statuses`, `attempts`, `changed_at` (epoch seconds), `error_codes`,
# `error_messages`, NULL where unset. Both are read into the same plain view (lists of full status
# names, epoch seconds, None for no error), and written in their own layout.
_PACKED_MARK = "t0"
_POSITION_NAME = re.compile(r"#p\d+")
_STATUS_CODES = {
    MessageStatus.QUEUED: "q",
    MessageStatus.SCHEDULED: "h",  # held
    MessageStatus.SENDING: "s",
    MessageStatus.SENT: "t",  # transmitted
    MessageStatus.DELIVERED: "d",
    MessageStatus.DEFERRED: "r",  # retried
    MessageStatus.BOUNCED: "b",
    MessageStatus.COMPLAINED: "c",
    MessageStatus.FAILED: "f",
    MessageStatus.SUPPRESSED: "x",
    MessageStatus.CANCELLED: "k",  # killed
    MessageStatus.EXPIRED: "e",
}
_STATUS_OF_CODE = {code: status.value for status, code in _STATUS_CODES.items()}
_MICROS = 1_000_000


def _unpack_state(item: Item) -> None:
    t0, size = float(item[_PACKED_MARK]), len(item["s"])
    codes, errors = item.get("ec") or {}, item.get("em") or {}
    item |= {
        "packed": True,
        "statuses": [_STATUS_OF_CODE[code] for code in item["s"]],
        "attempts": list(item["a"]),
        "changed_at": [t0 + int(micros) / _MICROS for micros in item["c"]],
        "error_codes": [codes.get(str(p)) for p in range(size)],
        "error_messages": [errors.get(str(p)) for p in range(size)],
    }


@dataclass(slots=True, frozen=True)
class _Layout:
    """How a chunk state is written: expressions and values for one position."""

    packed: bool

    def status(self, p: int) -> str:
        return f"#s[{p}]" if self.packed else f"#st[{p}]"

    def changed(self, p: int) -> str:
        return f"#c[{p}]" if self.packed else f"#changed[{p}]"

    def tries(self, p: int) -> str:
        return f"#a[{p}]" if self.packed else f"#tries[{p}]"

    def code(self, status: str) -> str:
        return _STATUS_CODES[MessageStatus(status)] if self.packed else str(status)

    def stamp(self, when: float, t0: float) -> int | float:
        """`when` as stored: packed, microseconds since t0 rounded up (so that what is read back
        is never earlier than `when`)."""
        return math.ceil((when - t0) * _MICROS) if self.packed else when

    def time(self, when: float, t0: float) -> float:
        """`when` as it reads back once stored."""
        stamp = self.stamp(when, t0)
        return t0 + stamp / _MICROS if self.packed else float(stamp)

    def error(self, which: str, p: int, value: str | None, placeholder: str) -> tuple[str | None, str | None]:
        """(a SET clause, a REMOVE clause) that store `value` as the error code ("code") or message
        ("message") at `p`; None unsets it (packed: absent from the map; legacy: NULL)."""
        if not self.packed:
            return f"{'#codes' if which == 'code' else '#errors'}[{p}] = {placeholder}", None
        path = f"{'#ec' if which == 'code' else '#em'}.#p{p}"
        return (f"{path} = {placeholder}", None) if value is not None else (None, path)


PACKED = _Layout(packed=True)
LEGACY = _Layout(packed=False)


def _layout_of(item: Item) -> tuple[_Layout, float]:
    """The layout of a chunk state (or of the message item pointing to it) and its t0."""
    return (PACKED, float(item[_PACKED_MARK])) if _PACKED_MARK in item else (LEGACY, 0.0)


def _update_expression(sets: Sequence[str], removes: Sequence[str] = ()) -> str:
    return " ".join(
        part
        for part in (
            "SET " + ", ".join(sets) if sets else "",
            "REMOVE " + ", ".join(removes) if removes else "",
        )
        if part
    )


def _placeholders(prefix: str, values: Iterable[str]) -> dict[str, str]:
    return {f":{prefix}{i}": v for i, v in enumerate(values)}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _item_size(item: Item) -> int:
    """About what DynamoDB counts against its item limit: each attribute's name and value in UTF-8,
    a number at its largest (21 bytes), a list or map 3 bytes plus 1 per element (and its names)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items() if value is not None)


def _value_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 21
    if isinstance(value, list | tuple):
        return 3 + sum(1 + _value_size(v) for v in value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in value.items())
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: {value!r}")


# -- items <-> domain -----------------------------------------------------------------------------


def _content(content: Item, body: Item | None, now: float) -> Content:
    """The job's content; with a data retention its bodies are a separate item, which is gone (or
    expired) once the retention has passed: then the bodies read as empty."""
    data = json.loads(content["content"])
    if content.get("body_separate"):
        kept = json.loads(body["body"]) if body is not None and not _expired(body, now) else {}
        data |= {field: kept.get(field) for field in _BODY_FIELDS}
    return Content.from_dict(data)


def _job(head: Item, content: Item, body: Item | None, counts: dict[str, int]) -> Job:
    return Job(
        id=head[PARTITION_KEY].removeprefix("JOB#"),
        account_id=head["account_id"],
        kind=head["kind"],
        state=JobState(head["state"]),
        content=_content(content, body, time.time()),
        total=int(head["total"]),
        created_at=float(head["created_at"]),
        updated_at=float(head["updated_at"]),
        campaign_id=head.get("campaign_id"),
        chunks=int(head["chunks"]),
        started_at=_optional_float(head.get("started_at")),
        finished_at=_optional_float(head.get("finished_at")),
        counts=counts,
        dead_letters=list(head.get("dead_letters", [])),
        first_attempt_at=_optional_float(head.get("first_attempt_at")),
        expires_at=_optional_float(head.get("expires_at")),
        retention_metadata_days=head.get("retention_metadata_days"),
        retention_data_days=head.get("retention_data_days"),
    )


def _message_id(item: Item) -> str:
    return str(item[PARTITION_KEY]).removeprefix("MSG#")


def _ordered_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log in the order it was written, except that status events are sorted by time among
    themselves (in the places they hold): each is written just after its transition, so a delivery
    event may overtake the send's own. Engagement events are recorded by their log write alone and
    stay where they were appended."""
    slots = [i for i, event in enumerate(events) if event.get("status") not in ENGAGEMENT_KINDS]
    ordered = list(events)
    for i, event in zip(
        slots, sorted((events[i] for i in slots), key=lambda e: float(e["time"])), strict=True
    ):
        ordered[i] = event
    return ordered


def _may_have_events(state: Item, pos: int) -> bool:
    """Whether the message at `pos` may have a log item. Every transition that logs an event either
    counts an attempt (finish, release) or leaves these statuses (cancel_message, expire_unsent,
    update_delivery_status, which the domain only applies to attempted messages); so a message
    still in one of them with no attempt has no event, and its log item need not be read."""
    return int(state["attempts"][pos]) > 0 or state["statuses"][pos] not in _NO_EVENTS_YET


def _variables(item: Item, data: Item | None, now: float) -> dict[str, Any]:
    if "variables" in item:
        kept = item["variables"]  # JSON text (message item) or a packed chunk's parsed row
        return dict(json.loads(kept)) if isinstance(kept, str) else copy.deepcopy(kept)
    if data is None or _expired(data, now):  # past retention_data_days
        return {}
    return dict(json.loads(data["variables"]))


SENT_LOG = "accepted by the relay"  # the text of the "sent" event


def _events_and_sent_at(state: Item, pos: int, log: Item | None) -> tuple[list[dict[str, Any]], float | None]:
    """The message's events and sent_at. The send itself writes no log (its time is the state's
    changed_at while the message is sent; the transition that leaves `sent` copies it to the log's
    sent_at), so its event is made up here, first (the status events are then put in time order).
    A log written before this scheme holds the event itself, and is taken as it is."""
    events = list(log.get("events", [])) if log else []
    sent_at = _optional_float(log.get("sent_at")) if log else None
    status = state["statuses"][pos]
    if sent_at is None and status == MessageStatus.SENT:
        sent_at = float(state["changed_at"][pos])
    if sent_at is not None and not any(e.get("status") == MessageStatus.SENT for e in events):
        text = state["error_messages"][pos] if status == MessageStatus.SENT else None
        events.insert(0, {"time": sent_at, "status": MessageStatus.SENT.value, "log": text or SENT_LOG})
    return _ordered_events(events), sent_at


def _message(
    item: Item, state: Item, created_at: float, variables: dict[str, Any], log: Item | None
) -> Message:
    pos = int(item["pos"])
    events, sent_at = _events_and_sent_at(state, pos, log)
    return Message(
        id=_message_id(item),
        job_id=item["job_id"],
        account_id=item["account_id"],
        seq=int(item["seq"]),
        chunk=int(item["chunk"]),
        email=item["email"],
        name=item.get("name"),
        variables=variables,
        status=MessageStatus(state["statuses"][pos]),
        attempts=int(state["attempts"][pos]),
        error_code=state["error_codes"][pos],
        error_message=state["error_messages"][pos],
        updated_at=float(state["changed_at"][pos]),
        subject=item.get("subject", ""),
        created_at=created_at,
        sent_at=sent_at,
        delivered_at=_optional_float(log.get("delivered_at")) if log else None,
        events=events,
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


def _suppression(item: Item) -> Suppression:
    return Suppression(
        id=item["id"],
        account_id=item["account_id"],
        email=item["email"],
        domain=item.get("domain") or None,
        reason=item["reason"],
        created_at=float(item["created_at"]),
        expires_at=float(item["expires_at"]),
    )


def _idempotency(item: Item) -> IdempotencyRecord:
    status = item.get("status")
    return IdempotencyRecord(
        account_id=item["account_id"],
        key=item["key"],
        fingerprint=item["fingerprint"],
        state=item["state"],
        created_at=float(item["created_at"]),
        expires_at=float(item["expires_at"]),
        status=None if status is None else int(status),
        body=item.get("body"),
        headers=dict(item.get("headers") or {}),
    )


def _webhook(item: Item) -> Webhook:
    return Webhook(
        id=item["id"],
        account_id=item["account_id"],
        name=item["name"],
        url=item["url"],
        secret=item["secret"],
        enabled=bool(item["enabled"]),
        events=list(item.get("events", [])),
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
        scope=item.get("scope", "global"),
        domains=list(item.get("domains", [])),
        success_count=int(item.get("success_count", 0)),
        error_count=int(item.get("error_count", 0)),
        errors_since_last_success=int(item.get("errors_since_last_success", 0)),
        last_request_at=_optional_float(item.get("last_request_at")),
        disabled_reason=item.get("disabled_reason"),
    )


def _delivery(item: Item) -> WebhookDelivery:
    return WebhookDelivery(
        id=item["id"],
        account_id=item["account_id"],
        webhook_id=item["webhook_id"],
        event_type=item["event_type"],
        payload=item["payload"],
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
        status=item["status"],
        attempts=list(item.get("attempts", [])),
        next_attempt_at=_optional_float(item.get("next_attempt_at")),
        expires_at=_optional_float(item.get("expires_at")),
    )


def _delivery_expired(item: Item, now: float) -> bool:
    expires = item.get("expires_at")
    return expires is not None and expires <= now


def _counts(states: Iterable[Item]) -> dict[str, int]:
    return dict(Counter(status for state in states for status in state["statuses"]))


def _chunk_of(state: Item) -> int:
    return int(state[SORT_KEY].removeprefix(CHUNK_PREFIX))


@dataclass(slots=True, frozen=True)
class _Row:
    """A message of a listing, before its message item is read: where it is and its sort key."""

    created_at: float
    message_id: str
    state: Item


def _finish_clauses(
    p: int, status: MessageStatus, error_code: str | None, error_message: str | None, now: float
) -> Callable[[_Layout, float], tuple[list[str], list[str], dict[str, Any], str]]:
    """The update of position `p` from `sending` to `status`: (sets, removes, values, condition)."""

    def clauses(layout: _Layout, t0: float) -> tuple[list[str], list[str], dict[str, Any], str]:
        sets = [
            f"{layout.status(p)} = :to",
            f"{layout.tries(p)} = {layout.tries(p)} + :one",
            f"{layout.changed(p)} = :now",
        ]
        values: dict[str, Any] = {
            ":to": layout.code(status),
            ":one": 1,
            ":now": layout.stamp(now, t0),
            ":sending": layout.code(MessageStatus.SENDING),
        }
        removes = []
        for which, value, placeholder in (
            ("code", error_code, ":code"),
            ("message", error_message, ":error"),
        ):
            set_clause, remove = layout.error(which, p, value, placeholder)
            if set_clause is not None:
                sets.append(set_clause)
                values[placeholder] = value
            if remove is not None:
                removes.append(remove)
        return sets, removes, values, f"{layout.status(p)} = :sending"

    return clauses


class _RecentIds:
    """A bounded, thread-safe set: the oldest ids are forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, key: str) -> None:
        with self._lock:
            self._ids[key] = None
            self._ids.move_to_end(key)
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)


class _Remembered:
    """A bounded map of items that never change once written (least recently used go first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], Item] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Item | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, items: Iterable[Item]) -> None:
        with self._lock:
            for item in items:
                self._items[_key_of(item)] = item
                self._items.move_to_end(_key_of(item))
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class BatchIncomplete(RuntimeError):
    """DynamoDB kept returning unprocessed items or keys (throttling) after every retry."""


class DynamoStore:
    """`retention_seconds`: when set, every item of a job carries `ttl` = created_at + retention
    and DynamoDB deletes the job some time after; reads treat an expired job as gone already. A
    job's own `retention_metadata_days` takes its place for that job."""

    BATCH_WRITE_ITEMS = 25  # BatchWriteItem limit
    BATCH_GET_KEYS = 100  # BatchGetItem limit
    BATCH_ATTEMPTS = 8  # calls per batch while DynamoDB returns unprocessed items or keys
    BACKOFF_BASE_SECONDS = 0.05
    BACKOFF_MAX_SECONDS = 2.0
    WRITE_THREADS = 4  # concurrent batch calls while creating a large job
    POSITIONS_PER_UPDATE = 25  # messages moved by one UpdateItem (keeps expressions small)
    RACE_RETRIES = 10  # re-tries of a multi-message update that lost a race to another writer
    LISTING_PAGE = 25  # index items of the first query page of a listing (doubling after)
    PURGES_BY_TTL = True  # purge_expired does nothing: DynamoDB's TTL deletes (see TABLE.md)
    SUPPRESSION_MARK_SECONDS = 2.0  # how long suppressed() reuses an account's marker
    SUPPRESSION_MARKS_KEPT = 1024  # accounts whose marker is remembered at once
    IMMUTABLE_ITEMS_KEPT = 2048  # message items remembered (they never change once written)
    PACKED_CHUNKS_KEPT = 64  # packed chunks' message items remembered (likewise)
    PACKED_MESSAGES_MAX_BYTES = 65_536  # a chunk whose messages compress to more: an item each
    # A job's content item (and its bodies' item): DynamoDB refuses an item over 400 KB; 10 KB less
    # leaves room for where _item_size's estimate differs from DynamoDB's own accounting.
    CONTENT_ITEM_MAX_BYTES = 390 * 1024

    def __init__(
        self, table_name: str, client: Any | None = None, *, retention_seconds: float | None = None
    ) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_seconds
        self._client = client
        self._client_lock = threading.Lock()
        # account -> (monotonic time read, its suppression marker's state): see suppressed
        self._suppression_marks: dict[str, tuple[float, str | None]] = {}
        self._immutable = _Remembered(self.IMMUTABLE_ITEMS_KEPT)  # see _message_items
        self._packed = _Remembered(self.PACKED_CHUNKS_KEPT)
        # Jobs this process has seen started (queued -> running): the head is written once.
        self._running_jobs = _RecentIds(self.IMMUTABLE_ITEMS_KEPT)

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
        return self._delete(_template_key(account_id, template_id))

    # -- jobs -------------------------------------------------------------------------------
    def _metadata_ttl(self, job: Job) -> int | None:
        """When the job's records go: its own retention_metadata_days (0 or None: none of its own,
        as in the embedded store), else the store's retention, else never."""
        if job.retention_metadata_days:
            return int(job.created_at + _DAY * job.retention_metadata_days)
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
        if self._get(_head_key(job.id)) is not None:
            raise Conflict(f"job {job.id!r} already exists")
        ttl = self._metadata_ttl(job)
        separate_data = job.retention_data_days is not None
        by_chunk: dict[int, list[Message]] = {}
        for m in sorted(messages, key=lambda m: (m.chunk, m.seq)):
            by_chunk.setdefault(m.chunk, []).append(m)

        variables = {m.id: _json(m.variables) for m in messages}
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
                    **_message_key(m.id),
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
                    _PACKED_MARK: job.created_at,  # its chunk state is packed (see _Layout)
                    TTL_ATTRIBUTE: ttl,
                }
                for pos, m in enumerate(members)
            ]
        data_items = [
            {**_message_key(m.id, DATA_SK), "variables": variables[m.id], TTL_ATTRIBUTE: ttl}
            for m in messages
            if separate_data
        ]
        content = job.content.to_dict()
        job_items = [
            {
                **_key(_job_pk(job.id), CONTENT_SK),
                "content": _json({k: v for k, v in content.items() if k not in _BODY_FIELDS})
                if separate_data
                else _json(content),
                "body_separate": True if separate_data else None,
                TTL_ATTRIBUTE: ttl,
            }
        ]
        if separate_data:
            body = _json({k: content[k] for k in _BODY_FIELDS})
            job_items.append({**_key(_job_pk(job.id), BODY_SK), "body": body, TTL_ATTRIBUTE: ttl})
        self._check_content_size(job_items)  # before any write: a refused job leaves nothing behind
        self._batch_write([*message_items, *data_items, *job_items])
        sort_time = _index_time(job.created_at)
        self._batch_write(
            [
                {
                    **_members_key(job.id, chunk),
                    # a packed chunk's ids are its prefix and the positions (see _member_ids)
                    "ids": None if chunk in prefixes else [m.id for m in members],
                    "prefix": prefixes.get(chunk),
                    "emails": [m.email.lower() for m in members],
                    "account_id": job.account_id,
                    "created_at": job.created_at,
                    # the account's messages, newest first (list_messages): one entry per chunk
                    GSI1_PARTITION_KEY: _messages_index(job.account_id),
                    GSI1_SORT_KEY: f"{sort_time}#{job.id}#{chunk:06d}",
                    TTL_ATTRIBUTE: ttl,
                }
                for chunk, members in by_chunk.items()
            ]
        )
        states = [
            {
                **_state_key(job.id, chunk),
                _PACKED_MARK: job.created_at,
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
        if job.campaign_id is not None:
            # The job's entry in its campaign (campaign_stats), before the head like everything else:
            # campaign_stats counts only jobs whose head exists. Only if absent: the entry's
            # engagement counters of a job already sending survive a duplicate create.
            campaign = {
                **_campaign_key(job.account_id, job.campaign_id, job.id),
                "campaign_id": job.campaign_id,
                "job_id": job.id,
                "created_at": job.created_at,
                TTL_ATTRIBUTE: ttl,
            }
            self._put(campaign, "attribute_not_exists(#pk)")
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
            "first_attempt_at": job.first_attempt_at,
            "expires_at": job.expires_at,
            "retention_metadata_days": job.retention_metadata_days,
            "retention_data_days": job.retention_data_days,
            GSI1_PARTITION_KEY: ACTIVE if active else None,
            GSI1_SORT_KEY: job.id if active else None,
            TTL_ATTRIBUTE: ttl,
        }
        if not self._put(head, "attribute_not_exists(#pk)"):
            raise Conflict(f"job {job.id!r} already exists")

    def _check_content_size(self, items: Sequence[Item]) -> None:
        """PayloadTooLarge if an item holding the job's content would not fit one DynamoDB item
        (BatchWriteItem would refuse it with a ValidationException, an opaque 500 to the caller).
        The API's limits (bodies, attachments) are checked on decoded sizes; what is stored is JSON,
        attachments in base64, so a request within them can still be too large here."""
        limit = self.CONTENT_ITEM_MAX_BYTES
        size = max(_item_size(item) for item in items)
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
        prefix = _packed_prefix([m.id for m in members])
        if prefix is None:
            return None
        rows = [[m.seq, m.email, m.name, m.subject, None if separate_data else m.variables] for m in members]
        packed = zlib.compress(_json(rows).encode(), 6)
        if len(packed) > self.PACKED_MESSAGES_MAX_BYTES:
            return None
        return {
            **_chunk_messages_key(prefix),
            "job_id": job.id,
            "account_id": job.account_id,
            "chunk": chunk,
            "rows": packed,
            "data_days": job.retention_data_days,
            _PACKED_MARK: job.created_at,  # its chunk state is packed (see _Layout)
            TTL_ATTRIBUTE: ttl,
        }

    def _check_kept_states(self, job_id: str, kept: list[Item]) -> None:
        """Chunk states an earlier (failed) or concurrent create of this job id wrote first. They
        are used as they are, which is only right for the same messages: the same number per
        chunk. Anything else is a different request reusing the job id."""
        current = self._batch_get([_key(s[PARTITION_KEY], s[SORT_KEY]) for s in kept], consistent=True)
        for state in kept:
            existing = current.get(_key_of(state))
            if existing is None or len(existing["statuses"]) != len(state["s"]):
                raise Conflict(f"job {job_id!r} is being created with other messages by another call")
        log.warning("job %s: kept %d chunk states an earlier or concurrent create wrote", job_id, len(kept))

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        items = self._job_items(job_id, CHUNK_PREFIX if with_counts else HEAD_SK, CONTENT_SK)
        head = self._visible_head(items.pop(HEAD_SK, None), account_id)
        content = items.pop(CONTENT_SK, None)
        body = items.pop(BODY_SK, None)
        if head is None or content is None:
            return None
        return _job(head, content, body, _counts(items.values()) if with_counts else {})

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
        job = self.get_job(account_id, job_id)
        if job is not None and to in JOB_FINAL:
            self._retire_body(job_id, job.retention_data_days, now)
        return job

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
        completed = self._update(
            _head_key(job_id),
            "SET #state = :completed, #updated = :now, #finished = :now REMOVE #g1pk, #g1sk",
            {":completed": JobState.COMPLETED.value, ":now": now, **allowed},
            f"#state IN ({', '.join(allowed)})",
        )
        if completed:
            self._retire_body(job_id, head.get("retention_data_days"), now)
        return completed

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

    def start_scheduled_job(self, job_id: str) -> bool:
        """Messages first (scheduled -> queued, per position), then the head (scheduled -> queued,
        conditionally): only the head write decides the answer, so exactly one caller gets True.
        A caller that dies in between leaves the head scheduled, and the redelivered start does the
        rest. A stop racing this ends with every message cancelled either way: cancel_unsent takes
        queued and scheduled ones alike."""
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        head = items.pop(HEAD_SK, None)
        if head is None or head["state"] != JobState.SCHEDULED:
            return False
        now = time.time()
        for state in items.values():
            self._move_positions(
                _key(state[PARTITION_KEY], state[SORT_KEY]),
                state,
                range(len(state["statuses"])),
                lambda status, _changed_at: status == MessageStatus.SCHEDULED,
                lambda layout, p: f"{layout.status(p)} = :scheduled",
                lambda layout, _t0: {":scheduled": layout.code(MessageStatus.SCHEDULED)},
                MessageStatus.QUEUED,
                now,
            )
        return self._update(
            _head_key(job_id),
            "SET #state = :queued, #updated = :now, #g1pk = :active, #g1sk = :job",
            {
                ":queued": JobState.QUEUED.value,
                ":scheduled": JobState.SCHEDULED.value,
                ":now": now,
                ":active": ACTIVE,
                ":job": job_id,
            },
            "#state = :scheduled",
        )

    # -- messages ---------------------------------------------------------------------------
    def chunk_messages(self, job_id: str, chunk: int) -> list[Message]:
        keys = [_head_key(job_id), _state_key(job_id, chunk), _members_key(job_id, chunk)]
        found = self._batch_get(keys, consistent=True)
        head, state, members = (found.get(_key_of(key)) for key in keys)
        head = self._visible_head(head)
        if head is None or state is None or members is None:
            return []
        ids = _member_ids(members)  # in seq order
        items = self._message_items(ids, packed="prefix" in members)
        created_at = float(head["created_at"])
        return self._assemble(
            [
                (items[message_id], state, created_at)
                for message_id in ids
                if message_id in items and items[message_id]["job_id"] == job_id
            ]
        )

    def pending_chunks(self, job_id: str) -> list[int]:
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        if items.pop(HEAD_SK, None) is None:
            return []
        return sorted(
            _chunk_of(state) for state in items.values() if _PENDING.intersection(state["statuses"])
        )

    def claim_messages(self, job_id: str, message_ids: Sequence[str], lease_seconds: float) -> list[str]:
        now = time.time()
        if len(message_ids) == 1:
            return self._claim_one(job_id, message_ids[0], lease_seconds, now)
        messages = self._message_items(list(dict.fromkeys(message_ids)))
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

        cutoff = now - lease_seconds

        def claimable(layout: _Layout, t0: float) -> Callable[[str, float], bool]:
            # the cutoff as the state stores it, so that this agrees with the condition exactly
            stored_cutoff = layout.time(cutoff, t0)
            return lambda status, changed_at: (
                status == MessageStatus.QUEUED
                or (status == MessageStatus.SENDING and changed_at < stored_cutoff)
            )

        claimed: set[str] = set()
        for chunk, positions in by_chunk.items():
            state = found.get(_key_of(_state_key(job_id, chunk)))
            moved = self._move_positions(
                _state_key(job_id, chunk),
                state,
                positions,
                claimable(*_layout_of(state or {})),
                lambda layout, p: (
                    f"({layout.status(p)} = :queued"
                    f" OR ({layout.status(p)} = :sending AND {layout.changed(p)} < :cutoff))"
                ),
                lambda layout, t0: {
                    ":queued": layout.code(MessageStatus.QUEUED),
                    ":sending": layout.code(MessageStatus.SENDING),
                    ":cutoff": layout.stamp(cutoff, t0),
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

    def _claim_one(self, job_id: str, message_id: str, lease_seconds: float, now: float) -> list[str]:
        """The sender claims one message at a time, just before sending it: one conditional
        UpdateItem, no read (the condition is the check; the layout comes from the message item),
        and the job's head is moved to `running` once per job and process."""
        message = self._locate(message_id)
        if message is None or message["job_id"] != job_id:
            return []
        p = int(message["pos"])
        cutoff = now - lease_seconds

        def claim(layout: _Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            return (
                f"SET {layout.status(p)} = :to, {layout.changed(p)} = :now",
                {
                    ":to": layout.code(MessageStatus.SENDING),
                    ":now": layout.stamp(now, t0),
                    ":queued": layout.code(MessageStatus.QUEUED),
                    ":sending": layout.code(MessageStatus.SENDING),
                    ":cutoff": layout.stamp(cutoff, t0),
                },
                f"{layout.status(p)} = :queued"
                f" OR ({layout.status(p)} = :sending AND {layout.changed(p)} < :cutoff)",
            )

        moved, _ = self._update_position(message, claim)
        if not moved:
            return []
        if job_id not in self._running_jobs:
            self._try_update(
                _head_key(job_id),
                "SET #state = :running, #started = :now, #updated = :now",
                {":running": JobState.RUNNING.value, ":queued": JobState.QUEUED.value, ":now": now},
                "#state = :queued",
            )
            self._running_jobs.add(job_id)
        return [message_id]

    def finish_message(
        self,
        message_id: str,
        status: MessageStatus,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """The transition (one conditional UpdateItem on the chunk state), then its event on the
        message's log item, then, with a data retention, the message's data is deleted (0 days) or
        given its TTL. A worker dying in between loses that event, or leaves the data until the
        records' own TTL; the status is right either way."""
        message = self._locate(message_id)
        if message is None:
            return False
        now = time.time()
        finish = _finish_clauses(int(message["pos"]), status, error_code, error_message, now)

        def build(layout: _Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            sets, removes, values, condition = finish(layout, t0)
            return _update_expression(sets, removes), values, condition

        moved, _ = self._update_position(message, build)
        if not moved:
            return False
        self._finished(message, status, error_message, now)
        return True

    def finish_and_claim(
        self, message_id: str, status: MessageStatus, next_id: str, lease_seconds: float
    ) -> tuple[bool, bool]:
        """Both in one conditional UpdateItem when the two share a chunk state (the sender's case):
        claiming the next message costs no write of its own. If either condition fails, each is
        tried on its own."""
        message, following = self._locate(message_id), self._locate(next_id)
        same_state = (
            message is not None
            and following is not None
            and (following["job_id"], following["chunk"]) == (message["job_id"], message["chunk"])
        )
        if not same_state or message is None or following is None:
            finished = self.finish_message(message_id, status)
            job_id = message["job_id"] if message is not None else ""
            return finished, bool(self.claim_messages(job_id, [next_id], lease_seconds))
        now = time.time()
        finish = _finish_clauses(int(message["pos"]), status, None, None, now)
        q = int(following["pos"])

        def build(layout: _Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            sets, removes, values, condition = finish(layout, t0)
            sets += [f"{layout.status(q)} = :claimed", f"{layout.changed(q)} = :now"]
            values |= {
                ":claimed": layout.code(MessageStatus.SENDING),
                ":queued": layout.code(MessageStatus.QUEUED),
                ":cutoff": layout.stamp(now - lease_seconds, t0),
            }
            claimable = (
                f"{layout.status(q)} = :queued"
                f" OR ({layout.status(q)} = :sending AND {layout.changed(q)} < :cutoff)"
            )
            return _update_expression(sets, removes), values, f"{condition} AND ({claimable})"

        moved, _ = self._update_position(message, build)
        if not moved:
            finished = self.finish_message(message_id, status)
            return finished, bool(self._claim_one(message["job_id"], next_id, lease_seconds, now))
        self._finished(message, status, None, now)
        return True, True

    def _finished(self, message: Item, status: MessageStatus, error_message: str | None, now: float) -> None:
        if status != MessageStatus.SENT:  # a send logs nothing: see _events_and_sent_at
            self._log_event(message, now, status.value, error_message or "")
        self._retire_data(message, now)

    def release_message(self, message_id: str, error_message: str) -> bool:
        message = self._locate(message_id)
        if message is None:
            return False
        p = int(message["pos"])
        now = time.time()

        def release(layout: _Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            sets = [
                f"{layout.status(p)} = :queued",
                f"{layout.tries(p)} = {layout.tries(p)} + :one",
                f"{layout.changed(p)} = :now",
            ]
            values: dict[str, Any] = {
                ":queued": layout.code(MessageStatus.QUEUED),
                ":one": 1,
                ":now": layout.stamp(now, t0),
                ":sending": layout.code(MessageStatus.SENDING),
            }
            set_clause, remove = layout.error("message", p, error_message, ":error")
            if set_clause is not None:
                sets.append(set_clause)
                values[":error"] = error_message
            return (
                _update_expression(sets, [remove] if remove else []),
                values,
                f"{layout.status(p)} = :sending",
            )

        moved, _ = self._update_position(message, release)
        if moved:
            self._log_event(message, now, MessageStatus.DEFERRED.value, error_message)
        return moved

    def cancel_unsent(self, job_id: str) -> int:
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        if items.pop(HEAD_SK, None) is None:
            return 0
        moved = self._move_unsent(items.values(), MessageStatus.CANCELLED, time.time())
        return sum(len(positions) for _, positions in moved)

    def cancel_message(self, account_id: str, message_id: str) -> bool:
        message = self._locate(message_id)
        if message is None or message["account_id"] != account_id:
            return False
        p = int(message["pos"])
        now = time.time()
        moved, _ = self._update_position(
            message,
            lambda layout, t0: (
                f"SET {layout.status(p)} = :cancelled, {layout.changed(p)} = :now",
                {
                    ":cancelled": layout.code(MessageStatus.CANCELLED),
                    ":scheduled": layout.code(MessageStatus.SCHEDULED),
                    ":now": layout.stamp(now, t0),
                },
                f"{layout.status(p)} = :scheduled",
            ),
        )
        if moved:
            self._log_event(message, now, MessageStatus.CANCELLED.value, "cancelled before its first attempt")
        return moved

    def expire_unsent(self, job_id: str) -> int:
        items = self._job_items(job_id, CHUNK_PREFIX, MEMBERS_END)
        head = items.pop(HEAD_SK, None)
        if head is None:
            return 0
        states = [item for sk, item in items.items() if sk.startswith(CHUNK_PREFIX)]
        members = {
            sk.removeprefix(MEMBERS_PREFIX): item
            for sk, item in items.items()
            if sk.startswith(MEMBERS_PREFIX)
        }
        now = time.time()
        expired: list[str] = []
        for state, positions in self._move_unsent(states, MessageStatus.EXPIRED, now):
            chunk_members = members.get(state[SORT_KEY].removeprefix(CHUNK_PREFIX))
            ids = _member_ids(chunk_members) if chunk_members is not None else []
            expired += [ids[p] for p in positions if p < len(ids)]
        ttl = head.get(TTL_ATTRIBUTE)  # the same as its messages'
        self._in_parallel(
            lambda mid: self._log_event(
                {**_message_key(mid), TTL_ATTRIBUTE: ttl},
                now,
                MessageStatus.EXPIRED.value,
                "not sent before the schedule expired",
            ),
            expired,
        )
        return len(expired)

    def _move_unsent(
        self, states: Iterable[Item], to: MessageStatus, now: float
    ) -> list[tuple[Item, list[int]]]:
        """queued|scheduled -> `to` in every chunk state given; the positions moved, per state."""
        unsent = (MessageStatus.QUEUED.value, MessageStatus.SCHEDULED.value)
        moved: list[tuple[Item, list[int]]] = []
        for state in states:
            positions = self._move_positions(
                _key(state[PARTITION_KEY], state[SORT_KEY]),
                state,
                range(len(state["statuses"])),
                lambda status, _changed_at: status in unsent,
                lambda layout, p: f"{layout.status(p)} IN (:queued, :scheduled)",
                lambda layout, _t0: {":queued": layout.code(unsent[0]), ":scheduled": layout.code(unsent[1])},
                to,
                now,
            )
            if positions:
                moved.append((state, positions))
        return moved

    def get_message(self, account_id: str, message_id: str) -> Message | None:
        """A packed chunk's message: its chunk's item (remembered, or one GetItem), then one
        BatchGetItem of the head, state, members, log and data. A message item of its own: one
        query reads it with its log and data (sort keys DATA < LOG < MSG), then the same batch."""
        message = self._packed_messages_of([message_id]).get(message_id)
        packed = message is not None
        parts: dict[str, Item] = {}  # the message's LOG and DATA items (and its MSG item), by sk
        if not packed:
            query = self._query("#pk = :pk", {":pk": f"MSG#{message_id}"}, consistent=True)
            parts = {item[SORT_KEY]: item for item in query}
            message = parts.get(MESSAGE_SK)
        if message is None or message["account_id"] != account_id:
            return None
        job_id, chunk, pos = message["job_id"], int(message["chunk"]), int(message["pos"])
        keys = [_head_key(job_id), _state_key(job_id, chunk), _members_key(job_id, chunk)]
        if packed:
            keys.append(_message_key(message_id, LOG_SK))
            if "variables" not in message:  # kept apart: a data retention
                keys.append(_message_key(message_id, DATA_SK))
        found = self._batch_get(keys, consistent=True)
        head, state, members = (found.get(_key_of(key)) for key in keys[:3])
        if packed:
            parts = {item[SORT_KEY]: item for item in (found.get(_key_of(key)) for key in keys[3:]) if item}
        head = self._visible_head(head, account_id)
        if head is None or state is None or members is None:
            return None
        if _member_ids(members)[pos : pos + 1] != [message_id]:
            return None  # left behind by a failed create_job whose job id was created again since
        now = time.time()
        variables = _variables(message, parts.get(DATA_SK), now)
        return _message(message, state, float(head["created_at"]), variables, parts.get(LOG_SK))

    def update_delivery_status(
        self,
        account_id: str,
        message_id: str,
        to: MessageStatus,
        allowed_from: Iterable[MessageStatus],
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        statuses = [s.value for s in allowed_from]
        message = self._locate(message_id)
        if not statuses or message is None or message["account_id"] != account_id:
            return False
        p = int(message["pos"])
        now = time.time()

        def update(layout: _Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            allowed = _placeholders("from", [layout.code(s) for s in statuses])
            sets = [f"{layout.status(p)} = :to", f"{layout.changed(p)} = :now"]
            values: dict[str, Any] = {":to": layout.code(to), ":now": layout.stamp(now, t0), **allowed}
            # like the embedded store: a missing detail keeps the old one
            for which, value, placeholder in (
                ("code", error_code, ":code"),
                ("message", error_message, ":error"),
            ):
                if value is not None:
                    sets.append(str(layout.error(which, p, value, placeholder)[0]))
                    values[placeholder] = value
            return "SET " + ", ".join(sets), values, f"{layout.status(p)} IN ({', '.join(allowed)})"

        # returns the state before: a move out of `sent` keeps the send's time
        moved, old = self._update_position(message, update, returns="ALL_OLD")
        if moved:
            times = {"#delivered": now} if to == MessageStatus.DELIVERED else {}
            if old is not None and old["statuses"][p] == MessageStatus.SENT:
                times["#sent"] = float(old["changed_at"][p])
            self._log_event(message, now, to.value, error_message or to.value, times)
        return moved

    # -- listing ----------------------------------------------------------------------------
    def list_messages(self, account_id: str, query: MessageQuery) -> tuple[list[Message], bool]:
        """Reads gsi1's per-chunk entries of the account (`{created_at}#{job}#{chunk}`) newest first
        (oldest first for `before`), a group of equal creation times at a time, and orders each
        group's messages by (created_at, id) like the embedded store. Job-level filters (sender,
        tags) use the job's content, status filters its chunk states, recipient filters the
        entries' lower-cased addresses; only the messages still matching then have their message
        items read (subject filter), and only the page's messages their logs and data."""
        limit = max(query.limit, 0)
        wanted = limit + 1
        anchor, descending = self._anchor(account_id, query)
        low, high = query.from_time, query.to_time
        key_low, key_high = low, high
        if anchor is not None and descending:
            key_high = anchor[0] if key_high is None else min(key_high, anchor[0])
        elif anchor is not None:
            key_low = anchor[0] if key_low is None else max(key_low, anchor[0])

        entries: Iterable[Item]
        if query.message_id is not None:
            entries = self._entries_of_message(account_id, query.message_id)
        else:
            entries = self._index_entries(account_id, key_low, key_high, descending)
        recipient = query.recipient.lower() if query.recipient else None
        subject = query.subject.lower() if query.subject else None
        jobs: dict[tuple[str, str], Item] = {}  # head, content and chunk states, by key
        matching_job: dict[str, bool] = {}
        found: list[tuple[Item, Item, float]] = []

        def job_matches(job_id: str) -> bool:
            if job_id not in matching_job:
                head = self._visible_head(jobs.get(_key_of(_head_key(job_id))), account_id)
                content = jobs.get(_key_of(_key(_job_pk(job_id), CONTENT_SK)))
                ok = head is not None and content is not None
                if ok and (query.sender or query.tags):
                    data = json.loads(content["content"])  # type: ignore[index]
                    ok = (
                        not query.sender or query.sender.lower() in (data.get("from") or "").lower()
                    ) and all(tag in (data.get("tags") or []) for tag in query.tags)
                matching_job[job_id] = ok
            return matching_job[job_id]

        def rows(entry: Item) -> Iterator[_Row]:
            job_id = entry[PARTITION_KEY].removeprefix("JOB#")
            if not job_matches(job_id):
                return
            head = jobs[_key_of(_head_key(job_id))]
            created_at = float(head["created_at"])
            if (low is not None and created_at < low) or (high is not None and created_at > high):
                return
            chunk = int(entry[SORT_KEY].removeprefix(MEMBERS_PREFIX))
            state = jobs.get(_key_of(_state_key(job_id, chunk)))
            ids, emails = _member_ids(entry), entry.get("emails")
            if state is None or len(state["statuses"]) != len(ids):
                return
            for pos, message_id in enumerate(ids):
                if query.message_id is not None and message_id != query.message_id:
                    continue
                if anchor is not None and (
                    (created_at, message_id) >= anchor if descending else (created_at, message_id) <= anchor
                ):
                    continue
                if query.statuses and state["statuses"][pos] not in query.statuses:
                    continue
                if recipient is not None and emails is not None and emails[pos] != recipient:
                    continue
                yield _Row(created_at, message_id, state)

        for groups in self._entry_groups(entries):
            self._read_jobs([entry for group in groups for entry in group], jobs)
            ordered: list[_Row] = []
            for group in groups:
                ordered += sorted(
                    (row for entry in group for row in rows(entry)),
                    key=lambda row: (row.created_at, row.message_id),
                    reverse=descending,
                )
            start = 0
            while start < len(ordered) and len(found) < wanted:
                # the message items of as many rows as may still be needed (more with a subject filter)
                step = self.BATCH_GET_KEYS if subject else min(self.BATCH_GET_KEYS, wanted - len(found))
                part, start = ordered[start : start + step], start + step
                items = self._message_items([row.message_id for row in part])
                for row in part:
                    item = items.get(row.message_id)
                    if item is None or item["account_id"] != account_id:
                        continue
                    if recipient is not None and item["email"].lower() != recipient:
                        continue
                    if subject is not None and subject not in item.get("subject", "").lower():
                        continue
                    found.append((item, row.state, row.created_at))
                    if len(found) >= wanted:
                        break
            if len(found) >= wanted:
                break
        messages = self._assemble(found[:limit])
        if not descending:
            messages.reverse()
        return messages, len(found) > limit

    def _anchor(self, account_id: str, query: MessageQuery) -> tuple[tuple[float, str] | None, bool]:
        """The cursor's (created_at, id) and the direction: newest first, or oldest first to page
        back with `before`. An unknown cursor (or another account's) is ignored, as embedded."""
        cursor = query.after or query.before
        if not cursor:
            return None, True
        message = self._locate(cursor)
        if message is None or message["account_id"] != account_id:
            return None, True
        head = self._visible_head(self._get(_head_key(message["job_id"])), account_id)
        if head is None:
            return None, True
        return (float(head["created_at"]), cursor), bool(query.after)

    def _index_entries(
        self, account_id: str, low: float | None, high: float | None, descending: bool
    ) -> Iterator[Item]:
        """The account's chunk entries in gsi1 with created_at in [low, high] (a little wider:
        the sort key rounds to microseconds; callers compare the exact times)."""
        condition = "#g1pk = :pk"
        values: dict[str, Any] = {":pk": _messages_index(account_id)}
        low_key = None if low is None else _index_time(low - 1e-5)
        high_key = None if high is None else _index_time(high + 1e-5) + "~"  # after every "#..."
        if low_key is not None and high_key is not None:
            if low_key > high_key:
                return iter(())
            condition += " AND #g1sk BETWEEN :low AND :high"
            values |= {":low": low_key, ":high": high_key}
        elif low_key is not None:
            condition += " AND #g1sk >= :low"
            values[":low"] = low_key
        elif high_key is not None:
            condition += " AND #g1sk <= :high"
            values[":high"] = high_key
        return self._query(
            condition, values, index=GSI1_NAME, forward=not descending, page_size=self.LISTING_PAGE
        )

    def _entries_of_message(self, account_id: str, message_id: str) -> list[Item]:
        """The one chunk entry that holds the message (a message id filter needs no index)."""
        message = self._locate(message_id)
        if message is None or message["account_id"] != account_id:
            return []
        entry = self._get(_members_key(message["job_id"], int(message["chunk"])))
        return [entry] if entry is not None else []

    def _entry_groups(self, entries: Iterable[Item]) -> Iterator[list[list[Item]]]:
        """Runs of entries with the same creation time (their messages are ordered by id), a few
        runs at a time so that their jobs can be read together."""
        batch: list[list[Item]] = []
        size = 0
        for _, run in itertools.groupby(
            entries, key=lambda entry: entry.get(GSI1_SORT_KEY, "").split("#", 1)[0]
        ):
            group = list(run)
            batch.append(group)
            size += len(group)
            if size >= self.LISTING_PAGE:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _read_jobs(self, entries: Sequence[Item], into: dict[tuple[str, str], Item]) -> None:
        """The heads, contents and chunk states the entries refer to and `into` lacks."""
        keys: list[Item] = []
        for entry in entries:
            job_id = entry[PARTITION_KEY].removeprefix("JOB#")
            chunk = int(entry[SORT_KEY].removeprefix(MEMBERS_PREFIX))
            for key in (_head_key(job_id), _key(_job_pk(job_id), CONTENT_SK), _state_key(job_id, chunk)):
                if _key_of(key) not in into:
                    keys.append(key)
        if keys:
            into |= self._batch_get(keys, consistent=True)

    def _assemble(self, rows: Sequence[tuple[Item, Item, float]]) -> list[Message]:
        """Messages from their items and chunk states: reads the data items (variables kept apart
        for a data retention) and the log items of those that may have events."""
        data_keys = [
            _message_key(_message_id(item), DATA_SK) for item, _, _ in rows if "variables" not in item
        ]
        log_keys = [
            _message_key(_message_id(item), LOG_SK)
            for item, state, _ in rows
            if _may_have_events(state, int(item["pos"]))
        ]
        data = self._batch_get(data_keys, consistent=False) if data_keys else {}
        logs = self._batch_get(log_keys, consistent=True) if log_keys else {}
        now = time.time()
        messages = []
        for item, state, created_at in rows:
            message_id = _message_id(item)
            variables = _variables(item, data.get(_key_of(_message_key(message_id, DATA_SK))), now)
            log_item = logs.get(_key_of(_message_key(message_id, LOG_SK)))
            messages.append(_message(item, state, created_at, variables, log_item))
        return messages

    # -- retention --------------------------------------------------------------------------
    def purge_expired(self, now: float) -> int:
        """Nothing to do: every item that retention removes carries a TTL (TABLE.md, Retention),
        DynamoDB deletes it, and reads treat it as gone from the moment it expires."""
        return 0

    def _retire_data(self, message: Item, now: float) -> None:
        """A finished message of a job with a data retention: its data item goes now (0 days) or
        `days` from now (TTL), like the embedded store's data_until."""
        days = message.get("data_days")
        if days is None:
            return
        key = _message_key(_message_id(message), DATA_SK)
        if int(days) <= 0:
            self._delete(key)
        else:
            self._lower_ttl(key, int(now + _DAY * int(days)))

    def _retire_body(self, job_id: str, days: int | None, now: float) -> None:
        """A job that ended, with a data retention: its bodies go now (0 days) or `days` from now."""
        if days is None:
            return
        key = _key(_job_pk(job_id), BODY_SK)
        if days <= 0:
            self._delete(key)
        else:
            self._lower_ttl(key, int(now + _DAY * days))

    def _lower_ttl(self, key: Item, ttl: int) -> bool:
        """Bring an existing item's TTL forward to `ttl` (never later than it already is)."""
        return self._update(
            key,
            "SET #ttl = :ttl",
            {":ttl": ttl},
            "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl > :ttl)",
        )

    def _log_event(
        self, message: Item, now: float, status: str, text: str | None, times: dict[str, float] | None = None
    ) -> None:
        """Append an event to the message's log item (created by the first), setting `times`
        (#sent / #delivered) with it. The log expires with the message's records."""
        sets = ["#events = list_append(if_not_exists(#events, :empty), :event)"]
        values: dict[str, Any] = {
            ":empty": [],
            ":event": [{"time": now, "status": status, "log": text or ""}],
        }
        if message.get(TTL_ATTRIBUTE) is not None:
            sets.append("#ttl = :ttl")
            values[":ttl"] = message[TTL_ATTRIBUTE]
        for i, (name, value) in enumerate((times or {}).items()):
            # sent_at is set once: a log written before the send stopped logging may hold it already
            sets.append(
                f"{name} = if_not_exists({name}, :time{i})" if name == "#sent" else f"{name} = :time{i}"
            )
            values[f":time{i}"] = value
        self._try_update(_message_key(_message_id(message), LOG_SK), "SET " + ", ".join(sets), values)

    # -- suppressions -----------------------------------------------------------------------
    def put_suppression(self, suppression: Suppression) -> None:
        """The account's marker says "some" before and after the write (see suppressed)."""
        self._mark_suppressions(suppression.account_id, SOME_SUPPRESSIONS)
        self._put(
            {
                **_suppression_key(suppression.account_id, suppression.email, suppression.domain),
                "id": suppression.id,
                "account_id": suppression.account_id,
                "email": suppression.email.lower(),
                "domain": (suppression.domain or "").lower(),
                "reason": suppression.reason,
                "created_at": suppression.created_at,
                "expires_at": suppression.expires_at,
                TTL_ATTRIBUTE: _ttl_not_before(suppression.expires_at),
                # the account's suppressions in id order (list_suppressions)
                GSI1_PARTITION_KEY: _suppressions_index(suppression.account_id),
                GSI1_SORT_KEY: suppression.id,
            }
        )
        self._mark_suppressions(suppression.account_id, SOME_SUPPRESSIONS)

    def list_suppressions(
        self,
        account_id: str,
        email: str | None,
        domain: str | None,
        from_time: float | None,
        to_time: float | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[Suppression], bool]:
        now = time.time()
        items: Iterable[Item]
        if email:  # its few items, from the table (at most one per sender domain)
            items = sorted(self._suppressions_of(account_id, email), key=lambda item: item["id"])
            items = [item for item in items if after is None or item["id"] > after]
        else:  # the account's, in id order, from gsi1 (eventually consistent)
            condition = "#g1pk = :pk" + (" AND #g1sk > :after" if after else "")
            values = {":pk": _suppressions_index(account_id), **({":after": after} if after else {})}
            items = self._query(condition, values, index=GSI1_NAME, page_size=self.LISTING_PAGE)
        found: list[Suppression] = []
        for item in items:
            if (
                item["expires_at"] <= now
                or (domain and item["domain"] != domain.lower())
                or (from_time is not None and item["created_at"] < from_time)
                or (to_time is not None and item["created_at"] > to_time)
            ):
                continue
            found.append(_suppression(item))
            if len(found) > limit:
                break
        return found[: max(limit, 0)], len(found) > limit

    def delete_suppressions(self, account_id: str, email: str | None, domain: str | None) -> int:
        if email:
            items = self._suppressions_of(account_id, email)
        else:
            items = list(
                self._query(
                    "#pk = :pk AND begins_with(#sk, :prefix)",
                    {":pk": f"ACCOUNT#{account_id}", ":prefix": SUPPRESSION_PREFIX},
                    consistent=True,
                )
            )
        keys = [_key(*_key_of(item)) for item in items if not domain or item["domain"] == domain.lower()]
        deleted = sum(self._in_parallel(self._delete, keys))
        if deleted:  # maybe none left: the next suppressed() finds out
            self._mark_suppressions(account_id, None)
        return deleted

    def suppressed(self, account_id: str, emails: Sequence[str], domain: str | None, now: float) -> set[str]:
        """Two keys per address, read eventually consistent: its suppression for every sender
        domain, and the one for `domain`; nothing at all for an account whose marker says it has
        none (the marker is reused for SUPPRESSION_MARK_SECONDS)."""
        keys = [
            _suppression_key(account_id, email, scope)
            for email in sorted({e.lower() for e in emails})
            for scope in dict.fromkeys(["", (domain or "").lower()])
        ]
        if not keys or not self._may_have_suppressions(account_id):
            return set()
        found = self._batch_get(keys, consistent=False)
        return {item["email"] for item in found.values() if item["expires_at"] > now}

    def _may_have_suppressions(self, account_id: str) -> bool:
        """The account's marker (`ACCOUNT#{acct}`/`SUPPRESSIONS`): "some" (put_suppression writes
        it before and after its item), "none" (only this method writes it, after a strongly
        consistent query found no suppression, on condition that no put or delete bumped its
        generation since the marker was read), or unknown (no marker: an account of a deployment
        from before the marker, or delete_suppressions deleted some). Unknown is settled here, once.
        A put racing the settling either bumps the generation first (the condition fails) or
        marks "some" after it. What may be missed: a suppression put a moment ago by another
        process, for the marker's eventual consistency plus SUPPRESSION_MARK_SECONDS."""
        seen = self._suppression_marks.get(account_id)
        if seen is not None and time.monotonic() - seen[0] < self.SUPPRESSION_MARK_SECONDS:
            return seen[1] != NO_SUPPRESSIONS
        key = _key(f"ACCOUNT#{account_id}", SUPPRESSION_MARK_SK)
        marker = self._get(key, consistent=False) or {}
        state = marker.get("state")
        if state is None:  # unknown: is there any suppression at all?
            exists = next(
                self._query(
                    "#pk = :pk AND begins_with(#sk, :prefix)",
                    {":pk": f"ACCOUNT#{account_id}", ":prefix": SUPPRESSION_PREFIX},
                    consistent=True,
                    limit=1,
                ),
                None,
            )
            state = NO_SUPPRESSIONS if exists is None else SOME_SUPPRESSIONS
            generation = marker.get("gen")
            self._update(
                key,
                "SET #state = :state",
                {":state": state} | ({":gen": generation} if generation is not None else {}),
                "attribute_not_exists(#gen)" if generation is None else "#gen = :gen",
            )
        self._remember_mark(account_id, state)
        return state != NO_SUPPRESSIONS

    def _mark_suppressions(self, account_id: str, state: str | None) -> None:
        """Set the account's marker ("some", or None: unknown) and bump its generation."""
        self._try_update(
            _key(f"ACCOUNT#{account_id}", SUPPRESSION_MARK_SK),
            ("SET #state = :state ADD #gen :one" if state else "REMOVE #state ADD #gen :one"),
            {":one": 1} | ({":state": state} if state else {}),
        )
        self._remember_mark(account_id, state)

    def _remember_mark(self, account_id: str, state: str | None) -> None:
        if len(self._suppression_marks) >= self.SUPPRESSION_MARKS_KEPT:
            self._suppression_marks.clear()
        if state is None:
            self._suppression_marks.pop(account_id, None)
        else:
            self._suppression_marks[account_id] = (time.monotonic(), state)

    def _suppressions_of(self, account_id: str, email: str) -> list[Item]:
        prefix = f"{SUPPRESSION_PREFIX}{email.lower()}#"
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :prefix)",
            {":pk": f"ACCOUNT#{account_id}", ":prefix": prefix},
            consistent=True,
        )
        return [item for item in items if item["email"] == email.lower()]

    # -- idempotency ------------------------------------------------------------------------
    def begin_idempotent(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """One conditional PutItem: written if there is no record or only an expired one; else
        DynamoDB returns the live record with the failure (ReturnValuesOnConditionCheckFailure)."""
        item = {
            **_idempotency_key(record.account_id, record.key),
            "account_id": record.account_id,
            "key": record.key,
            "fingerprint": record.fingerprint,
            "state": "in_progress",
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "headers": {},
            TTL_ATTRIBUTE: _ttl_not_before(record.expires_at),
        }
        for _ in range(self.RACE_RETRIES):
            written, current = self._put_returning(
                item,
                "attribute_not_exists(#pk) OR #expires <= :now OR (#state = :busy AND #created <= :lease)",
                {
                    ":now": record.created_at,
                    ":busy": "in_progress",
                    ":lease": record.created_at - IDEMPOTENCY_LEASE_SECONDS,
                },
            )
            if written:
                return None
            if current is not None:
                return _idempotency(current)
        raise RuntimeError(f"idempotency key {record.key!r}: neither stored nor found")

    def finish_idempotent(
        self, account_id: str, key: str, status: int, body: str, headers: dict[str, str]
    ) -> None:
        self._update(
            _idempotency_key(account_id, key),
            "SET #state = :done, #status = :status, #body = :body, #headers = :headers",
            {":done": "done", ":status": status, ":body": body, ":headers": dict(headers)},
            "attribute_exists(#pk)",  # a released (or expired and deleted) key gets no stray item
        )

    def release_idempotent(self, account_id: str, key: str) -> None:
        self._delete(_idempotency_key(account_id, key))

    # -- engagement and campaigns -----------------------------------------------------------
    def record_engagement(
        self, account_id: str, message_id: str, kind: str, at: float, detail: str | None = None
    ) -> int | None:
        """GetItem the message and its head (both eventually consistent: what is read of them never
        changes), then one UpdateItem on the message's LOG item: `ADD {kind}_count 1` and the
        event appended, returning the new count. The first of its kind in a campaign's job also
        counts the message on the job's campaign entry, so campaign_stats reads no message."""
        if kind not in ENGAGEMENT_KINDS:
            raise ValueError(f"unknown engagement kind {kind!r}")
        message = self._locate(message_id)
        if message is None or message["account_id"] != account_id or _expired(message, time.time()):
            return None
        key = _head_key(message["job_id"])
        head = self._visible_head(self._get(key, consistent=False) or self._get(key), account_id)
        if head is None:
            return None  # left behind by a failed create_job, or expired
        sets = ["#events = list_append(if_not_exists(#events, :empty), :event)"]
        values: dict[str, Any] = {
            ":empty": [],
            ":event": [{"time": at, "status": kind, "log": detail or ""}],  # "" like other events
            ":one": 1,
        }
        if message.get(TTL_ATTRIBUTE) is not None:  # the log expires with the message's records
            sets.append("#ttl = :ttl")
            values[":ttl"] = message[TTL_ATTRIBUTE]
        _, updated = self._try_update(
            _message_key(message_id, LOG_SK),
            "SET " + ", ".join(sets) + f" ADD #{kind}_count :one",
            values,
            returns="UPDATED_NEW",
        )
        count = int((updated or {})[f"{kind}_count"])
        campaign_id = head.get("campaign_id")
        if count == 1 and campaign_id is not None:
            self._update(
                _campaign_key(account_id, campaign_id, message["job_id"]),
                f"ADD #{kind} :one",
                {":one": 1},
                "attribute_exists(#pk)",  # an expired (or unknown) entry gets no stray item
            )
        return count

    def campaign_stats(self, account_id: str, campaign_id: str) -> CampaignStats | None:
        """Query the campaign's entries (one per job), then per job its head and chunk states (one
        Query each, 4 in parallel): a job counts only if its head is visible (committed, not
        expired) and carries this campaign id. Engagement comes from the entries' counters."""
        entries = [
            entry
            for entry in self._query(
                "#pk = :pk AND begins_with(#sk, :prefix)",
                {":pk": f"ACCOUNT#{account_id}", ":prefix": f"{CAMPAIGN_PREFIX}{campaign_id}#"},
                consistent=True,
            )
            if entry["campaign_id"] == campaign_id  # `a#b` also begins with `a#`
        ]

        def job_counts(entry: Item) -> dict[str, int] | None:
            items = self._job_items(entry["job_id"], CHUNK_PREFIX, HEAD_SK)
            head = self._visible_head(items.pop(HEAD_SK, None), account_id)
            if head is None or head.get("campaign_id") != campaign_id:
                return None
            return _counts(items.values())

        counted = [
            (entry, counts)
            for entry, counts in zip(entries, self._in_parallel(job_counts, entries), strict=True)
            if counts is not None
        ]
        if not counted:
            return None
        totals: Counter[str] = Counter()
        for _, counts in counted:
            totals.update(counts)
        engaged = {kind: sum(int(entry.get(kind, 0)) for entry, _ in counted) for kind in ENGAGEMENT_KINDS}
        return CampaignStats(
            campaign_id=campaign_id,
            jobs=len(counted),
            counts=dict(totals),
            opened=engaged[EngagementKind.OPENED],
            clicked=engaged[EngagementKind.CLICKED],
            unsubscribed=engaged[EngagementKind.UNSUBSCRIBED],
        )

    # -- webhooks ---------------------------------------------------------------------------
    def put_webhook(self, webhook: Webhook) -> None:
        self._put(
            {
                **_webhook_key(webhook.account_id, webhook.id),
                "id": webhook.id,
                "account_id": webhook.account_id,
                "name": webhook.name,
                "url": webhook.url,
                "secret": webhook.secret,
                "enabled": webhook.enabled,
                "events": list(webhook.events),
                "created_at": webhook.created_at,
                "updated_at": webhook.updated_at,
                "scope": webhook.scope,
                "domains": list(webhook.domains),
                "success_count": webhook.success_count,
                "error_count": webhook.error_count,
                "errors_since_last_success": webhook.errors_since_last_success,
                "last_request_at": webhook.last_request_at,
                "disabled_reason": webhook.disabled_reason,
            }
        )

    def get_webhook(self, account_id: str, webhook_id: str) -> Webhook | None:
        item = self._get(_webhook_key(account_id, webhook_id))
        return _webhook(item) if item else None

    def list_webhooks(self, account_id: str, limit: int, after: str | None) -> tuple[list[Webhook], bool]:
        limit = max(limit, 0)
        items = list(
            self._query(
                "#pk = :pk AND begins_with(#sk, :prefix)",
                {":pk": f"ACCOUNT#{account_id}", ":prefix": WEBHOOK_PREFIX},
                consistent=True,
                start=_webhook_key(account_id, after) if after is not None else None,
                limit=limit + 1,
            )
        )
        return [_webhook(item) for item in items[:limit]], len(items) > limit

    def delete_webhook(self, account_id: str, webhook_id: str) -> bool:
        """The webhook only (ReturnValues ALL_OLD tells whether it existed): its deliveries stay
        until their TTL (the port allows it: "goes with it, or expires"), so that a delete costs one
        write however long the log is."""
        return self._delete(_webhook_key(account_id, webhook_id))

    def record_webhook_attempt(
        self, account_id: str, webhook_id: str, ok: bool, at: float, disable_after: int
    ) -> Webhook | None:
        """One UpdateItem (ADD the counters, condition: it exists, ReturnValues ALL_NEW); when the
        failures in a row reached `disable_after` on an enabled webhook, a second, conditional one
        disables it (only one racing caller does; a success in between prevents it)."""
        key = _webhook_key(account_id, webhook_id)
        if ok:
            update = "SET #last_request = :at, #streak = :zero ADD #successes :one"
            values: dict[str, Any] = {":at": at, ":zero": 0, ":one": 1}
        else:
            update = "SET #last_request = :at ADD #failures :one, #streak :one"
            values = {":at": at, ":one": 1}
        applied, item = self._try_update(key, update, values, "attribute_exists(#pk)", returns="ALL_NEW")
        if not applied or item is None:
            return None
        if not ok and item["enabled"] and int(item["errors_since_last_success"]) >= disable_after:
            _, item = self._try_update(
                key,
                "SET #enabled = :false, #reason = :reason",
                {
                    ":false": False,
                    ":true": True,
                    ":reason": _AUTO_DISABLED.format(disable_after),
                    ":limit": disable_after,
                },
                "#enabled = :true AND #streak >= :limit",
                returns="ALL_NEW",
            )  # applied: the item now; not applied: the item as it is (None: deleted meanwhile)
            if item is None:
                return None
        return _webhook(item)

    def put_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        self._put(
            {
                **_delivery_key(delivery.account_id, delivery.webhook_id, delivery.id),
                "id": delivery.id,
                "account_id": delivery.account_id,
                "webhook_id": delivery.webhook_id,
                "event_type": delivery.event_type,
                "payload": delivery.payload,
                "created_at": delivery.created_at,
                "updated_at": delivery.updated_at,
                "status": delivery.status,
                "attempts": list(delivery.attempts),
                "next_attempt_at": delivery.next_attempt_at,
                "expires_at": delivery.expires_at,
                TTL_ATTRIBUTE: None if delivery.expires_at is None else _ttl_not_before(delivery.expires_at),
                # the webhook's deliveries, newest first (list_webhook_deliveries)
                GSI1_PARTITION_KEY: _deliveries_index(delivery.account_id, delivery.webhook_id),
                GSI1_SORT_KEY: f"{_exact_time(delivery.created_at)}#{delivery.id}",
            }
        )

    def get_webhook_delivery(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> WebhookDelivery | None:
        """GetItem; the account and webhook are in the key. An expired one is not found."""
        item = self._get(_delivery_key(account_id, webhook_id, delivery_id))
        if item is None or _delivery_expired(item, time.time()):
            return None
        return _delivery(item)

    def list_webhook_deliveries(
        self, account_id: str, webhook_id: str, limit: int, after: str | None
    ) -> tuple[list[WebhookDelivery], bool]:
        """GetItem the cursor's delivery (for its sort key), then Query gsi1
        `WEBHOOK#{acct}#{webhook}#DELIVERIES` descending below it, first page 25 items, doubling;
        expired ones are skipped until limit + 1 matched. An unknown cursor (or another webhook's)
        reads as no cursor."""
        limit = max(limit, 0)
        condition = "#g1pk = :pk"
        values: dict[str, Any] = {":pk": _deliveries_index(account_id, webhook_id)}
        cursor = None if after is None else self._get(_delivery_key(account_id, webhook_id, after))
        if cursor is not None:
            condition += " AND #g1sk < :cursor"
            values[":cursor"] = cursor[GSI1_SORT_KEY]
        now = time.time()
        page: list[WebhookDelivery] = []
        for item in self._query(
            condition, values, index=GSI1_NAME, forward=False, page_size=self.LISTING_PAGE
        ):
            if _delivery_expired(item, now) or item["account_id"] != account_id:
                continue
            page.append(_delivery(item))
            if len(page) > limit:
                break
        return page[:limit], len(page) > limit

    # -- reads ------------------------------------------------------------------------------
    def _visible_head(self, head: Item | None, account_id: str | None = None) -> Item | None:
        """The head if it exists, belongs to the account (when one is given) and has not expired:
        DynamoDB deletes expired items only eventually (typically within days), so reads filter."""
        if head is None or (account_id is not None and head["account_id"] != account_id):
            return None
        return None if _expired(head, time.time()) else head

    def _job_items(self, job_id: str, first_sk: str, last_sk: str) -> dict[str, Item]:
        """The job's items whose sort key lies in [first_sk, last_sk], by sort key."""
        items = self._query(
            "#pk = :pk AND #sk BETWEEN :first AND :last",
            {":pk": _job_pk(job_id), ":first": first_sk, ":last": last_sk},
            consistent=True,
        )
        return {item[SORT_KEY]: item for item in items}

    def _locate(self, message_id: str) -> Item | None:
        """A message (see _message_items)."""
        return self._message_items([message_id]).get(message_id)

    def _message_items(self, message_ids: Sequence[str], packed: bool | None = None) -> dict[str, Item]:
        """Messages by id, as message items (a packed chunk's are made from its item: same fields).
        Ids that may be packed are looked up by their chunk's prefix first; the others, and those
        whose prefix is unknown (e.g. a UUID given before packed chunks), as message items.
        `packed`: the caller knows whether they are (a chunk's members say)."""
        found = self._packed_messages_of(message_ids) if packed is not False else {}
        rest = [_message_key(message_id) for message_id in message_ids if message_id not in found]
        if rest:
            found |= {_message_id(item): item for item in self._immutable_items(rest).values()}
        return found

    def _packed_messages_of(self, message_ids: Sequence[str]) -> dict[str, Item]:
        """The messages among `message_ids` that belong to packed chunks, by id."""
        wanted: dict[str, list[tuple[str, int]]] = {}  # prefix -> (id, position)
        for message_id in message_ids:
            parsed = _packed_id(message_id)
            if parsed is not None:
                wanted.setdefault(parsed[0], []).append((message_id, parsed[1]))
        if not wanted:
            return {}
        chunks = self._immutable_items([_chunk_messages_key(prefix) for prefix in wanted], self._packed)
        found: dict[str, Item] = {}
        for prefix, ids in wanted.items():
            chunk = chunks.get(_key_of(_chunk_messages_key(prefix)))
            if chunk is None:
                continue
            rows = chunk.get("_rows")
            if rows is None:  # decoded once per item read (remembered with it)
                rows = chunk["_rows"] = json.loads(zlib.decompress(bytes(chunk["rows"])))
            for message_id, pos in ids:
                if pos < len(rows):
                    seq, email, name, subject, variables = rows[pos]
                    found[message_id] = {
                        **_message_key(message_id),
                        "job_id": chunk["job_id"],
                        "account_id": chunk["account_id"],
                        "chunk": chunk["chunk"],
                        "pos": pos,
                        "seq": seq,
                        "email": email,
                        "name": name,
                        "subject": subject,
                        **({"variables": variables} if variables is not None else {}),
                        **{k: chunk[k] for k in ("data_days", _PACKED_MARK, TTL_ATTRIBUTE) if k in chunk},
                    }
        return found

    def _immutable_items(
        self, keys: Sequence[Item], remembered: _Remembered | None = None
    ) -> dict[tuple[str, str], Item]:
        """Items that never change once written (message items, packed chunks' messages), so the
        adapter remembers those it read (the sender's chunk_messages, claim_messages and
        finish_message read the same ones), and an eventually consistent read (half the price) is
        exact whenever it finds the item; only a miss is read again strongly consistent, in case
        it was written a moment ago."""
        remembered = remembered or self._immutable
        found: dict[tuple[str, str], Item] = {}
        for key in keys:
            item = remembered.get(_key_of(key))
            if item is not None:
                found[_key_of(key)] = item
        unknown = [key for key in keys if _key_of(key) not in found]
        if unknown:
            read = (
                self._batch_get(unknown, consistent=False)
                if len(unknown) > 1
                else self._get_one(unknown[0], False)
            )
            missing = [key for key in unknown if _key_of(key) not in read]
            if missing:
                read |= (
                    self._batch_get(missing, consistent=True)
                    if len(missing) > 1
                    else self._get_one(missing[0], True)
                )
            remembered.put(read.values())
            found |= read
        return found

    def _get_one(self, key: Item, consistent: bool) -> dict[tuple[str, str], Item]:
        item = self._get(key, consistent=consistent)
        return {_key_of(item): item} if item is not None else {}

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
        forward: bool = True,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Every matching item (up to `limit`), following LastEvaluatedKey across 1 MB pages,
        lazily: a page is read when the caller gets that far. `page_size` caps the first page (and
        doubles with every next one), for callers that may stop early."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": _names(key_condition),
            "ExpressionAttributeValues": _marshal(values),
            "ScanIndexForward": forward,
        }
        if index is not None:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent  # an index is only ever eventually consistent
        if start is not None:
            request["ExclusiveStartKey"] = _marshal(start)
        remaining = limit
        while remaining is None or remaining > 0:
            caps = [n for n in (remaining, page_size) if n is not None]
            if caps:
                request["Limit"] = min(caps)
            elif "Limit" in request:
                del request["Limit"]
            response = self.client.query(**request)
            for raw in response.get("Items", []):
                yield _unmarshal(raw)
            if remaining is not None:
                remaining -= len(response.get("Items", []))
            if page_size is not None:
                page_size = min(page_size * 2, 1000)
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
        return self._put_returning(item, condition)[0]

    def _put_returning(
        self, item: Item, condition: str | None = None, values: dict[str, Any] | None = None
    ) -> tuple[bool, Item | None]:
        """PutItem: (True, None) if written, else (False, the item as it is now)."""
        request: dict[str, Any] = {"TableName": self.table_name, "Item": _marshal(item)}
        if condition is not None:
            request |= {
                "ConditionExpression": condition,
                "ExpressionAttributeNames": _names(condition),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        if values:
            request["ExpressionAttributeValues"] = {k: _to_attribute(v) for k, v in values.items()}
        try:
            self.client.put_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            current = exc.response.get("Item")
            return False, _unmarshal(current) if current else None
        return True, None

    def _delete(self, key: Item) -> bool:
        """DeleteItem; whether the item was there (ReturnValues ALL_OLD, at no extra cost)."""
        response = self.client.delete_item(
            TableName=self.table_name, Key=_marshal(key), ReturnValues="ALL_OLD"
        )
        return "Attributes" in response

    def _update(self, key: Item, update: str, values: dict[str, Any], condition: str) -> bool:
        """A conditional UpdateItem; False if the condition did not hold."""
        return self._try_update(key, update, values, condition)[0]

    def _try_update(
        self,
        key: Item,
        update: str,
        values: dict[str, Any],
        condition: str | None = None,
        returns: str | None = None,
    ) -> tuple[bool, Item | None]:
        """An UpdateItem, conditional if a condition is given: (True, None) if it was applied, else
        (False, the item as it is now), which DynamoDB returns with the failure at no extra cost.
        With `returns` (UPDATED_NEW, ALL_NEW, ...), an applied update comes back with those
        attributes instead of None (also at no extra cost)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _marshal(key),
            "UpdateExpression": update,
            "ExpressionAttributeNames": _names(update, condition),
        }
        if condition is not None:
            request |= {"ConditionExpression": condition, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if returns is not None:
            request["ReturnValues"] = returns
        if values:
            # Unlike top-level item attributes, a None value here is stored as NULL.
            request["ExpressionAttributeValues"] = {k: _to_attribute(v) for k, v in values.items()}
        try:
            response = self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            current = exc.response.get("Item")
            return False, _unmarshal(current) if current else None
        return True, _unmarshal(response.get("Attributes", {})) if returns is not None else None

    def _update_position(
        self,
        message: Item,
        build: Callable[[_Layout, float], tuple[str, dict[str, Any], str]],
        returns: str | None = None,
    ) -> tuple[bool, Item | None]:
        """One conditional UpdateItem of the message's position in its chunk state, built for the
        state's layout, which the message item tells (a state that turns out to be in the other
        layout, e.g. kept from a create before the packed layout, is written again in its own)."""
        key = _state_key(message["job_id"], int(message["chunk"]))
        layout, t0 = _layout_of(message)
        for _ in range(2):
            update, values, condition = build(layout, t0)
            applied, current = self._try_update(key, update, values, condition, returns)
            if applied or current is None or _layout_of(current)[0] == layout:
                break
            layout, t0 = _layout_of(current)
        return applied, current

    def _move_positions(
        self,
        key: Item,
        state: Item | None,
        positions: Iterable[int],
        movable: Callable[[str, float], bool],
        condition: Callable[[_Layout, int], str],
        values: Callable[[_Layout, float], dict[str, Any]],
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
                layout, t0 = _layout_of(current)
                applied, current = self._try_update(
                    key,
                    "SET "
                    + ", ".join(f"{layout.status(p)} = :to, {layout.changed(p)} = :now" for p in ready),
                    {**values(layout, t0), ":to": layout.code(to), ":now": layout.stamp(now, t0)},
                    " AND ".join(condition(layout, p) for p in ready),
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
