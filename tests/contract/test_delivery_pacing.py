"""Pacing and parking in the real DeliveryService, on every store (SQLite, DynamoDB under moto).

Mail goes to a real SMTP relay on loopback; the pacing state lives in the store under test; time is
a ManualClock that the sender's waits move (nothing here sleeps). The relay notes the clock at each
arrival, so the rate it saw is read from the arrivals, not from the wall clock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from mailsage.adapters.smtp import SmtpConfig, SmtpTransport
from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.domain.clock import ManualClock
from mailsage.domain.composition import Composer
from mailsage.domain.delivery import DeliveryPolicy, DeliveryService, RetryChunk
from mailsage.domain.models import ChunkRef, JobState, MessageStatus
from mailsage.domain.outcomes import Outcomes
from mailsage.domain.pacing import Pacer, RouteLimit
from mailsage.domain.parking import PROBE_CHUNK
from mailsage.domain.providers import Providers
from mailsage.errors import ProviderPaused
from mailsage.ports import Store, TransportSession
from tests.conftest import serving_relay
from tests.contract.conftest import JobFactory

RATE = 5.0


class Relay:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.arrivals: list[tuple[float, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        [rcpt] = envelope.rcpt_tos
        self.arrivals.append((self.clock(), rcpt))
        return "250 OK"


class Events:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def publish(self, events: list[Any]) -> None:
        self.seen.extend(events)

    def types(self) -> list[str]:
        return [str(e.type) for e in self.seen]


class PausingTransport:
    """The relay's transport, except that while `paused` is set every send raises what SES raises
    when the daily quota is used up (the adapter's translation of it)."""

    def __init__(self, inner: SmtpTransport) -> None:
        self.inner = inner
        self.paused: str | None = None
        self.refused = 0

    def open(self) -> TransportSession:
        session = self.inner.open()
        outer = self

        class Session:
            def send(self, sender: str, recipient: str, data: bytes, tags: Any = None) -> str | None:
                if outer.paused is not None:
                    outer.refused += 1
                    raise ProviderPaused(f"{outer.paused} (simulated)", reason=outer.paused)
                return session.send(sender, recipient, data, tags)

            def close(self) -> None:
                session.close()

        return Session()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def relay(clock: ManualClock) -> Iterator[tuple[Relay, int]]:
    handler = Relay(clock)
    with serving_relay(handler) as port:
        yield handler, port


@pytest.fixture
def queue(tmp_path: Any, clock: ManualClock) -> Iterator[SqliteQueue]:
    db = Database(tmp_path / "queue.sqlite3")
    yield SqliteQueue(db, "send", visibility_timeout=30.0, max_receives=50, clock=clock)
    db.close()


def sender(
    store: Store, queue: SqliteQueue, transport: Any, clock: ManualClock, events: Events
) -> DeliveryService:
    policy = DeliveryPolicy(max_attempts=3, retry_base_seconds=0.0)
    limits = {"smtp": RouteLimit(rate=RATE)}
    return DeliveryService(
        jobs=store,
        chunks=store,
        messages=store,
        suppressions=store,
        queue=queue,
        providers=Providers({"smtp": lambda: transport}, "smtp"),
        policy=policy,
        outcomes=lambda: Outcomes(store, events, policy.message_id_domain, policy.suppression),  # type: ignore[arg-type]
        composer=Composer(policy.message_id_domain),
        clock=clock,
        pacer=Pacer(store, limits.get, clock),
        sleep=clock.advance,
    )


def drain(service: DeliveryService, queue: SqliteQueue, clock: ManualClock, until: float) -> None:
    """The worker loop: deliver what is visible; when nothing is, move the clock on a second."""
    while clock() < until and queue.depth():
        received = queue.receive(max_messages=10)
        if not received:
            clock.advance(1.0)
            continue
        for r in received:
            try:
                service.deliver(ChunkRef.from_body(r.body), r.receipt, r.receive_count)
            except RetryChunk:
                continue
            queue.ack(r.receipt)


def test_sends_through_a_paced_relay_stay_within_its_rate(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int], clock: ManualClock
) -> None:
    # Given a relay allowed 5 messages/s and a job of 3 chunks of 10
    handler, port = relay
    job, _ = jobs.create(chunk_sizes=(10, 10, 10))
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": c} for c in range(3)])
    transport = SmtpTransport(SmtpConfig("127.0.0.1", port, timeout=5.0))

    # When the chunks are delivered
    drain(sender(store, queue, transport, clock, Events()), queue, clock, clock() + 600)

    # Then every message arrived once, and no second of the relay's saw more than the rate allows
    # (5/s plus its half-second burst)
    assert Counter(r for _, r in handler.arrivals) == Counter({f"user{i}@example.com": 1 for i in range(30)})
    times = sorted(t for t, _ in handler.arrivals)
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= RATE + RATE * 0.5
    # and the whole job took about as long as the rate requires: it was not slowed further
    assert times[-1] - times[0] <= 30 / RATE + 1.0
    done = store.get_job(job.account_id, job.id)
    assert done is not None and done.state == JobState.COMPLETED
    assert done.send_rate == RATE


