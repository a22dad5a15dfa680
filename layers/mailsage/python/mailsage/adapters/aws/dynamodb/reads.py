"""The reads several aggregates share: a job's items by sort-key range, its head if visible, messages
by id (packed chunks' and items of their own, remembered: they never change), and messages
assembled from their items, chunk states, logs and data."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any

from mailsage.adapters.aws.dynamodb.caches import Remembered
from mailsage.adapters.aws.dynamodb.chunk_layout import PACKED_MARK
from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import (
    DATA_SK,
    JOB_OF_ONE,
    LOG_SK,
    Item,
    chunk_messages_key,
    is_expired,
    job_pk,
    key_of,
    message_key,
    packed_id,
)
from mailsage.adapters.aws.dynamodb.records import (
    decode_message,
    decode_variables,
    may_have_events,
    message_id_of,
)
from mailsage.adapters.aws.table import SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain.models import Message


class Reads(TableClient):
    """The reads several aggregates share (see the module's docstring)."""

    IMMUTABLE_ITEMS_KEPT = 2048  # message items remembered (they never change once written)
    PACKED_CHUNKS_KEPT = 64  # packed chunks' message items remembered (likewise)

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(table_name, client)
        self._immutable = Remembered(self.IMMUTABLE_ITEMS_KEPT)  # see _message_items
        self._packed = Remembered(self.PACKED_CHUNKS_KEPT)

    def _visible_head(self, head: Item | None, account_id: str | None = None) -> Item | None:
        """The head if it exists, belongs to the account (when one is given) and has not expired:
        DynamoDB deletes expired items only eventually (typically within days), so reads filter."""
        if head is None or (account_id is not None and head["account_id"] != account_id):
            return None
        return None if is_expired(head, time.time()) else head

    def _job_items(self, job_id: str, first_sk: str, last_sk: str) -> dict[str, Item]:
        """The job's items whose sort key lies in [first_sk, last_sk], by sort key."""
        items = self._query(
            "#pk = :pk AND #sk BETWEEN :first AND :last",
            {":pk": job_pk(job_id), ":first": first_sk, ":last": last_sk},
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
        rest = [message_key(message_id) for message_id in message_ids if message_id not in found]
        if rest:
            found |= {message_id_of(item): item for item in self._immutable_items(rest).values()}
        return found

    def _packed_messages_of(self, message_ids: Sequence[str]) -> dict[str, Item]:
        """The messages among `message_ids` that belong to packed chunks, by id."""
        wanted: dict[str, list[tuple[str, int]]] = {}  # prefix -> (id, position)
        for message_id in message_ids:
            parsed = packed_id(message_id)
            if parsed is not None:
                wanted.setdefault(parsed[0], []).append((message_id, parsed[1]))
        if not wanted:
            return {}
        chunks = self._immutable_items([chunk_messages_key(prefix) for prefix in wanted], self._packed)
        found: dict[str, Item] = {}
        for prefix, ids in wanted.items():
            chunk = chunks.get(key_of(chunk_messages_key(prefix)))
            if chunk is None:
                continue
            rows = chunk.get("_rows")
            if rows is None:  # decoded once per item read (remembered with it)
                rows = chunk["_rows"] = json.loads(zlib.decompress(bytes(chunk["rows"])))
            for message_id, pos in ids:
                if pos < len(rows):
                    seq, email, name, subject, variables = rows[pos]
                    found[message_id] = {
                        **message_key(message_id),
                        "job_id": chunk["job_id"],
                        "account_id": chunk["account_id"],
                        "chunk": chunk["chunk"],
                        "pos": pos,
                        "seq": seq,
                        "email": email,
                        "name": name,
                        "subject": subject,
                        **({"variables": variables} if variables is not None else {}),
                        **{
                            k: chunk[k]
                            for k in ("data_days", PACKED_MARK, JOB_OF_ONE, TTL_ATTRIBUTE)
                            if k in chunk
                        },
                    }
        return found

    def _immutable_items(
        self, keys: Sequence[Item], remembered: Remembered | None = None
    ) -> dict[tuple[str, str], Item]:
        """Items that never change once written (message items, packed chunks' messages), so the
        adapter remembers those it read (the sender's chunk_messages, claim_messages and
        finish_message read the same ones), and an eventually consistent read (half the price) is
        exact whenever it finds the item; only a miss is read again strongly consistent, in case
        it was written a moment ago."""
        remembered = remembered or self._immutable
        found: dict[tuple[str, str], Item] = {}
        for key in keys:
            item = remembered.get(key_of(key))
            if item is not None:
                found[key_of(key)] = item
        unknown = [key for key in keys if key_of(key) not in found]
        if unknown:
            read = (
                self._batch_get(unknown, consistent=False)
                if len(unknown) > 1
                else self._get_one(unknown[0], False)
            )
            missing = [key for key in unknown if key_of(key) not in read]
            if missing:
                read |= (
                    self._batch_get(missing, consistent=True)
                    if len(missing) > 1
                    else self._get_one(missing[0], True)
                )
            remembered.put(read.values())
            found |= read
        return found

    def _assemble(self, rows: Sequence[tuple[Item, Item, float]]) -> list[Message]:
        """Messages from their items and chunk states: reads the data items (variables kept apart
        for a data retention) and the log items of those that may have events."""
        data_keys = [
            message_key(message_id_of(item), DATA_SK) for item, _, _ in rows if "variables" not in item
        ]
        log_keys = [
            message_key(message_id_of(item), LOG_SK)
            for item, state, _ in rows
            if may_have_events(state, int(item["pos"]))
        ]
        data = self._batch_get(data_keys, consistent=False) if data_keys else {}
        logs = self._batch_get(log_keys, consistent=True) if log_keys else {}
        now = time.time()
        messages = []
        for item, state, created_at in rows:
            message_id = message_id_of(item)
            variables = decode_variables(item, data.get(key_of(message_key(message_id, DATA_SK))), now)
            log_item = logs.get(key_of(message_key(message_id, LOG_SK)))
            messages.append(decode_message(item, state, created_at, variables, log_item))
        return messages
