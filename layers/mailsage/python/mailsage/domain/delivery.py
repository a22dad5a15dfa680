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
from dataclasses import dataclass
from typing import TypeVar

from mailsage.domain.addresses import envelope_address
from mailsage.domain.chunk_slots import STOP_MARGIN_MS, ChunkSlots, Step
from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.composition import Composer
from mailsage.domain.delivery_state import ChunkDelivery, Run
from mailsage.domain.job_states import LIVE, PENDING_MESSAGES, SENDABLE
from mailsage.domain.mailbox import Mailbox, sender_domain
from mailsage.domain.milestones import milestone
from mailsage.domain.models import ChunkRef, EventType, Job, JobState, Message, MessageStatus
from mailsage.domain.outcomes import Outcomes, SuppressionPolicy
from mailsage.domain.pacing import Pacer, Parked, jittered, lane_of
from mailsage.domain.parking import PROBE_CHUNK, Parking
from mailsage.domain.providers import Providers
from mailsage.domain.recent_ids import RecentIds
from mailsage.domain.rendering import CompiledContent
from mailsage.domain.retrying import retry_write
from mailsage.domain.sessions import SANDBOX_ROUTE, ConnectionsBusy, SandboxTransports, Sessions
from mailsage.domain.submission import START_CHUNK, enqueue_chunks
from mailsage.errors import PermanentSendError, ProviderPaused, TemplateError, TransientSendError
from mailsage.ports import ChunkStore, JobStore, MessageStore, Meter, NoMeter, Queue, SuppressionStore

log = logging.getLogger(__name__)
T = TypeVar("T")

_SANDBOX_OUTCOMES = {"deliver": MessageStatus.DELIVERED, "bounce": MessageStatus.BOUNCED}
__all__ = ["SANDBOX_ROUTE", "DeliveryPolicy", "DeliveryService", "RetryChunk", "SandboxTransports"]


