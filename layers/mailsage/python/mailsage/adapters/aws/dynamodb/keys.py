"""The table's key schema: which item lives under which key (the map below; TABLE.md next to the
package says why), the key builders, and the TTL helpers every module shares."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from typing import Any

from mailsage.adapters.aws.table import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

Item = dict[str, Any]  # an item as plain Python values (codec.py maps them to DynamoDB's)

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
# MSG#{message}       LOG                     events, sent_at, delivered_at (written after transitions
#                                             but a send and the first report after it);
#                                             {opened,clicked,unsubscribed}_count (record_engagement)
# MSG#{message}       MSG                     message: recipient, subject, variables (immutable);
#                                             only for ids that are not of a packed chunk (below)
# MSGCHUNK#{prefix}   MESSAGES                the messages of a chunk whose ids share `prefix`:
#                                             job, chunk, and per position recipient, subject,
#                                             variables (zlib JSON; immutable)
# PACING#{key}        PACING                  a provider's pacing state (JSON) and its generation; ttl
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
CHUNK_MESSAGES_PREFIX = "MSGCHUNK#"  # + a chunk's message id prefix: its messages (see packed_id)
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
JOB_OF_ONE = "one"  # on a message item (or chunk's): its job has this one message (claim_messages)
PACING_PREFIX = "PACING#"  # + the pacing key; no other item's pk begins with it
PACING_SK = "PACING"
ACTIVE_PK = "ACTIVE"  # gsi1pk of the jobs that are queued or running (a sparse index)
DAY = 86_400  # seconds: a retention in days becomes a TTL


def make_key(pk: str, sk: str) -> Item:
    return {PARTITION_KEY: pk, SORT_KEY: sk}


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def head_key(job_id: str) -> Item:
    return make_key(job_pk(job_id), HEAD_SK)


def state_key(job_id: str, chunk: int) -> Item:
    return make_key(job_pk(job_id), f"{CHUNK_PREFIX}{chunk:06d}")


def members_key(job_id: str, chunk: int) -> Item:
    return make_key(job_pk(job_id), f"{MEMBERS_PREFIX}{chunk:06d}")


def message_key(message_id: str, sk: str = MESSAGE_SK) -> Item:
    return make_key(f"MSG#{message_id}", sk)


# A packed chunk: its message ids are UUIDs sharing their first 28 hex digits (the prefix: the
# domain's new_message_ids) and holding their position in the last 4, so one item per chunk, found
# by the prefix, holds what a message item held for each of them.
PACKED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PACKED_PREFIX_LENGTH = 32  # "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx", then 4 hex digits of position


def packed_id(message_id: str) -> tuple[str, int] | None:
    """(prefix, position) of an id that may be of a packed chunk (any lower-case UUID is: a
    message stored as an item of its own is found once its prefix is not)."""
    if not PACKED_ID.fullmatch(message_id):
        return None
    return message_id[:PACKED_PREFIX_LENGTH], int(message_id[PACKED_PREFIX_LENGTH:], 16)


def chunk_messages_key(prefix: str) -> Item:
    return make_key(f"{CHUNK_MESSAGES_PREFIX}{prefix}", CHUNK_MESSAGES_SK)


def packed_prefix(ids: Sequence[str]) -> str | None:
    """The prefix shared by a chunk's ids if they are its packed ids in position order."""
    parsed = [packed_id(message_id) for message_id in ids]
    if not parsed or parsed[0] is None:
        return None
    prefix = parsed[0][0]
    return prefix if all(one == (prefix, pos) for pos, one in enumerate(parsed)) else None


def member_ids(members: Item) -> list[str]:
    """A members item's message ids in position order (a packed chunk's from its prefix)."""
    if "ids" in members:
        return list(members["ids"])
    prefix = members["prefix"]
    return [f"{prefix}{pos:04x}" for pos in range(len(members["emails"]))]


def template_key(account_id: str, template_id: str) -> Item:
    return make_key(f"ACCOUNT#{account_id}", f"{TEMPLATE_PREFIX}{template_id}")


def suppression_key(account_id: str, email: str, domain: str | None) -> Item:
    """Lower-cased email and domain ("" for a suppression of every sender domain). Domains hold
    no '#', so the key is unambiguous even for an email that does."""
    return make_key(f"ACCOUNT#{account_id}", f"{SUPPRESSION_PREFIX}{email.lower()}#{(domain or '').lower()}")


def idempotency_key(account_id: str, key: str) -> Item:
    return make_key(f"ACCOUNT#{account_id}", f"{IDEMPOTENCY_PREFIX}{key}")


def campaign_key(account_id: str, campaign_id: str, job_id: str) -> Item:
    return make_key(f"ACCOUNT#{account_id}", f"{CAMPAIGN_PREFIX}{campaign_id}#{job_id}")


def webhook_key(account_id: str, webhook_id: str) -> Item:
    return make_key(f"ACCOUNT#{account_id}", f"{WEBHOOK_PREFIX}{webhook_id}")


def delivery_key(account_id: str, webhook_id: str, delivery_id: str) -> Item:
    return make_key(f"WEBHOOK#{account_id}#{webhook_id}", f"{DELIVERY_PREFIX}{delivery_id}")


def deliveries_index(account_id: str, webhook_id: str) -> str:
    return f"WEBHOOK#{account_id}#{webhook_id}#DELIVERIES"


def pacing_key(key: str) -> Item:
    return make_key(f"{PACING_PREFIX}{key}", PACING_SK)


def exact_time(when: float) -> str:
    """A time as a sort key that orders exactly like the float: the 16 hex digits of its IEEE 754
    bits, whose order is the numeric order for every non-negative float (negatives count as 0)."""
    return struct.pack(">d", when if when > 0 else 0.0).hex()


def messages_index(account_id: str) -> str:
    return f"ACCOUNT#{account_id}#MESSAGES"


def suppressions_index(account_id: str) -> str:
    return f"ACCOUNT#{account_id}#SUPPRESSIONS"


def index_time(created_at: float) -> str:
    """created_at as a sort key prefix: fixed width, so that text order is time order."""
    return f"{max(created_at, 0.0):020.6f}"


def key_of(item: Item) -> tuple[str, str]:
    return item[PARTITION_KEY], item[SORT_KEY]


def ttl_not_before(when: float) -> int | None:
    """A TTL that never deletes an item before `when` (None: never, for a time beyond any TTL)."""
    return math.ceil(when) if math.isfinite(when) else None


def is_expired(item: Item | None, now: float) -> bool:
    """DynamoDB deletes expired items only eventually (typically within days), so reads filter."""
    expires = None if item is None else item.get(TTL_ATTRIBUTE)
    return expires is not None and expires <= now
