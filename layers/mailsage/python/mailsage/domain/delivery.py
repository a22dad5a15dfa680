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
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import TypeVar

from mailsage.domain.events import EventPublisher
from mailsage.domain.feedback_id import FeedbackIds
from mailsage.domain.mime import build_message
from mailsage.domain.models import ChunkRef, Job, JobState, Message, MessageStatus
from mailsage.domain.outcomes import Outcomes, SuppressionPolicy
from mailsage.domain.providers import Providers
from mailsage.domain.rendering import CompiledContent, Rendered
from mailsage.domain.submission import START_CHUNK, enqueue_chunks
from mailsage.domain.tracking import TrackedLinks, unsubscribe_headers, wants
from mailsage.errors import PermanentSendError, ServiceUnavailable, TemplateError, TransientSendError
from mailsage.ports import Queue, Store, Transport, TransportSession

log = logging.getLogger(__name__)
T = TypeVar("T")

_SENDABLE = (MessageStatus.QUEUED, MessageStatus.SENDING)
_LIVE = (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING, JobState.PAUSED)
SANDBOX_ROUTE = "sandbox:"  # + the outcome: a route the providers resolve to the sandbox transport
_SANDBOX_OUTCOMES = {"deliver": MessageStatus.DELIVERED, "bounce": MessageStatus.BOUNCED}


UNEXPECTED_RETRY_MAX_SECONDS = 60.0
# No new message is started with less invocation time left than this: one SMTP timeout (30 s) and
# the post-send write. Locally the context reports 0 once the server is stopping.
STOP_MARGIN_MS = 35_000
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


