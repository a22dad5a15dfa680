"""Jobs: reading one with its counts, moving its state (conditionally, by the rules of
domain/job_states.py), and the job-wide moves of its messages (start, cancel, expire)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from mailsage.adapters.aws.dynamodb.chunk_states import ChunkStates
from mailsage.adapters.aws.dynamodb.codec import placeholders, update_expression
from mailsage.adapters.aws.dynamodb.keys import (
    ACTIVE_PK,
    BODY_SK,
    CHUNK_PREFIX,
    CONTENT_SK,
    HEAD_SK,
    MEMBERS_END,
    MEMBERS_PREFIX,
    head_key,
    make_key,
    member_ids,
    message_key,
)
from mailsage.adapters.aws.dynamodb.records import chunk_of, counts_of, decode_job
from mailsage.adapters.aws.dynamodb.retention import Retention
from mailsage.adapters.aws.table import GSI1_NAME, GSI1_SORT_KEY, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain import job_states
from mailsage.domain.job_states import PENDING_MESSAGES
from mailsage.domain.models import MESSAGE_UNSENT, Job, JobState, MessageStatus


class Jobs(ChunkStates, Retention):
    """JobStore on the table, but for create_job (job_creation.py)."""

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        items = self._job_items(job_id, CHUNK_PREFIX if with_counts else HEAD_SK, CONTENT_SK)
        head = self._visible_head(items.pop(HEAD_SK, None), account_id)
        content = items.pop(CONTENT_SK, None)
        body = items.pop(BODY_SK, None)
        if head is None or content is None:
            return None
        return decode_job(head, content, body, counts_of(items.values()) if with_counts else {})

    def transition_job(
        self, account_id: str, job_id: str, allowed_from: Iterable[JobState], to: JobState
    ) -> Job | None:
        allowed = placeholders("from", [s.value for s in allowed_from])
        if not allowed:
            return None
        now = time.time()
        sets = ["#state = :to", "#updated = :now"]
        # A caller's move takes the job over: a parked job paused, resumed or stopped by a caller
        # no longer resumes by itself.
        removes = ["#paused_reason"]
        values: dict[str, Any] = {":to": to.value, ":now": now, ":account": account_id, **allowed}
        if to in job_states.FINAL:
            sets.append("#finished = :now")
        if to in job_states.ACTIVE:
            sets += ["#g1pk = :active", "#g1sk = :job"]
            values |= {":active": ACTIVE_PK, ":job": job_id}
        else:  # out of the sparse index of active jobs
            removes += ["#g1pk", "#g1sk"]
        update = update_expression(sets, removes)
        condition = f"#account = :account AND #state IN ({', '.join(allowed)})"
        if not self._update(head_key(job_id), update, values, condition):
            return None
        job = self.get_job(account_id, job_id)
        if job is not None and to in job_states.FINAL:
            self._retire_body(job_id, job.retention_data_days, now)
        return job

    def park_job(self, account_id: str, job_id: str, reason: str) -> Job | None:
        """Only a job a sender works on is parked; it leaves the index of active jobs (its probe
        record, not restart recovery, brings it back)."""
        allowed = placeholders("from", [s.value for s in sorted(job_states.SENDABLE)])
        parked = self._update(
            head_key(job_id),
            "SET #state = :paused, #paused_reason = :reason, #updated = :now REMOVE #g1pk, #g1sk",
            {":paused": JobState.PAUSED.value, ":reason": reason, ":now": time.time(), ":account": account_id}
            | allowed,
            f"#account = :account AND #state IN ({', '.join(allowed)})",
        )
        return self.get_job(account_id, job_id) if parked else None

    def unpark_job(self, account_id: str, job_id: str) -> Job | None:
        """Only a parked job (paused with a reason) resumes by itself. The probe that unparks it has
        just sent a message: a job parked before it started has now."""
        unparked = self._update(
            head_key(job_id),
            "SET #state = :running, #updated = :now, #started = if_not_exists(#started, :now),"
            " #g1pk = :active, #g1sk = :job REMOVE #paused_reason",
            {
                ":running": JobState.RUNNING.value,
                ":paused": JobState.PAUSED.value,
                ":now": time.time(),
                ":active": ACTIVE_PK,
                ":job": job_id,
                ":account": account_id,
            },
            "#account = :account AND #state = :paused AND attribute_exists(#paused_reason)",
        )
        return self.get_job(account_id, job_id) if unparked else None

    def record_pacing(self, job_id: str, throttled: int, send_rate: float | None) -> None:
        """ADD is applied atomically by DynamoDB, so concurrent senders never lose each other's
        count and never fail each other's write (the only condition: the job exists)."""
        values: dict[str, Any] = {}
        update = _with_pacing([], [], values, (throttled, send_rate))
        self._update(head_key(job_id), update, values, "attribute_exists(#pk)")

    def complete_job_if_done(self, job_id: str, pacing: tuple[int, float | None] | None = None) -> bool:
        """Reads the chunk states and the head (one query), then one conditional UpdateItem on the
        head. Reading first is safe because "no message left to send" is final: no transition
        leads back to queued, scheduled or sending from a message that has left them."""
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        head = items.pop(HEAD_SK, None)
        if head is None or head["state"] not in job_states.LIVE:
            return False  # checked here too, to spend no write on the common "not yet" answer
        if any(status in MESSAGE_UNSENT for state in items.values() for status in state["statuses"]):
            return False
        now = time.time()
        allowed = placeholders("from", [s.value for s in sorted(job_states.LIVE)])
        # a job of one message was never `running` (Chunks.claim_messages): it starts as it completes
        sets = [
            "#state = :completed",
            "#updated = :now",
            "#finished = :now",
            "#started = if_not_exists(#started, :now)",
        ]
        removes = ["#g1pk", "#g1sk"]
        values: dict[str, Any] = {":completed": JobState.COMPLETED.value, ":now": now, **allowed}
        update = _with_pacing(sets, removes, values, pacing)
        completed = self._update(head_key(job_id), update, values, f"#state IN ({', '.join(allowed)})")
        if completed:
            self._retire_body(job_id, head.get("retention_data_days"), now)
        return completed

    def record_dead_letter(self, job_id: str, chunk: int, reason: str) -> None:
        entry = {"chunk": chunk, "reason": reason, "at": time.time()}
        self._update(
            head_key(job_id),
            "SET #dead = list_append(if_not_exists(#dead, :empty), :entry)",
            {":empty": [], ":entry": [entry]},
            "attribute_exists(#pk)",  # an unknown job gets no stray item
        )

    def active_jobs(self) -> list[tuple[str, str]]:
        # gsi1 is eventually consistent: a job that changed state a moment ago may be reported
        # (or missed) once; the callers (restart recovery) only re-enqueue, which is harmless.
        items = self._query("#g1pk = :active", {":active": ACTIVE_PK}, index=GSI1_NAME)
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
                make_key(state[PARTITION_KEY], state[SORT_KEY]),
                state,
                range(len(state["statuses"])),
                lambda status, _changed_at: status == MessageStatus.SCHEDULED,
                lambda layout, p: f"{layout.status(p)} = :scheduled",
                lambda layout, _t0: {":scheduled": layout.code(MessageStatus.SCHEDULED)},
                MessageStatus.QUEUED,
                now,
            )
        return self._update(
            head_key(job_id),
            "SET #state = :queued, #updated = :now, #g1pk = :active, #g1sk = :job",
            {
                ":queued": JobState.QUEUED.value,
                ":scheduled": JobState.SCHEDULED.value,
                ":now": now,
                ":active": ACTIVE_PK,
                ":job": job_id,
            },
            "#state = :scheduled",
        )

    def pending_chunks(self, job_id: str) -> list[int]:
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        if items.pop(HEAD_SK, None) is None:
            return []
        return sorted(
            chunk_of(state) for state in items.values() if PENDING_MESSAGES.intersection(state["statuses"])
        )

    def cancel_unsent(self, job_id: str) -> int:
        items = self._job_items(job_id, CHUNK_PREFIX, HEAD_SK)
        if items.pop(HEAD_SK, None) is None:
            return 0
        moved = self._move_unsent(items.values(), MessageStatus.CANCELLED, time.time())
        return sum(len(positions) for _, positions in moved)

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
            ids = member_ids(chunk_members) if chunk_members is not None else []
            expired += [ids[p] for p in positions if p < len(ids)]
        ttl = head.get(TTL_ATTRIBUTE)  # the same as its messages'
        self._in_parallel(
            lambda mid: self._log_event(
                {**message_key(mid), TTL_ATTRIBUTE: ttl},
                now,
                MessageStatus.EXPIRED.value,
                "not sent before the schedule expired",
            ),
            expired,
        )
        return len(expired)


def _with_pacing(
    sets: list[str], removes: list[str], values: dict[str, Any], pacing: tuple[int, float | None] | None
) -> str:
    """The update expression of `sets` and `removes`, plus the job's throttle count and paced rate
    when `pacing` is given (its values added to `values`)."""
    if pacing is None:
        return update_expression(sets, removes)
    throttled, send_rate = pacing
    values[":n"] = throttled
    if send_rate is None:
        removes = [*removes, "#send_rate"]
    else:
        sets = [*sets, "#send_rate = :rate"]
        values[":rate"] = send_rate
    return " ".join(p for p in (update_expression(sets, removes), "ADD #throttled :n") if p)
