"""One message as the API and delivery feedback see it: read, cancel, delivery status, engagement."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from mailsage.adapters.aws.dynamodb.chunk_layout import PACKED, Layout
from mailsage.adapters.aws.dynamodb.chunk_states import ChunkStates, layout_of
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
from mailsage.adapters.aws.dynamodb.records import decode_message, decode_variables, folded_report
from mailsage.adapters.aws.table import SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain.models import ENGAGEMENT_KINDS, Message, MessageStatus


def _holds(state: Item, p: int) -> bool:
    """Whether the state holds the first delivery report of the message at `p`."""
    return folded_report(state, p) is not None


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
        """The first report after a send on the first attempt is one write: the state holds it,
        with the send's time (chunk_layout.py), and its event is made up on read
        (records.folded_report). Any other move writes the state, then the log, which takes over
        the send's time and a report the state held."""
        statuses = [s.value for s in allowed_from]
        message = self._locate(message_id)
        if not statuses or message is None or message["account_id"] != account_id:
            return False
        p = int(message["pos"])
        now = time.time()
        details = {"code": error_code, "message": error_message}
        held = False  # whether the state holds a report of this message (as far as is known)
        if MessageStatus.SENT in statuses and layout_of(message)[0] is PACKED:
            folded, current = self._fold_report(message, p, to, details, now)
            if folded:
                return True
            if current is None or current["statuses"][p] not in statuses:
                return False
            held = _holds(current, p)
        return self._logged_report(message, p, to, statuses, details, now, held)

    def _fold_report(
        self, message: Item, p: int, to: MessageStatus, details: dict[str, str | None], now: float
    ) -> tuple[bool, Item | None]:
        """sent -> `to` in one UpdateItem that sets the attempts to the send's stamp minus now
        (< 0 by the condition: a clock behind the sender's takes the logged way). Without a
        detail of its own the report's text is its status: only a position with no error folds."""
        _, t0 = layout_of(message)
        sets = [f"#a[{p}] = #c[{p}] - :now", f"#s[{p}] = :to", f"#c[{p}] = :now"]
        values: dict[str, Any] = {
            ":to": PACKED.code(to),
            ":now": PACKED.stamp(now, t0),
            ":sent": PACKED.code(MessageStatus.SENT),
            ":one": 1,
        }
        condition = f"#s[{p}] = :sent AND #a[{p}] = :one AND #c[{p}] < :now"
        if details["message"] is None:
            condition += f" AND attribute_not_exists(#em.#p{p})"
        for which, placeholder in (("code", ":code"), ("message", ":error")):
            if details[which] is not None:
                sets.append(str(PACKED.error(which, p, details[which], placeholder)[0]))
                values[placeholder] = details[which]
        key = state_key(message["job_id"], int(message["chunk"]))
        return self._try_update(key, "SET " + ", ".join(sets), values, condition)

    def _logged_report(
        self,
        message: Item,
        p: int,
        to: MessageStatus,
        statuses: list[str],
        details: dict[str, str | None],
        now: float,
        held: bool,
    ) -> bool:
        def update(layout: Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            allowed = placeholders("from", [layout.code(s) for s in statuses])
            sets = [f"{layout.status(p)} = :to", f"{layout.changed(p)} = :now"]
            values: dict[str, Any] = {":to": layout.code(to), ":now": layout.stamp(now, t0), **allowed}
            condition = f"{layout.status(p)} IN ({', '.join(allowed)})"
            if layout is PACKED:  # a report the state holds moves to the log (its attempt stays 1)
                sets += [f"{layout.tries(p)} = :one"] if held else []
                condition += f" AND {layout.tries(p)} {'<' if held else '>='} :zero"
                values |= {":zero": 0, **({":one": 1} if held else {})}
            # like the embedded store: a missing detail keeps the old one
            for which, placeholder in (("code", ":code"), ("message", ":error")):
                if details[which] is not None:
                    sets.append(str(layout.error(which, p, details[which], placeholder)[0]))
                    values[placeholder] = details[which]
            return "SET " + ", ".join(sets), values, condition

        # returns the state before: a move out of `sent` keeps the send's time; a write that
        # guessed wrong whether the state holds a report is made again as the state says
        for _ in range(2):
            moved, old = self._update_position(message, update, returns="ALL_OLD")
            if moved or old is None or old["statuses"][p] not in statuses or _holds(old, p) == held:
                break
            held = _holds(old, p)
        if moved:
            self._log_report(message, p, to, details["message"], now, old)
        return moved

    def _log_report(
        self, message: Item, p: int, to: MessageStatus, text: str | None, now: float, old: Item | None
    ) -> None:
        """The report's event on the log, after the one the state held (if it held one), with the
        send's time and delivered_at."""
        times = {"#delivered": now} if to == MessageStatus.DELIVERED else {}
        earlier: list[dict[str, Any]] = []
        held = folded_report(old, p) if old is not None else None
        if held is not None:
            event, times["#sent"] = held
            earlier.append(event)
            if event["status"] == MessageStatus.DELIVERED and to != MessageStatus.DELIVERED:
                times["#delivered"] = event["time"]
        elif old is not None and old["statuses"][p] == MessageStatus.SENT:
            times["#sent"] = float(old["changed_at"][p])
        self._log_event(message, now, to.value, text or to.value, times, earlier)

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