def test_a_used_up_daily_quota_parks_the_job_and_it_resumes_by_itself(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int], clock: ManualClock
) -> None:
    # Given a job of 2 chunks of 5 whose provider answers "daily quota exceeded" for now
    handler, port = relay
    job, _ = jobs.create(chunk_sizes=(5, 5))
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": c} for c in range(2)])
    transport = PausingTransport(SmtpTransport(SmtpConfig("127.0.0.1", port, timeout=5.0)))
    transport.paused = "daily_quota"
    events = Events()
    service = sender(store, queue, transport, clock, events)

    # When its chunks are delivered while the quota is used up
    drain(service, queue, clock, clock() + 60)

    # Then the job is parked with its reason, nothing failed, no attempt was counted, and one
    # probe waits in the queue
    parked = store.get_job(job.account_id, job.id)
    assert parked is not None and (parked.state, parked.paused_reason) == (JobState.PAUSED, "daily_quota")
    messages = [m for c in range(2) for m in store.chunk_messages(job.id, c)]
    assert {(m.status, m.attempts) for m in messages} == {(MessageStatus.QUEUED, 0)}
    assert events.types().count("job.paused") == 1
    assert handler.arrivals == []
    waiting = queue.depth()
    assert waiting >= 1

    # When the quota frees up and time passes beyond the next probe
    transport.paused = None
    drain(service, queue, clock, clock() + 3600)

    # Then the job resumed by itself and completed: every message sent once
    done = store.get_job(job.account_id, job.id)
    assert done is not None and done.state == JobState.COMPLETED and done.paused_reason is None
    assert Counter(r for _, r in handler.arrivals) == Counter({f"user{i}@example.com": 1 for i in range(10)})
    assert "job.resumed" in events.types()
    assert all(m.attempts == 1 for c in range(2) for m in store.chunk_messages(job.id, c))


def test_a_parked_provider_is_probed_with_one_message_not_with_every_job(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int], clock: ManualClock
) -> None:
    # Given three jobs parked because the provider paused sending
    _, port = relay
    transport = PausingTransport(SmtpTransport(SmtpConfig("127.0.0.1", port, timeout=5.0)))
    transport.paused = "sending_paused"
    service = sender(store, queue, transport, clock, Events())
    created = [jobs.create(chunk_sizes=(3,))[0] for _ in range(3)]
    queue.send([{"account_id": j.account_id, "job_id": j.id, "chunk": 0} for j in created])
    drain(service, queue, clock, clock() + 10)
    refused_at_park = transport.refused

    # When an hour passes with the provider still paused
    drain(service, queue, clock, clock() + 3600)

    # Then it was tried about once per probe interval, not once per job and interval
    probes = transport.refused - refused_at_park
    assert 1 <= probes <= 3600 / 300 + 1
    for j in created:
        got = store.get_job(j.account_id, j.id)
        assert got is not None and got.paused_reason == "sending_paused"
        assert {m.status for m in store.chunk_messages(j.id, 0)} == {MessageStatus.QUEUED}
    assert {b["chunk"] for b in _bodies(queue)} == {PROBE_CHUNK}


def _bodies(queue: SqliteQueue) -> list[dict[str, Any]]:
    rows = queue.db.connection().execute("SELECT body FROM queue_messages WHERE queue = ?", (queue.name,))
    return [json.loads(r[0]) for r in rows]


class FailingOnce:
    """The store's pacing state, except that its `fail_at`-th change fails (a store unavailable)."""

    def __init__(self, store: Store, fail_at: int) -> None:
        self.store, self.calls, self.fail_at = store, 0, fail_at

    def change_pacing(self, key: str, change: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("the pacing store is unavailable")
        return self.store.change_pacing(key, change)

    def pacing_state(self, key: str) -> Any:
        return self.store.pacing_state(key)


def test_a_pacing_store_failing_after_a_send_never_keeps_that_send_unrecorded(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int], clock: ManualClock
) -> None:
    # Given a chunk of 10 at 5/s (a grant is 2 messages) and a pacing store whose second change,
    # made right after the second message went out, fails
    handler, port = relay
    job, _ = jobs.create(chunk_sizes=(10,))
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": 0}])
    service = sender(store, queue, SmtpTransport(SmtpConfig("127.0.0.1", port, timeout=5.0)), clock, Events())
    service.slots.pacer = service.pacer = Pacer(
        FailingOnce(store, 2), {"smtp": RouteLimit(rate=RATE)}.get, clock
    )  # type: ignore[arg-type]

    # When the chunk is delivered until done
    drain(service, queue, clock, clock() + 600)

    # Then that send was recorded (nothing left `sending` for its lease), and every message went out once
    assert Counter(r for _, r in handler.arrivals) == Counter({f"user{i}@example.com": 1 for i in range(10)})
    assert {m.status for m in store.chunk_messages(job.id, 0)} == {MessageStatus.SENT}
