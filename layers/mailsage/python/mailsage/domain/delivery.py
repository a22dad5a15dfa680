"""The sender's work: deliver one chunk, exactly once per message.

Queues deliver at least once, so every step is conditional: a message is sent only after this
worker moved it `queued -> sending`, just before sending it; a redelivered chunk finds its messages
past `queued` and skips them. A message stuck in `sending` longer than the claim lease (its worker
died while sending it) may be claimed again: the only window for a duplicate is between the relay's
250 reply and our write, and that write is retried for as long as the claim holds.

Attempts are the message's own: one per hand-over to a relay (sent, refused or deferred), or per
delivery that found no relay reachable at all. Messages left untried behind a lost connection, or
by a stopping worker, come back with no attempt counted.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.composition import Composer
from mailsage.domain.job_states import LIVE, PENDING_MESSAGES, SENDABLE
from mailsage.domain.mailbox import Mailbox, sender_domain
from mailsage.domain.models import ChunkRef, EventType, Job, JobState, Message, MessageStatus
from mailsage.domain.outcomes import Outcomes, SuppressionPolicy
from mailsage.domain.providers import Providers
from mailsage.domain.recent_ids import RecentIds
from mailsage.domain.rendering import CompiledContent, Uncompilable
from mailsage.domain.retrying import retry_write
from mailsage.domain.submission import START_CHUNK, enqueue_chunks
from mailsage.errors import PermanentSendError, TemplateError, TransientSendError
from mailsage.ports import (
    ChunkStore,
    JobStore,
    MessageStore,
    Queue,
    SuppressionStore,
    Transport,
    TransportSession,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SANDBOX_ROUTE = "sandbox:"  # + the outcome: a route the sessions resolve to the sandbox transport
_SANDBOX_OUTCOMES = {"deliver": MessageStatus.DELIVERED, "bounce": MessageStatus.BOUNCED}
# The sandbox transport of an outcome (deliver, bounce, defer, fail, suppress): given by wiring, so
# that the domain names no adapter.
SandboxTransports = Callable[[str], Transport]


UNEXPECTED_RETRY_MAX_SECONDS = 60.0
# No new message is started with less invocation time left than this: one SMTP timeout (30 s) and
# the post-send write. Locally the context reports 0 once the server is stopping.
STOP_MARGIN_MS = 35_000
# After a throttle the chunk comes back in 1-2 s (jittered, so throttled senders spread out).
THROTTLE_DELAY_SECONDS = 1.0
RESUME_SECONDS = 1.0  # a chunk with untried messages left (a lost connection, a stop) comes back after
SENT_WRITE_MARGIN_SECONDS = 10.0
SENT_WRITE_RETRY_MAX_SECONDS = 5.0


class RetryChunk(Exception):
    """Raised to report the chunk as failed so the queue delivers it again after the set delay."""


@dataclass(slots=True, frozen=True)
class DeliveryPolicy:
    max_attempts: int = 5
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    claim_lease_seconds: float = 300.0
    message_id_domain: str = "mailsage.local"
    suppression: SuppressionPolicy = SuppressionPolicy()

    def retry_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: base * 2^(attempt-1), capped, times 0.5-1.0."""
        delay = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(0, attempt - 1))
        return delay * (0.5 + random.random() / 2)


class _Step(Enum):
    """What the loop over a chunk's messages does after one step for a message."""

    GO = "go"  # carry on with this message (claimed; or handed to the relay: record the send)
    NEXT = "next"  # this message is done with (or not ours): the next one
    STOP = "stop"  # the rest of the chunk is left for later


