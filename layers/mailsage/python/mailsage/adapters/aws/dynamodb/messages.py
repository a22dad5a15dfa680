"""One message as the API and delivery feedback see it: read, cancel, delivery status, engagement."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from mailsage.adapters.aws.dynamodb.chunk_layout import Layout
from mailsage.adapters.aws.dynamodb.chunk_states import ChunkStates
from mailsage.adapters.aws.dynamodb.codec import placeholders
from mailsage.adapters.aws.dynamodb.keys import (
    DATA_SK,
    LOG_SK,
    MESSAGE_SK,
    Item,
    campaign_key,
    head_key,
    is_expired,
    key_of,
    member_ids,
    members_key,
    message_key,
    state_key,
)
from mailsage.adapters.aws.dynamodb.records import decode_message, decode_variables
from mailsage.adapters.aws.table import SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain.models import ENGAGEMENT_KINDS, Message, MessageStatus


class Messages(ChunkStates):
    """MessageStore on the table, but for list_messages (listing.py)."""

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
        keys = [head_key(job_id), state_key(job_id, chunk), members_key(job_id, chunk)]
        if packed:
            keys.append(message_key(message_id, LOG_SK))
            if "variables" not in message:  # kept apart: a data retention
                keys.append(message_key(message_id, DATA_SK))
        found = self._batch_get(keys, consistent=True)
        head, state, members = (found.get(key_of(key)) for key in keys[:3])
        if packed:
            parts = {item[SORT_KEY]: item for item in (found.get(key_of(key)) for key in keys[3:]) if item}
        head = self._visible_head(head, account_id)
        if head is None or state is None or members is None:
            return None
        if member_ids(members)[pos : pos + 1] != [message_id]:
            return None  # left behind by a failed create_job whose job id was created again since
        now = time.time()
        variables = decode_variables(message, parts.get(DATA_SK), now)
        return decode_message(message, state, float(head["created_at"]), variables, parts.get(LOG_SK))

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

        def update(layout: Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            allowed = placeholders("from", [layout.code(s) for s in statuses])
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
        if message is None or message["account_id"] != account_id or is_expired(message, time.time()):
            return None
        key = head_key(message["job_id"])
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
            message_key(message_id, LOG_SK),
            "SET " + ", ".join(sets) + f" ADD #{kind}_count :one",
            values,
            returns="UPDATED_NEW",
        )
        count = int((updated or {})[f"{kind}_count"])
        campaign_id = head.get("campaign_id")
        if count == 1 and campaign_id is not None:
            self._update(
                campaign_key(account_id, campaign_id, message["job_id"]),
                f"ADD #{kind} :one",
                {":one": 1},
                "attribute_exists(#pk)",  # an expired (or unknown) entry gets no stray item
            )
        return count