UNEXPECTED_RETRY_MAX_SECONDS = 60.0
# After a throttle the chunk comes back in 1-2 s (jittered, so throttled senders spread out).
THROTTLE_DELAY_SECONDS = 1.0
CONNECTIONS_BUSY_SECONDS = 2.0  # a relay's connection slots were all taken
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
    message_id_domain: str | None = None  # None: the sender's domain
    suppression: SuppressionPolicy = SuppressionPolicy()

    def retry_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: base * 2^(attempt-1), capped, times 0.5-1.0."""
        delay = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(0, attempt - 1))
        return delay * (0.5 + random.random() / 2)


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
        pacer: Pacer | None = None,
        meter: Meter | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        self.pacer = pacer  # None: nothing is paced (every provider unlimited)
        self.meter = meter or NoMeter()
        self.sleep = sleep  # waits for a pacing grant (a simulation's clock moves instead)
        self.parking = Parking(jobs, queue, self.meter, clock)
        self.slots = ChunkSlots(pacer, self.meter, clock, sleep)

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
        found = self._job_to_send(ref, outcomes)
        if found is None:
            return
        job, number = found
        pending = [m for m in self.chunks.chunk_messages(ref.job_id, number) if m.status in PENDING_MESSAGES]
        chunk = ChunkDelivery(
            job=job,
            pending=self._unsuppressed(job, pending, outcomes),
            outcomes=outcomes,
            remaining_ms=remaining_ms,
            sessions=Sessions(self.providers, self.sandbox, self.pacer),
            content=CompiledContent.for_sending(job.content),  # compiled once per chunk
            routes=self._routes(job),
            envelope_from=Mailbox.parse(job.content.from_addr).address,
            lane=lane_of(job),
            number=number,
        )
        try:
            self._send_each(chunk)
        finally:
            chunk.sessions.close()
        paced = self._pacing_change(chunk)
        if not self._complete_if_done(outcomes, chunk.job, paced) and paced is not None:
            self.jobs.record_pacing(chunk.job.id, *paced)
        self._after_the_chunk(ref, receipt, chunk)

    def _job_to_send(self, ref: ChunkRef, outcomes: Outcomes) -> tuple[Job, int] | None:
        """The chunk's job and the chunk to send now; None when there is nothing to send (the job
        is unknown, paused, over, or expired: expired here, and never sent late). A parked job's
        probe sends the first chunk with work left, while the job stays parked."""
        job = self.jobs.get_job(ref.account_id, ref.job_id, with_counts=False)
        if job is None:
            log.warning("chunk for unknown job %s dropped", ref.job_id)
            return None
        if ref.chunk == START_CHUNK:
            self._start(job)
            return None
        if ref.chunk == PROBE_CHUNK:
            return self._probe(job, outcomes)
        # A paused job's chunk is dropped (resume re-enqueues every chunk that still has work); a
        # stopped, completed or expired one sends nothing more.
        if job.state not in SENDABLE:
            return None
        if job.expires_at is not None and self.clock() >= job.expires_at:
            self._expire(job)
            return None
        return job, ref.chunk

    def _probe(self, job: Job, outcomes: Outcomes) -> tuple[Job, int] | None:
        if not self.parking.parked(job):
            return None  # a caller resumed, paused or stopped it meanwhile: its chunks are theirs
        pending = self.jobs.pending_chunks(job.id)
        if not pending:
            self.parking.resume(job, outcomes)  # nothing left to send: it can complete
            self.jobs.complete_job_if_done(job.id)
            return None
        return job, pending[0]

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
                self.meter.count("MessagesSuppressed")
                self._event(outcomes, EventType.MESSAGE_SUPPRESSED, job, message)
        return [m for m in pending if m.email.lower() not in suppressed]

    def _routes(self, job: Job) -> list[str]:
        """The providers to try in order: the job's (or the default) and its failover; a sandbox
        job only ever the sandbox, never an SMTP relay or SES, whatever else is set."""
        if job.content.sandbox_result:
            return [f"{SANDBOX_ROUTE}{job.content.sandbox_result}"]
        primary = job.content.provider or self.providers.default
        return [primary] + [p for p in [self.providers.failover_for(primary)] if p]

    def _after_the_chunk(self, ref: ChunkRef, receipt: str, chunk: ChunkDelivery) -> None:
        """Acknowledged when nothing is left; otherwise the chunk comes back after a delay."""
        run, job = chunk.run, chunk.job
        if run.gave_up is not None:
            # Its given-up messages are terminal and the job can complete; the chunk stays visible
            # on the job as a dead letter.
            self.jobs.record_dead_letter(ref.job_id, chunk.number, run.gave_up)
        if run.parked is not None:
            if self.parking.parked(job):  # a probe that did not get through: the next one
                self.parking.probe_later(job, run.parked.until)
            else:
                self.parking.park(job, run.parked.reason, run.parked.until, chunk.outcomes)
            return
        delay = self._delay(run)
        if delay is None:
            return
        if self.parking.parked(job):
            # Nothing got through yet: the job stays parked and its probe comes back.
            self.parking.probe_later(job, self.clock() + delay)
            return
        if run.wait is not None:
            # Asked to slow down, by the provider or by the pacer: a new record, so that the queue's
            # receive count (which dead-letters) never counts it.
            enqueue_chunks(self.queue, job.account_id, job.id, [chunk.number], delay, chunk.lane)
            return
        reason = run.reason or "messages of this chunk are claimed by another delivery"
        if run.offered or ref.chunk != chunk.number:
            # Progress was made: the rest goes in a new record, so that the queue's receive count
            # (which dead-letters a record) counts only deliveries that moved nothing.
            enqueue_chunks(self.queue, job.account_id, job.id, [chunk.number], delay, chunk.lane)
            return
        self.queue.retry_later(receipt, delay)
        raise RetryChunk(f"chunk {ref.chunk} of {ref.job_id}: {reason}")

    def _delay(self, run: Run) -> float | None:
        """When the chunk is to come back; None when it is done with."""
        if run.wait is not None:
            return jittered(run.wait)
        if run.deferred_attempts:
            return self.policy.retry_delay(run.deferred_attempts)
        if run.untried:
            return RESUME_SECONDS
        if run.held_elsewhere:
            # Messages another delivery holds: if that worker died, they are ours once its lease
            # runs out, so the chunk must come back then instead of being acknowledged.
            return self.policy.claim_lease_seconds
        return None

    # -- the messages of a chunk, one at a time --------------------------------------------------------
    def _send_each(self, chunk: ChunkDelivery) -> None:
        """One message at a time, each claimed just before it is sent: after a crash only the one
        message that may have been in flight waits for its lease; the rest were never claimed. The
        write recording a send also claims the next message (one write instead of two) when a
        sending slot for it is in hand."""
        claimed_with_last_send: str | None = None
        for index, message in enumerate(chunk.pending):
            following = chunk.pending[index + 1].id if index + 1 < len(chunk.pending) else None
            if message.id != claimed_with_last_send:
                step = self.slots.paced(chunk, len(chunk.pending) - index)
                if step is Step.GO:
                    step = self._claim_its_turn(chunk, message)
                if step is Step.STOP:
                    return
                if step is Step.NEXT:
                    continue
            else:
                self.slots.wait_for_slot(chunk)  # its slot was taken when it was claimed
            claimed_with_last_send = None
            if message.id in _known_sent:
                # This process saw the relay accept it but could not record that: record it, never resend.
                claimed_with_last_send = self._sent(chunk, message, None)
                continue
            data = self._compose(chunk, message)
            if data is None:
                continue
            step = self._offer(chunk, index, message, data)
            if step is Step.STOP:
                return
            if step is Step.GO:
                ahead = self.slots.slot_ahead(chunk, following, len(chunk.pending) - index - 1)
                claimed_with_last_send = self._sent(chunk, message, ahead)
                if claimed_with_last_send is not None:
                    chunk.slots -= 1
                self._got_through(chunk)
                if chunk.stopped:
                    return

    def _got_through(self, chunk: ChunkDelivery) -> None:
        """A message was handed over: a probe tells that its provider sends again, and a parked
        job runs again."""
        self.meter.count("MessagesSent")
        if chunk.probing and self.pacer is not None:
            chunk.probing = False
            self.pacer.unpark(chunk.routes[0])
        if self.parking.parked(chunk.job):
            chunk.job = self.parking.resume(chunk.job, chunk.outcomes) or chunk.job

    def _claim_its_turn(self, chunk: ChunkDelivery, message: Message) -> Step:
        if chunk.remaining_ms() < STOP_MARGIN_MS:
            chunk.run.untried, chunk.run.reason = True, "stopped before its turn (the worker is stopping)"
            return Step.STOP
        if not self._claim(chunk.job, [message.id]):
            # Another delivery holds it, or just finished it.
            chunk.run.held_elsewhere = chunk.run.held_elsewhere or message.status == MessageStatus.SENDING
            return Step.NEXT
        return Step.GO

    def _compose(self, chunk: ChunkDelivery, message: Message) -> bytes | None:
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

    def _offer(self, chunk: ChunkDelivery, index: int, message: Message, data: bytes) -> Step:
        """Hand the message to the first route that takes it: GO when one did."""
        job = chunk.job
        tags = {"account_id": job.account_id, "job_id": job.id, "message_id": message.id}
        try:
            recipient = envelope_address(message.email)
            chunk.sessions.send_first(chunk.routes, chunk.envelope_from, recipient, data, tags)
        except PermanentSendError as exc:
            chunk.run.offered = True
            if exc.hard_bounce:
                self._bounced(chunk.outcomes, job, message, exc.message)
            else:
                self._failed(chunk.outcomes, job, message, exc.code, exc.message)
            return Step.NEXT
        except TransientSendError as exc:
            return self._not_taken(chunk, index, message, exc)
        chunk.run.offered = True
        return Step.GO

    def _not_taken(self, chunk: ChunkDelivery, index: int, message: Message, exc: TransientSendError) -> Step:
        """A transient failure: this message waits for a retry; when no relay could be reached, or
        the connection was lost, so does the rest of the chunk."""
        run = chunk.run
        if exc.throttled and not chunk.sandbox:
            # The provider asked us to slow down, or stopped sending: not an attempt of this
            # message, and the rest of the chunk waits too (the rate holds for all of it).
            self._until_it_lands(lambda: self.chunks.release_message(message.id, exc.message, counted=False))
            run.untried, run.reason, run.wait = True, exc.message, THROTTLE_DELAY_SECONDS
            self._slowed_down(chunk, exc)
            return Step.STOP
        if chunk.sandbox:  # the sandbox "defer" outcome is final: it is what was asked for
            run.offered = True
            if self.chunks.finish_message(message.id, MessageStatus.DEFERRED, None, exc.message):
                self._event(chunk.outcomes, EventType.MESSAGE_TRANSIENT_ERROR, chunk.job, message)
            return Step.NEXT
        run.reason = exc.message
        if not chunk.sessions.offered:
            # No relay could be reached: that is an attempt for every message still waiting
            # (each would have met the same), so an outage ends in failures, not in a loop.
            rest = chunk.pending[index + 1 :]
            claimed = set(self._claim(chunk.job, [m.id for m in rest]))
            for waiting in [message] + [m for m in rest if m.id in claimed]:
                self._not_sent_yet(chunk, waiting, exc)
            return Step.STOP
        run.offered = True
        self._not_sent_yet(chunk, message, exc)
        if exc.connection_lost:
            # The rest of the chunk was not tried: it comes back without an attempt counted.
            run.untried = index + 1 < len(chunk.pending)
            return Step.STOP
        return Step.NEXT

    def _slowed_down(self, chunk: ChunkDelivery, exc: TransientSendError) -> None:
        route = chunk.routes[0]
        if isinstance(exc, ProviderPaused):
            until = self.pacer.park(route, exc.reason) if self.pacer else self.clock() + RESUME_SECONDS
            chunk.run.parked = Parked(exc.reason, until)
            return
        if isinstance(exc, ConnectionsBusy):
            chunk.run.wait = CONNECTIONS_BUSY_SECONDS
            return
        chunk.run.throttled += 1
        self.meter.count("Throttles")
        if self.pacer is not None:
            self.pacer.throttled(route)  # every sender of the provider slows down

    @staticmethod
    def _pacing_change(chunk: ChunkDelivery) -> tuple[int, float | None] | None:
        """The job reply's throttle count and paced rate to write, only when they changed."""
        rate = round(chunk.rate, 2) if chunk.rate is not None else chunk.job.send_rate
        if chunk.run.throttled or rate != chunk.job.send_rate:
            return chunk.run.throttled, rate
        return None

    def _claim(self, job: Job, ids: list[str]) -> list[str]:
        if not ids:
            return []
        return self.chunks.claim_messages(job.id, ids, self.policy.claim_lease_seconds)

    # -- what happened to a message ------------------------------------------------------------------
    def _sent(self, chunk: ChunkDelivery, message: Message, following: str | None) -> str | None:
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
            self.meter.count("MessagesFailed")
            self._event(outcomes, EventType.MESSAGE_FAILED, job, message)

    def _bounced(self, outcomes: Outcomes, job: Job, message: Message, text: str) -> None:
        """The receiving server refused the address itself: a hard bounce suppresses it."""
        if self.chunks.finish_message(message.id, MessageStatus.BOUNCED, "bounced", text):
            self.meter.count("MessagesBounced")
            self._event(outcomes, EventType.MESSAGE_BOUNCED, job, message)
            outcomes.suppress(
                job.account_id, message.email, "bounce", f"hard bounce: {text}", job.content.from_addr
            )

    def _event(self, outcomes: Outcomes, type_: str, job: Job, message: Message) -> None:
        outcomes.message(
            type_, job.account_id, message.id, message.email, job.content.from_addr, message.subject
        )

    def _not_sent_yet(self, chunk: ChunkDelivery, message: Message, exc: TransientSendError) -> None:
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
    def _complete_if_done(
        self, outcomes: Outcomes, job: Job, pacing: tuple[int, float | None] | None = None
    ) -> bool:
        """Complete the job if nothing is left to send (recording `pacing` in the same write)."""
        if not self.jobs.complete_job_if_done(job.id, pacing):
            return False
        done = self.jobs.get_job(job.account_id, job.id)
        if done is not None:
            outcomes.job(EventType.JOB_COMPLETED, done)
            milestone(done, "completed")
        return True

    def _start(self, job: Job) -> None:
        """A scheduled job's first attempt is due: queue its chunks (or expire it, if too late)."""
        if job.expires_at is not None and self.clock() >= job.expires_at:
            self.jobs.start_scheduled_job(job.id)
            self._expire(job)
            return
        if self.jobs.start_scheduled_job(job.id):
            pending = self.jobs.pending_chunks(job.id)
            if pending:
                enqueue_chunks(self.queue, job.account_id, job.id, pending, lane=lane_of(job))
            else:
                self.jobs.complete_job_if_done(job.id)  # every message was cancelled meanwhile

    def _expire(self, job: Job) -> None:
        self.jobs.expire_unsent(job.id)
        if not self.jobs.pending_chunks(job.id):  # nothing still in flight: the job ends expired
            self.jobs.transition_job(job.account_id, job.id, LIVE, JobState.EXPIRED)


# Ids of messages this process saw a relay accept but has not yet recorded as sent: shared by
# every worker thread of the process, so that none sends them again.
_known_sent = RecentIds(100_000)


def _forever() -> int:
    return 2**31