class DeliveryService:
    def __init__(
        self,
        jobs: JobStore,
        chunks: ChunkStore,
        messages: MessageStore,
        suppressions: SuppressionStore,
        queue: Queue,
        providers: Providers,
        policy: DeliveryPolicy,
        outcomes: Callable[[], Outcomes],
        composer: Composer,
        sandbox: SandboxTransports | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.jobs = jobs
        self.chunks = chunks
        self.messages = messages
        self.suppressions = suppressions
        self.queue = queue
        self.providers = providers
        self.policy = policy
        self.outcomes = outcomes  # a new collector of events per delivery
        self.composer = composer
        self.sandbox = sandbox  # None: a sandbox job cannot be delivered here
        self.clock = clock

    def deliver(
        self,
        ref: ChunkRef,
        receipt: str,
        receive_count: int,
        remaining_ms: Callable[[], int] | None = None,
    ) -> None:
        """Deliver one chunk. `remaining_ms` is the invocation's time left (the Lambda context's):
        below STOP_MARGIN_MS no new message is started and the chunk comes back in a second."""
        outcomes = self.outcomes()
        try:
            self._deliver(ref, receipt, outcomes, remaining_ms or _forever)
        except RetryChunk:
            raise  # its delay is set
        except Exception:
            # Unexpected (a locked database, a full disk): the chunk comes back after a short,
            # growing delay rather than the queue's visibility timeout of minutes.
            delay = min(UNEXPECTED_RETRY_MAX_SECONDS, 2.0**receive_count)
            self._until_it_lands(lambda: self.queue.retry_later(receipt, delay))
            raise
        finally:
            outcomes.publish()  # the events of whatever this delivery did, retry or not

    @staticmethod
    def _until_it_lands(write: Callable[[], T]) -> T:
        """An idempotent write retried for up to a minute while the store is unavailable: a release
        or a retry delay that never lands strands its message or chunk for the lease or the
        visibility timeout, minutes after a full disk or a foreign lock went away."""
        until = time.monotonic() + UNEXPECTED_RETRY_MAX_SECONDS
        return retry_write(write, until=until, max_pause=SENT_WRITE_RETRY_MAX_SECONDS)

    def _deliver(
        self, ref: ChunkRef, receipt: str, outcomes: Outcomes, remaining_ms: Callable[[], int]
    ) -> None:
        job = self._job_to_send(ref)
        if job is None:
            return
        pending = [
            m for m in self.chunks.chunk_messages(ref.job_id, ref.chunk) if m.status in PENDING_MESSAGES
        ]
        chunk = _Chunk(
            job=job,
            pending=self._unsuppressed(job, pending, outcomes),
            outcomes=outcomes,
            remaining_ms=remaining_ms,
            sessions=_Sessions(self.providers, self.sandbox),
            content=CompiledContent.for_sending(job.content),  # compiled once per chunk
            routes=self._routes(job),
            envelope_from=Mailbox.parse(job.content.from_addr).address,
        )
        try:
            self._send_each(chunk)
        finally:
            chunk.sessions.close()
        self._complete_if_done(outcomes, job)
        self._after_the_chunk(ref, receipt, job, chunk.run)

    def _job_to_send(self, ref: ChunkRef) -> Job | None:
        """The chunk's job if its messages are to be sent now; None when there is nothing to send
        (the job is unknown, paused, over, or expired: expired here, and never sent late)."""
        job = self.jobs.get_job(ref.account_id, ref.job_id, with_counts=False)
        if job is None:
            log.warning("chunk for unknown job %s dropped", ref.job_id)
            return None
        if ref.chunk == START_CHUNK:
            self._start(job)
            return None
        # A paused job's chunk is dropped (resume re-enqueues every chunk that still has work); a
        # stopped, completed or expired one sends nothing more.
        if job.state not in SENDABLE:
            return None
        if job.expires_at is not None and self.clock() >= job.expires_at:
            self._expire(job)
            return None
        return job

    def _unsuppressed(self, job: Job, pending: list[Message], outcomes: Outcomes) -> list[Message]:
        """`pending` without the recipients suppressed since the job was accepted (a bounce, a
        complaint, an unsubscribe): those are never sent, and end `suppressed`."""
        suppressed = self.suppressions.suppressed(
            job.account_id, [m.email for m in pending], sender_domain(job.content.from_addr), self.clock()
        )
        if not suppressed:
            return pending
        hit = [m for m in pending if m.email.lower() in suppressed]
        claimed = set(self._claim(job, [m.id for m in hit]))
        for message in hit:
            if message.id in claimed and self.chunks.finish_message(
                message.id, MessageStatus.SUPPRESSED, "suppressed", "the recipient is on the suppression list"
            ):
                self._event(outcomes, EventType.MESSAGE_SUPPRESSED, job, message)
        return [m for m in pending if m.email.lower() not in suppressed]

    def _routes(self, job: Job) -> list[str]:
        """The providers to try in order: the job's (or the default) and its failover; a sandbox
        job only ever the sandbox, never an SMTP relay or SES, whatever else is set."""
        if job.content.sandbox_result:
            return [f"{SANDBOX_ROUTE}{job.content.sandbox_result}"]
        primary = job.content.provider or self.providers.default
        return [primary] + [p for p in [self.providers.failover_for(primary)] if p]

    def _after_the_chunk(self, ref: ChunkRef, receipt: str, job: Job, run: _Run) -> None:
        """Acknowledged when nothing is left; otherwise the chunk comes back after a delay."""
        if run.gave_up is not None:
            # Its given-up messages are terminal and the job can complete; the chunk stays visible
            # on the job as a dead letter.
            self.jobs.record_dead_letter(ref.job_id, ref.chunk, run.gave_up)
        if run.throttled:
            # A throttle is not a delivery that moved nothing: a new record, so that the queue's
            # receive count (which dead-letters) never counts it.
            delay = THROTTLE_DELAY_SECONDS * (1 + random.random())
            enqueue_chunks(self.queue, job.account_id, job.id, [ref.chunk], delay_seconds=delay)
            return
        if run.deferred_attempts:
            delay = self.policy.retry_delay(run.deferred_attempts)
        elif run.untried:
            delay = RESUME_SECONDS
        elif run.held_elsewhere:
            # Messages another delivery holds: if that worker died, they are ours once its lease
            # runs out, so the chunk must come back then instead of being acknowledged.
            delay = self.policy.claim_lease_seconds
        else:
            return
        reason = run.reason or "messages of this chunk are claimed by another delivery"
        if run.offered:
            # Progress was made: the rest goes in a new record, so that the queue's receive count
            # (which dead-letters a record) counts only deliveries that moved nothing.
            enqueue_chunks(self.queue, job.account_id, job.id, [ref.chunk], delay_seconds=delay)
            return
        self.queue.retry_later(receipt, delay)
        raise RetryChunk(f"chunk {ref.chunk} of {ref.job_id}: {reason}")

    # -- the messages of a chunk, one at a time --------------------------------------------------------
    def _send_each(self, chunk: _Chunk) -> None:
        """One message at a time, each claimed just before it is sent: after a crash only the one
        message that may have been in flight waits for its lease; the rest were never claimed. The
        write recording a send also claims the next message (one write instead of two)."""
        claimed_with_last_send: str | None = None
        for index, message in enumerate(chunk.pending):
            following = chunk.pending[index + 1].id if index + 1 < len(chunk.pending) else None
            if message.id != claimed_with_last_send:
                step = self._claim_its_turn(chunk, message)
                if step is _Step.STOP:
                    return
                if step is _Step.NEXT:
                    continue
            claimed_with_last_send = None
            if message.id in _known_sent:
                # This process saw the relay accept it but could not record that: record it, never resend.
                claimed_with_last_send = self._sent(chunk, message, following)
                continue
            data = self._compose(chunk, message)
            if data is None:
                continue
            step = self._offer(chunk, index, message, data)
            if step is _Step.STOP:
                return
            if step is _Step.GO:
                claimed_with_last_send = self._sent(chunk, message, following)

    def _claim_its_turn(self, chunk: _Chunk, message: Message) -> _Step:
        if chunk.remaining_ms() < STOP_MARGIN_MS:
            chunk.run.untried, chunk.run.reason = True, "stopped before its turn (the worker is stopping)"
            return _Step.STOP
        if not self._claim(chunk.job, [message.id]):
            # Another delivery holds it, or just finished it.
            chunk.run.held_elsewhere = chunk.run.held_elsewhere or message.status == MessageStatus.SENDING
            return _Step.NEXT
        return _Step.GO

    def _compose(self, chunk: _Chunk, message: Message) -> bytes | None:
        """The message's bytes, or None when it cannot be made (it is failed, alone)."""
        try:
            rendered = self.composer.render(chunk.job, message, chunk.content)
        except TemplateError as exc:
            self._failed(chunk.outcomes, chunk.job, message, exc.code, exc.message)
            return None
        try:
            return self.composer.build(chunk.job, message, rendered)
        except ValueError as exc:  # a header value the MIME builder refuses: this message only
            self._failed(chunk.outcomes, chunk.job, message, "invalid_message", str(exc))
            return None

    def _offer(self, chunk: _Chunk, index: int, message: Message, data: bytes) -> _Step:
        """Hand the message to the first route that takes it: GO when one did."""
        job = chunk.job
        tags = {"account_id": job.account_id, "job_id": job.id, "message_id": message.id}
        try:
            chunk.sessions.send_first(chunk.routes, chunk.envelope_from, message.email, data, tags)
        except PermanentSendError as exc:
            chunk.run.offered = True
            if exc.hard_bounce:
                self._bounced(chunk.outcomes, job, message, exc.message)
            else:
                self._failed(chunk.outcomes, job, message, exc.code, exc.message)
            return _Step.NEXT
        except TransientSendError as exc:
            return self._not_taken(chunk, index, message, exc)
        chunk.run.offered = True
        return _Step.GO

    def _not_taken(self, chunk: _Chunk, index: int, message: Message, exc: TransientSendError) -> _Step:
        """A transient failure: this message waits for a retry; when no relay could be reached, or
        the connection was lost, so does the rest of the chunk."""
        run = chunk.run
        if exc.throttled and not chunk.sandbox:
            # The provider asked us to slow down: not an attempt of this message, and the rest of
            # the chunk waits too (the rate holds for all of it).
            run.throttled, run.untried, run.reason = True, True, exc.message
            self._until_it_lands(lambda: self.chunks.release_message(message.id, exc.message, counted=False))
            return _Step.STOP
        if chunk.sandbox:  # the sandbox "defer" outcome is final: it is what was asked for
            run.offered = True
            if self.chunks.finish_message(message.id, MessageStatus.DEFERRED, None, exc.message):
                self._event(chunk.outcomes, EventType.MESSAGE_TRANSIENT_ERROR, chunk.job, message)
            return _Step.NEXT
        run.reason = exc.message
        if not chunk.sessions.offered:
            # No relay could be reached: that is an attempt for every message still waiting
            # (each would have met the same), so an outage ends in failures, not in a loop.
            rest = chunk.pending[index + 1 :]
            claimed = set(self._claim(chunk.job, [m.id for m in rest]))
            for waiting in [message] + [m for m in rest if m.id in claimed]:
                self._not_sent_yet(chunk, waiting, exc)
            return _Step.STOP
        run.offered = True
        self._not_sent_yet(chunk, message, exc)
        if exc.connection_lost:
            # The rest of the chunk was not tried: it comes back without an attempt counted.
            run.untried = index + 1 < len(chunk.pending)
            return _Step.STOP
        return _Step.NEXT

    def _claim(self, job: Job, ids: list[str]) -> list[str]:
        if not ids:
            return []
        return self.chunks.claim_messages(job.id, ids, self.policy.claim_lease_seconds)

    # -- what happened to a message ------------------------------------------------------------------
    def _sent(self, chunk: _Chunk, message: Message, following: str | None) -> str | None:
        """Record the send; returns `following` if the same write claimed it (the next message to
        send, claimed only while there is time to send it)."""
        job, sandbox = chunk.job, chunk.sandbox
        if sandbox == "suppress":
            if self.chunks.finish_message(
                message.id, MessageStatus.SUPPRESSED, "suppressed", "sandbox: suppressed"
            ):
                self._event(chunk.outcomes, EventType.MESSAGE_SUPPRESSED, job, message)
            return None
        # SMTP relays and SES report delivery later (SES events; the built-in sink's notifications).
        if chunk.remaining_ms() < STOP_MARGIN_MS:
            following = None
        claimed = self._record_sent(message, following)
        outcome = _SANDBOX_OUTCOMES.get(sandbox or "")
        if outcome is not None:  # what a provider's event would report later, reported at once
            error_code = "bounced" if outcome == MessageStatus.BOUNCED else None
            if self.messages.update_delivery_status(
                job.account_id, message.id, outcome, [MessageStatus.SENT], error_code, f"sandbox: {sandbox}"
            ):
                # A sandbox bounce suppresses nothing: the address was never tried.
                self._event(chunk.outcomes, f"message.{outcome.value}", job, message)
        return following if claimed else None

    def _failed(self, outcomes: Outcomes, job: Job, message: Message, code: str, text: str) -> None:
        if self.chunks.finish_message(message.id, MessageStatus.FAILED, code, text):
            self._event(outcomes, EventType.MESSAGE_FAILED, job, message)

    def _bounced(self, outcomes: Outcomes, job: Job, message: Message, text: str) -> None:
        """The receiving server refused the address itself: a hard bounce suppresses it."""
        if self.chunks.finish_message(message.id, MessageStatus.BOUNCED, "bounced", text):
            self._event(outcomes, EventType.MESSAGE_BOUNCED, job, message)
            outcomes.suppress(
                job.account_id, message.email, "bounce", f"hard bounce: {text}", job.content.from_addr
            )

    def _event(self, outcomes: Outcomes, type_: str, job: Job, message: Message) -> None:
        outcomes.message(
            type_, job.account_id, message.id, message.email, job.content.from_addr, message.subject
        )

    def _not_sent_yet(self, chunk: _Chunk, message: Message, exc: TransientSendError) -> None:
        """A transient failure of this message's attempt: back to `queued` for the chunk's retry, or
        failed when it was its own last attempt."""
        attempt = message.attempts + 1
        if attempt >= self.policy.max_attempts:
            reason = f"gave up after {attempt} attempts: {exc.message}"
            self._failed(chunk.outcomes, chunk.job, message, exc.code, reason)
            chunk.run.gave_up = exc.message
        elif self._until_it_lands(lambda: self.chunks.release_message(message.id, exc.message)):
            self._event(chunk.outcomes, EventType.MESSAGE_TRANSIENT_ERROR, chunk.job, message)
            chunk.run.deferred_attempts = max(chunk.run.deferred_attempts, attempt)

    def _record_sent(self, message: Message, following: str | None) -> bool:
        """The relay took the message: record it (claiming `following` in the same write), retrying
        until the write lands. Its claim keeps every other delivery off the message for the lease;
        past that it could be sent again, so the retries stop just before. The process remembers
        the send either way. Returns whether `following` was claimed."""
        _known_sent.add(message.id)
        lease = self.policy.claim_lease_seconds

        def write() -> bool:
            claimed = False
            if following is None:
                self.chunks.finish_message(message.id, MessageStatus.SENT)
            else:
                _, claimed = self.chunks.finish_and_claim(message.id, MessageStatus.SENT, following, lease)
            return claimed

        def retrying(pause: float) -> None:
            log.exception("recording message %s as sent failed; retrying in %.1f s", message.id, pause)

        def giving_up() -> None:
            log.critical(
                "message %s was accepted by the relay but could not be recorded as sent;"
                " this process will not send it again, another one may after the lease",
                message.id,
            )

        claimed = retry_write(
            write,
            until=time.monotonic() + lease - SENT_WRITE_MARGIN_SECONDS,
            retry_on=(Exception,),
            max_pause=SENT_WRITE_RETRY_MAX_SECONDS,
            on_retry=retrying,
            on_give_up=giving_up,
        )
        _known_sent.discard(message.id)
        return claimed

    # -- the job -----------------------------------------------------------------------------------------
    def _complete_if_done(self, outcomes: Outcomes, job: Job) -> None:
        if self.jobs.complete_job_if_done(job.id):
            done = self.jobs.get_job(job.account_id, job.id)
            if done is not None:
                outcomes.job(EventType.JOB_COMPLETED, done)

    def _start(self, job: Job) -> None:
        """A scheduled job's first attempt is due: queue its chunks (or expire it, if too late)."""
        if job.expires_at is not None and self.clock() >= job.expires_at:
            self.jobs.start_scheduled_job(job.id)
            self._expire(job)
            return
        if self.jobs.start_scheduled_job(job.id):
            pending = self.jobs.pending_chunks(job.id)
            if pending:
                enqueue_chunks(self.queue, job.account_id, job.id, pending)
            else:
                self.jobs.complete_job_if_done(job.id)  # every message was cancelled meanwhile

    def _expire(self, job: Job) -> None:
        self.jobs.expire_unsent(job.id)
        if not self.jobs.pending_chunks(job.id):  # nothing still in flight: the job ends expired
            self.jobs.transition_job(job.account_id, job.id, LIVE, JobState.EXPIRED)


@dataclass(slots=True)
class _Run:
    """What one delivery of a chunk did, for what happens to the chunk afterwards."""

    offered: bool = False  # some message reached a relay (sent, refused or deferred by it)
    untried: bool = False  # messages left without an attempt (a lost connection, a stop)
    throttled: bool = False  # the provider asked us to slow down
    held_elsewhere: bool = False  # messages in flight in another delivery
    deferred_attempts: int = 0  # the most attempts among messages deferred for a retry
    gave_up: str | None = None  # why messages were failed on their last attempt
    reason: str | None = None


@dataclass(slots=True)
class _Chunk:
    """One delivery of a chunk: its job, the messages left to send and what is shared by them."""

    job: Job
    pending: list[Message]
    outcomes: Outcomes
    remaining_ms: Callable[[], int]
    sessions: _Sessions
    content: CompiledContent | Uncompilable
    routes: list[str]
    envelope_from: str
    run: _Run = field(default_factory=_Run)

    @property
    def sandbox(self) -> str | None:
        return self.job.content.sandbox_result


# Ids of messages this process saw a relay accept but has not yet recorded as sent: shared by
# every worker thread of the process, so that none sends them again.
_known_sent = RecentIds(100_000)


def _forever() -> int:
    return 2**31


class _Sessions:
    """The transport sessions of one chunk: one per provider, opened on first use and reused for
    every message (one SMTP connection per chunk). A provider whose connection is lost is not
    tried again within the chunk."""

    def __init__(self, providers: Providers, sandbox: SandboxTransports | None) -> None:
        self._providers = providers
        self._sandbox = sandbox
        self._open: dict[str, TransportSession] = {}
        self._down: dict[str, TransientSendError] = {}
        self.offered = False  # whether the last message was handed to some relay (not just to open())

    def send_first(
        self, routes: list[str], sender: str, recipient: str, data: bytes, tags: dict[str, str]
    ) -> None:
        """Send through the first route that takes the message: a transient failure moves on to the
        next (the failover); the last route's error is raised."""
        self.offered = False
        live = [r for r in routes if r not in self._down]
        if not live:
            raise next(iter(self._down.values()))
        for position, name in enumerate(live):
            try:
                session = self._open.get(name)
                if session is None:
                    session = self._open[name] = self._transport(name).open()
                self.offered = True
                session.send(sender, recipient, data, tags)
                return
            except TransientSendError as exc:
                if exc.connection_lost:
                    self._down[name] = exc
                    self._open.pop(name, None)
                if position == len(live) - 1:
                    if len(self._down) < len(routes):
                        # Some route is still up: only this message waits, not the rest of the chunk.
                        exc.connection_lost = False
                    raise

    def _transport(self, name: str) -> Transport:
        if name.startswith(SANDBOX_ROUTE):
            if self._sandbox is None:
                raise RuntimeError("this sender was given no sandbox transport")
            return self._sandbox(name.removeprefix(SANDBOX_ROUTE))
        return self._providers.get(name)

    def close(self) -> None:
        for session in self._open.values():
            session.close()
