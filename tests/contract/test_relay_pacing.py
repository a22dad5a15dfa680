"""A relay URL's max_rate and max_connections hold across concurrent senders, on every store.

The real DeliveryService, wired as `mailsage.wiring` wires it (route_limits and providers from the
settings' relay URL), sends through a real SMTP relay on loopback with 4 worker threads. The pacing
state lives in the store under test. For the rate, time is simulated: the clock moves only when
every worker sleeps for a grant, to the earliest wake-up, and the relay stamps each arrival with it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.domain import delivery
from mailsage.domain.clock import ManualClock
from mailsage.domain.composition import Composer
from mailsage.domain.delivery import DeliveryPolicy, DeliveryService, RetryChunk
from mailsage.domain.models import ChunkRef, MessageStatus
from mailsage.domain.outcomes import Outcomes
from mailsage.domain.pacing import BURST_SECONDS, Pacer
from mailsage.ports import Store
from mailsage.settings import SenderSettings
from mailsage.wiring import providers, route_limits
from tests.conftest import serving_relay
from tests.contract.conftest import JobFactory

WORKERS = 4
CHUNKS = (15, 15, 15, 15)  # 60 messages, one chunk per worker


class SimClock(ManualClock):
    """Time that moves only when every worker sleeps: to the earliest wake-up, waking those due."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._awake = 0
        self._wakeups: list[float] = []

    def join(self) -> None:
        with self._cond:
            self._awake += 1

    def leave(self) -> None:
        with self._cond:
            self._awake -= 1
            self._advance()

    def sleep(self, seconds: float) -> None:
        with self._cond:
            target = self.now + seconds
            self._wakeups.append(target)
            self._awake -= 1
            self._advance()
            self._cond.wait_for(lambda: self.now >= target)

    def _advance(self) -> None:
        if self._awake or not self._wakeups:
            return
        self.now = max(self.now, min(self._wakeups))
        due = [t for t in self._wakeups if t <= self.now]
        self._wakeups = [t for t in self._wakeups if t > self.now]
        self._awake += len(due)  # counted here: a woken worker is awake before it runs again
        self._cond.notify_all()