class DeliveryService:
    def __init__(
        self,
        store: Store,
        queue: Queue,
        providers: Providers,
        policy: DeliveryPolicy,
        publisher: EventPublisher | None = None,
        links: TrackedLinks | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.providers = providers
        self.policy = policy
        self.publisher = publisher
        self.links = links  # None: no tracking, no List-Unsubscribe (no public URL configured)
        # Signed with the tracking key; without one (no public URL) the header is left out.
        self.feedback_ids = FeedbackIds(links.signer) if links is not None else None

    def deliver(
        self,
        ref: ChunkRef,
        receipt: str,
        receive_count: int,
        remaining_ms: Callable[[], int] | None = None,
    ) -> None:
        """Deliver one chunk. `remaining_ms` is the invocation's time left (the Lambda context's):
        below STOP_MARGIN_MS no new message is started and the chunk comes back in a second."""
        outcomes = Outcomes(
            self.store, self.publisher, self.policy.message_id_domain, self.policy.suppression
        )
        try:
            self._deliver(ref, receipt, receive_count, outcomes, remaining_ms or _forever)
        except RetryChunk:
            raise  # its delay is set
        except Exception:
            # Unexpected (a locked database, a full disk): the chunk comes back after a short,
            # growing delay rather than the queue's visibility timeout of minutes.
            self._retry_later_until_it_lands(receipt, min(UNEXPECTED_RETRY_MAX_SECONDS, 2.0**receive_count))
            raise
        finally:
            outcomes.publish()  # the events of whatever this delivery did, retry or not

    def _retry_later_until_it_lands(self, receipt: str, delay: float) -> None:
        """The record's short retry delay, written even while the store is unavailable (it is what
        failed): without it the chunk waits out the queue's visibility timeout."""
        self._until_it_lands(lambda: self.queue.retry_later(receipt, delay))

    @staticmethod
    def _until_it_lands(write: Callable[[], T]) -> T:
        """An idempotent write retried for up to a minute while the store is unavailable: a release
        or a retry delay that never lands strands its message or chunk for the lease or the
        visibility timeout, minutes after a full disk or a foreign lock went away."""
        deadline = time.monotonic() + UNEXPECTED_RETRY_MAX_SECONDS
        pause = 0.25
        while True:
            try:
                return write()
            except ServiceUnavailable:
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                pause = min(SENT_WRITE_RETRY_MAX_SECONDS, pause * 2)

    def _deliver(
        self,
        ref: ChunkRef,
        receipt: str,
        receive_count: int,
        outcomes: Outcomes,
        remaining_ms: Callable[[], int],
    ) -> None:
        job = self.store.get_job(ref.account_id, ref.job_id, with_counts=False)
        if job is None:
            log.warning("chunk for unknown job %s dropped", ref.job_id)
            return
        if ref.chunk == START_CHUNK:
            self._start(job)
            return
        if job.state == JobState.PAUSED:
            return  # dropped; resume re-enqueues every chunk that still has work
        if job.state not in (JobState.QUEUED, JobState.RUNNING):
            return  # stopped, completed or expired: nothing more goes out
        if job.expires_at is not None and time.time() >= job.expires_at:
            self._expire(job)  # never sent late
            return

        pending = [m for m in self.store.chunk_messages(ref.job_id, ref.chunk) if m.status in _SENDABLE]
        # Suppressed since it was accepted (a bounce, a complaint, an unsubscribe): never sent.
        domain = parseaddr(job.content.from_addr)[1].rpartition("@")[2]
        suppressed = self.store.suppressed(job.account_id, [m.email for m in pending], domain, time.time())
        if suppressed:
            hit = [m.id for m in pending if m.email.lower() in suppressed]
            for message in [m for m in pending if m.id in set(self._claim(job, hit))]:
                if self.store.finish_message(
                    message.id,
                    MessageStatus.SUPPRESSED,
                    "suppressed",
                    "the recipient is on the suppression list",
                ):
                    self._event(outcomes, "message.suppressed", job, message)
            pending = [m for m in pending if m.email.lower() not in suppressed]

        run = _Run()
        sessions = _Sessions(self.providers)
        try:
            self._send_each(job, pending, sessions, outcomes, run, remaining_ms)
        finally:
            sessions.close()

        self._complete_if_done(outcomes, job)
        if run.gave_up is not None:
            # Its given-up messages are terminal and the job can complete; the chunk stays visible
            # on the job as a dead letter.
            self.store.record_dead_letter(ref.job_id, ref.chunk, run.gave_up)
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

    def _send_each(
        self,
        job: Job,
        pending: list[Message],
        sessions: _Sessions,
        outcomes: Outcomes,
        run: _Run,
        remaining_ms: Callable[[], int],
    ) -> None:
        """One message at a time, each claimed just before it is sent: after a crash only the one
        message that may have been in flight waits for its lease; the rest were never claimed."""
        envelope_from = parseaddr(job.content.from_addr)[1]
        compiled = CompiledContent.for_sending(job.content)  # compiled once per chunk
        primary = job.content.provider or self.providers.default
        routes = [primary] + [p for p in [self.providers.failover_for(primary)] if p]
        sandbox = job.content.sandbox_result
        if sandbox:
            routes = [f"{SANDBOX_ROUTE}{sandbox}"]  # never an SMTP relay or SES, whatever else is set
        claimed_with_last_send: str | None = None
        for index, message in enumerate(pending):
            following = pending[index + 1].id if index + 1 < len(pending) else None
            if message.id != claimed_with_last_send:
                if remaining_ms() < STOP_MARGIN_MS:
                    run.untried, run.reason = True, "stopped before its turn (the worker is stopping)"
                    return
                if not self._claim(job, [message.id]):
                    # Another delivery holds it, or just finished it.
                    run.held_elsewhere = run.held_elsewhere or message.status == MessageStatus.SENDING
                    continue
            claimed_with_last_send = None
            if _known_sent.has(message.id):
                # This process saw the relay accept it but could not record that: record it, never resend.
                claimed_with_last_send = self._sent(outcomes, job, message, sandbox, following, remaining_ms)
                continue
            try:
                rendered = self._tracked(job, message, compiled.render(message.variables))
            except TemplateError as exc:
                self._failed(outcomes, job, message, exc.code, exc.message)
                continue
            try:
                data = build_message(
                    rendered,
                    from_addr=job.content.from_addr,
                    to_email=message.email,
                    to_name=message.name,
                    reply_to=job.content.reply_to,
                    message_id=f"<{message.id}@{self.policy.message_id_domain}>",
                    headers=self._headers(job, message),
                    attachments=job.content.attachments,
                )
            except ValueError as exc:  # a header value the MIME builder refuses: this message only
                self._failed(outcomes, job, message, "invalid_message", str(exc))
                continue
            tags = {"account_id": job.account_id, "job_id": job.id, "message_id": message.id}
            try:
                sessions.send_first(routes, envelope_from, message.email, data, tags)
            except PermanentSendError as exc:
                run.offered = True
                if exc.hard_bounce:
                    self._bounced(outcomes, job, message, exc.message)
                else:
                    self._failed(outcomes, job, message, exc.code, exc.message)
                continue
            except TransientSendError as exc:
                if sandbox:  # the sandbox "defer" outcome is final: it is what was asked for
                    run.offered = True
                    if self.store.finish_message(message.id, MessageStatus.DEFERRED, None, exc.message):
                        self._event(outcomes, "message.transient_error", job, message)
                    continue
                run.reason = exc.message
                if not sessions.offered:
                    # No relay could be reached: that is an attempt for every message still waiting
                    # (each would have met the same), so an outage ends in failures, not in a loop.
                    rest = {m.id for m in pending[index + 1 :]}
                    claimed = set(self._claim(job, [m.id for m in pending[index + 1 :]]))
                    waiting = [message] + [m for m in pending if m.id in rest and m.id in claimed]
                    for m in waiting:
                        self._not_sent_yet(outcomes, job, m, exc, run)
                    return
                run.offered = True
                self._not_sent_yet(outcomes, job, message, exc, run)
                if exc.connection_lost:
                    # The rest of the chunk was not tried: it comes back without an attempt counted.
                    run.untried = index + 1 < len(pending)
                    return
                continue
            run.offered = True
            claimed_with_last_send = self._sent(outcomes, job, message, sandbox, following, remaining_ms)

    def _claim(self, job: Job, ids: list[str]) -> list[str]:
        if not ids:
            return []
        return self.store.claim_messages(job.id, ids, self.policy.claim_lease_seconds)

    def _sent(
        self,
        outcomes: Outcomes,
        job: Job,
        message: Message,
        sandbox: str | None,
        following: str | None,
        remaining_ms: Callable[[], int],
    ) -> str | None:
        """Record the send; returns `following` if the same write claimed it (the next message to
        send, claimed only while there is time to send it)."""
        if sandbox == "suppress":
            if self.store.finish_message(
                message.id, MessageStatus.SUPPRESSED, "suppressed", "sandbox: suppressed"
            ):
                self._event(outcomes, "message.suppressed", job, message)
            return None
        # SMTP relays and SES report delivery later (SES events; the built-in sink's notifications).
        if remaining_ms() < STOP_MARGIN_MS:
            following = None
        claimed = self._record_sent(message, following)
        outcome = _SANDBOX_OUTCOMES.get(sandbox or "")
        if outcome is not None:  # what a provider's event would report later, reported at once
            error_code = "bounced" if outcome == MessageStatus.BOUNCED else None
            if self.store.update_delivery_status(
                job.account_id, message.id, outcome, [MessageStatus.SENT], error_code, f"sandbox: {sandbox}"
            ):
                # A sandbox bounce suppresses nothing: the address was never tried.
                self._event(outcomes, f"message.{outcome.value}", job, message)
        return following if claimed else None

    def _failed(self, outcomes: Outcomes, job: Job, message: Message, code: str, text: str) -> None:
        if self.store.finish_message(message.id, MessageStatus.FAILED, code, text):
            self._event(outcomes, "message.failed", job, message)

    def _bounced(self, outcomes: Outcomes, job: Job, message: Message, text: str) -> None:
        """The receiving server refused the address itself: a hard bounce suppresses it."""
        if self.store.finish_message(message.id, MessageStatus.BOUNCED, "bounced", text):
            self._event(outcomes, "message.bounced", job, message)
            outcomes.suppress(
                job.account_id, message.email, "bounce", f"hard bounce: {text}", job.content.from_addr
            )

    def _event(self, outcomes: Outcomes, type_: str, job: Job, message: Message) -> None:
        outcomes.message(
            type_, job.account_id, message.id, message.email, job.content.from_addr, message.subject
        )

    def _complete_if_done(self, outcomes: Outcomes, job: Job) -> None:
        if self.store.complete_job_if_done(job.id):
            done = self.store.get_job(job.account_id, job.id)
            if done is not None:
                outcomes.job("job.completed", done)

    def _headers(self, job: Job, message: Message) -> dict[str, str]:
        headers = {
            **{k: v for k, v in job.content.headers.items() if k.lower() != "feedback-id"},
            "X-MailSage-Job-ID": job.id,
            "X-MailSage-Message-ID": message.id,
        }
        if self.feedback_ids is not None:
            # Feedback loops (complaint reports) and the built-in sink's notifications name the
            # message by this header, as mailbox providers' FBLs do: opaque and signed.
            headers["Feedback-ID"] = self.feedback_ids.header(
                job.account_id, job.id, message.id, message.email
            )
        # A List-Unsubscribe of the caller's own (their unsubscribe system) wins over ours: one
        # header, never two.
        own = any(name.lower() == "list-unsubscribe" for name in job.content.headers)
        if self.links is not None and job.content.unsubscribe and not own:
            url = self.links.unsubscribe_url(job.account_id, message.id, message.email)
            headers.update(unsubscribe_headers(url))
        return headers

    def _tracked(self, job: Job, message: Message, rendered: Rendered) -> Rendered:
        tracking = job.content.tracking
        opens, clicks = wants(tracking, "open"), wants(tracking, "click")
        if self.links is None or rendered.html is None or not (opens or clicks):
            return rendered
        html = self.links.rewrite_html(rendered.html, job.account_id, message.id, opens, clicks, None)
        return Rendered(rendered.subject, rendered.text, html, rendered.amp)

    def _start(self, job: Job) -> None:
        """A scheduled job's first attempt is due: queue its chunks (or expire it, if too late)."""
        if job.expires_at is not None and time.time() >= job.expires_at:
            self.store.start_scheduled_job(job.id)
            self._expire(job)
            return
        if self.store.start_scheduled_job(job.id):
            pending = self.store.pending_chunks(job.id)
            if pending:
                enqueue_chunks(self.queue, job.account_id, job.id, pending)
            else:
                self.store.complete_job_if_done(job.id)  # every message was cancelled meanwhile

    def _expire(self, job: Job) -> None:
        self.store.expire_unsent(job.id)
        if not self.store.pending_chunks(job.id):  # nothing still in flight: the job ends expired
            self.store.transition_job(job.account_id, job.id, _LIVE, JobState.EXPIRED)

    def _not_sent_yet(
        self, outcomes: Outcomes, job: Job, message: Message, exc: TransientSendError, run: _Run
    ) -> None:
        """A transient failure of this message's attempt: back to `queued` for the chunk's retry, or
        failed when it was its own last attempt."""
        attempt = message.attempts + 1
        if attempt >= self.policy.max_attempts:
            reason = f"gave up after {attempt} attempts: {exc.message}"
            self._failed(outcomes, job, message, exc.code, reason)
            run.gave_up = exc.message
        elif self._until_it_lands(lambda: self.store.release_message(message.id, exc.message)):
            self._event(outcomes, "message.transient_error", job, message)
            run.deferred_attempts = max(run.deferred_attempts, attempt)

    def _record_sent(self, message: Message, following: str | None) -> bool:
        """The relay took the message: record it (claiming `following` in the same write), retrying
        until the write lands. Its claim keeps every other delivery off the message for the lease;
        past that it could be sent again, so the retries stop just before. The process remembers
        the send either way. Returns whether `following` was claimed."""
        _known_sent.add(message.id)
        deadline = time.monotonic() + self.policy.claim_lease_seconds - SENT_WRITE_MARGIN_SECONDS
        pause = 0.25
        while True:
            try:
                claimed = False
                if following is None:
                    self.store.finish_message(message.id, MessageStatus.SENT)
                else:
                    _, claimed = self.store.finish_and_claim(
                        message.id, MessageStatus.SENT, following, self.policy.claim_lease_seconds
                    )
                _known_sent.discard(message.id)
                return claimed
            except Exception:
                if time.monotonic() + pause >= deadline:
                    log.critical(
                        "message %s was accepted by the relay but could not be recorded as sent;"
                        " this process will not send it again, another one may after the lease",
                        message.id,
                    )
                    raise
                log.exception("recording message %s as sent failed; retrying in %.1f s", message.id, pause)
                time.sleep(pause)
                pause = min(SENT_WRITE_RETRY_MAX_SECONDS, pause * 2)


@dataclass(slots=True)
class _Run:
    """What one delivery of a chunk did, for what happens to the chunk afterwards."""

    offered: bool = False  # some message reached a relay (sent, refused or deferred by it)
    untried: bool = False  # messages left without an attempt (a lost connection, a stop)
    held_elsewhere: bool = False  # messages in flight in another delivery
    deferred_attempts: int = 0  # the most attempts among messages deferred for a retry
    gave_up: str | None = None  # why messages were failed on their last attempt
    reason: str | None = None


class _KnownSent:
    """Ids of messages this process saw a relay accept but has not yet recorded as sent: shared by
    every worker thread of the process, so that none sends them again."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, message_id: str) -> None:
        with self._lock:
            self._ids[message_id] = None
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def discard(self, message_id: str) -> None:
        with self._lock:
            self._ids.pop(message_id, None)

    def has(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._ids


_known_sent = _KnownSent()


def _forever() -> int:
    return 2**31


class _Sessions:
    """The transport sessions of one chunk: one per provider, opened on first use and reused for
    every message (one SMTP connection per chunk). A provider whose connection is lost is not
    tried again within the chunk."""

    def __init__(self, providers: Providers) -> None:
        self._providers = providers
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
            from mailsage.adapters.sandbox import SandboxTransport

            return SandboxTransport(name.removeprefix(SANDBOX_ROUTE))  # type: ignore[arg-type]
        return self._providers.get(name)

    def close(self) -> None:
        for session in self._open.values():
            session.close()
