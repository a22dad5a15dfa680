"""What a sender does to the messages of one chunk: read them, claim, finish (and claim the next in
the same write), release. Each transition is one conditional UpdateItem on the chunk state."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mailsage.adapters.aws.dynamodb.chunk_layout import Layout
from mailsage.adapters.aws.dynamodb.chunk_states import ChunkStates, layout_of
from mailsage.adapters.aws.dynamodb.codec import update_expression
from mailsage.adapters.aws.dynamodb.keys import (
    JOB_OF_ONE,
    Item,
    head_key,
    key_of,
    member_ids,
    members_key,
    state_key,
)
from mailsage.adapters.aws.dynamodb.records import message_id_of
from mailsage.adapters.aws.dynamodb.retention import Retention
from mailsage.domain.models import JobState, Message, MessageStatus
from mailsage.domain.recent_ids import RecentIds


def _finish_clauses(
    p: int, status: MessageStatus, error_code: str | None, error_message: str | None, now: float
) -> Callable[[Layout, float], tuple[list[str], list[str], dict[str, Any], str]]:
    """The update of position `p` from `sending` to `status`: (sets, removes, values, condition)."""

    def clauses(layout: Layout, t0: float) -> tuple[list[str], list[str], dict[str, Any], str]:
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


class Chunks(ChunkStates, Retention):
    """ChunkStore on the table."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(table_name, client)
        # Jobs this process has seen started (queued -> running): the head is written once.
        self._running_jobs = RecentIds(self.IMMUTABLE_ITEMS_KEPT)

    def chunk_messages(self, job_id: str, chunk: int) -> list[Message]:
        keys = [head_key(job_id), state_key(job_id, chunk), members_key(job_id, chunk)]
        found = self._batch_get(keys, consistent=True)
        head, state, members = (found.get(key_of(key)) for key in keys)
        head = self._visible_head(head)
        if head is None or state is None or members is None:
            return []
        ids = member_ids(members)  # in seq order
        items = self._message_items(ids, packed="prefix" in members)
        created_at = float(head["created_at"])
        return self._assemble(
            [
                (items[message_id], state, created_at)
                for message_id in ids
                if message_id in items and items[message_id]["job_id"] == job_id
            ]
        )

    def claim_messages(self, job_id: str, message_ids: Sequence[str], lease_seconds: float) -> list[str]:
        now = time.time()
        if len(message_ids) == 1:
            return self._claim_one(job_id, message_ids[0], lease_seconds, now)
        messages = self._message_items(list(dict.fromkeys(message_ids)))
        by_chunk: dict[int, dict[int, str]] = {}  # chunk -> position -> message id
        for item in messages.values():
            if item["job_id"] == job_id:  # another job's ids are ignored
                by_chunk.setdefault(int(item["chunk"]), {})[int(item["pos"])] = message_id_of(item)
        if not by_chunk:
            return []
        keys = [head_key(job_id)] + [state_key(job_id, chunk) for chunk in by_chunk]
        found = self._batch_get(keys, consistent=True)
        head = found.get(key_of(keys[0]))
        if head is None:
            return []

        cutoff = now - lease_seconds

        def claimable(layout: Layout, t0: float) -> Callable[[str, float], bool]:
            # the cutoff as the state stores it, so that this agrees with the condition exactly
            stored_cutoff = layout.time(cutoff, t0)
            return lambda status, changed_at: (
                status == MessageStatus.QUEUED
                or (status == MessageStatus.SENDING and changed_at < stored_cutoff)
            )

        claimed: set[str] = set()
        for chunk, positions in by_chunk.items():
            state = found.get(key_of(state_key(job_id, chunk)))
            moved = self._move_positions(
                state_key(job_id, chunk),
                state,
                positions,
                claimable(*layout_of(state or {})),
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
        if claimed and head["state"] == JobState.QUEUED and int(head["total"]) > 1:
            self._update(
                head_key(job_id),
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

        def claim(layout: Layout, t0: float) -> tuple[str, dict[str, Any], str]:
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
        # A job of one message stays queued (and in the active index) until it completes: its
        # `running` write, and its index copy, would change nothing a reader waits for.
        if job_id not in self._running_jobs and not message.get(JOB_OF_ONE):
            self._try_update(
                head_key(job_id),
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

        def build(layout: Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            sets, removes, values, condition = finish(layout, t0)
            return update_expression(sets, removes), values, condition

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

        def build(layout: Layout, t0: float) -> tuple[str, dict[str, Any], str]:
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
            return update_expression(sets, removes), values, f"{condition} AND ({claimable})"

        moved, _ = self._update_position(message, build)
        if not moved:
            finished = self.finish_message(message_id, status)
            return finished, bool(self._claim_one(message["job_id"], next_id, lease_seconds, now))
        self._finished(message, status, None, now)
        return True, True

    def _finished(self, message: Item, status: MessageStatus, error_message: str | None, now: float) -> None:
        if status != MessageStatus.SENT:  # a send logs nothing: see events_and_sent_at
            self._log_event(message, now, status.value, error_message or "")
        self._retire_data(message, now)

    def release_message(self, message_id: str, error_message: str, counted: bool = True) -> bool:
        message = self._locate(message_id)
        if message is None:
            return False
        p = int(message["pos"])
        now = time.time()

        def release(layout: Layout, t0: float) -> tuple[str, dict[str, Any], str]:
            sets = [
                f"{layout.status(p)} = :queued",
                f"{layout.tries(p)} = {layout.tries(p)} + :one",
                f"{layout.changed(p)} = :now",
            ]
            values: dict[str, Any] = {
                ":queued": layout.code(MessageStatus.QUEUED),
                ":one": int(counted),
                ":now": layout.stamp(now, t0),
                ":sending": layout.code(MessageStatus.SENDING),
            }
            set_clause, remove = layout.error("message", p, error_message, ":error")
            if set_clause is not None:
                sets.append(set_clause)
                values[":error"] = error_message
            return (
                update_expression(sets, [remove] if remove else []),
                values,
                f"{layout.status(p)} = :sending",
            )

        moved, _ = self._update_position(message, release)
        if moved:
            self._log_event(message, now, MessageStatus.DEFERRED.value, error_message)
        return moved