class Relay:
    """Accepts mail, stamping each arrival with the clock and counting concurrent connections."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.arrivals: list[float] = []
        self.delivered: Counter[str] = Counter()
        self.connections = 0
        self.peak = 0
        self._lock = threading.Lock()

    def opened(self) -> None:
        with self._lock:
            self.connections += 1
            self.peak = max(self.peak, self.connections)

    def closed(self) -> None:
        with self._lock:
            self.connections -= 1

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        [rcpt] = envelope.rcpt_tos
        with self._lock:
            self.arrivals.append(self.clock())
            self.delivered[rcpt] += 1
        return "250 OK"


class CountingController(Controller):
    def factory(self) -> SMTP:
        relay: Relay = self.handler

        class Counted(SMTP):
            def connection_made(self, transport: Any) -> None:
                relay.opened()
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                relay.closed()
                super().connection_lost(error)

        return Counted(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def relay(clock: SimClock) -> Iterator[tuple[Relay, int]]:
    handler = Relay(clock)
    with serving_relay(handler, CountingController) as port:
        yield handler, port


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    db = Database(tmp_path / "queue.sqlite3")
    yield SqliteQueue(db, "send", visibility_timeout=30.0, max_receives=50)
    db.close()


def sender(
    store: Store, queue: SqliteQueue, relay_url: str, clock: SimClock, tmp_path: Path
) -> DeliveryService:
    """The delivery service as wiring builds it, over the store under test and a simulated clock."""
    settings = SenderSettings(smtp_relays={"relay": relay_url}, default_provider="relay", data_dir=tmp_path)
    policy = DeliveryPolicy(max_attempts=3, retry_base_seconds=0.0)
    return DeliveryService(
        jobs=store,
        chunks=store,
        messages=store,
        suppressions=store,
        queue=queue,
        providers=providers(settings, 5.0),
        policy=policy,
        outcomes=lambda: Outcomes(store, None, policy.message_id_domain, policy.suppression),
        composer=Composer(policy.message_id_domain),
        clock=clock,
        # A horizon longer than the job: every sender sleeps for its grant, none is sent away.
        pacer=Pacer(store, route_limits(settings), clock, horizon=3600.0),
        sleep=clock.sleep,
    )


def work(service: DeliveryService, queue: SqliteQueue, clock: SimClock) -> None:
    """Deliver what the queue holds now, then leave the clock."""
    try:
        while True:
            records = queue.receive(max_messages=1, wait_seconds=0)
            if not records:
                return
            [record] = records
            try:
                service.deliver(ChunkRef.from_body(record.body), record.receipt, record.receive_count)
            except RetryChunk:
                continue
            queue.ack(record.receipt)
    finally:
        clock.leave()


def drain(service: DeliveryService, queue: SqliteQueue, clock: SimClock, within: float = 60.0) -> None:
    """WORKERS threads deliver until the queue is empty (chunks sent away come back in real time)."""
    deadline = time.monotonic() + within
    while queue.depth() and time.monotonic() < deadline:
        threads = [threading.Thread(target=work, args=(service, queue, clock)) for _ in range(WORKERS)]
        for _ in threads:
            clock.join()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(0.05)
    assert queue.depth() == 0, "the send queue did not drain"


def submit(jobs: JobFactory, queue: SqliteQueue) -> str:
    job, _ = jobs.create(chunk_sizes=CHUNKS)
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": n} for n in range(len(CHUNKS))])
    return job.id


def statuses(store: Store, job_id: str) -> Counter[MessageStatus]:
    return Counter(m.status for n in range(len(CHUNKS)) for m in store.chunk_messages(job_id, n))


def busiest_second(arrivals: list[float]) -> int:
    times = sorted(arrivals)
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


def test_max_rate_holds_across_concurrent_senders(
    store: Store,
    jobs: JobFactory,
    queue: SqliteQueue,
    relay: tuple[Relay, int],
    clock: SimClock,
    tmp_path: Path,
) -> None:
    # Given a relay URL allowing 5 messages a second, and a job of 60 in 4 chunks
    handler, port = relay
    rate = 5.0
    job_id = submit(jobs, queue)
    service = sender(store, queue, f"smtp://127.0.0.1:{port}?max_rate={rate:g}", clock, tmp_path)
    # When 4 workers deliver it concurrently
    drain(service, queue, clock)
    # Then every message arrived once and none failed
    assert handler.delivered == Counter({f"user{n}@example.com": 1 for n in range(sum(CHUNKS))})
    assert statuses(store, job_id) == Counter({MessageStatus.SENT: sum(CHUNKS)})
    # And no second of the relay's clock held more than the rate and its burst
    assert busiest_second(handler.arrivals) <= rate + rate * BURST_SECONDS
    # And the rate was used: the 60 took about 60 / 5 seconds, not more
    assert max(handler.arrivals) - min(handler.arrivals) <= sum(CHUNKS) / rate + 1.0


def test_max_connections_holds_across_concurrent_senders(
    store: Store,
    jobs: JobFactory,
    queue: SqliteQueue,
    relay: tuple[Relay, int],
    clock: SimClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a relay URL allowing 2 connections, and a job of 60 in 4 chunks (one per worker)
    monkeypatch.setattr(delivery, "CONNECTIONS_BUSY_SECONDS", 0.2)  # a busy chunk comes back soon
    handler, port = relay
    job_id = submit(jobs, queue)
    service = sender(store, queue, f"smtp://127.0.0.1:{port}?max_connections=2", clock, tmp_path)
    # When 4 workers deliver it concurrently
    drain(service, queue, clock)
    # Then the relay never had more than 2 connections at once
    assert 1 <= handler.peak <= 2
    # And every message arrived exactly once, none failed
    assert handler.delivered == Counter({f"user{n}@example.com": 1 for n in range(sum(CHUNKS))})
    assert statuses(store, job_id) == Counter({MessageStatus.SENT: sum(CHUNKS)})
