"""The sending side of a deployment on virtual time: a real SQLite file as store and queues, the
real SubmissionService, DeliveryService and Pacer, the real SesTransport over a fake SES, and
worker threads that loop as the senders do (receive, deliver, acknowledge unless it raised
RetryChunk). Shared by tests/simulation and the bench's pacing figure."""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailsage.adapters.aws.ses_transport import SesTransport
from mailsage.adapters.lanes import BULK_TAG, PRIORITY_TAG, LanedQueue
from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.composition import Composer
from mailsage.domain.delivery import DeliveryPolicy, DeliveryService, RetryChunk
from mailsage.domain.events import Event
from mailsage.domain.models import ChunkRef, Job
from mailsage.domain.outcomes import Outcomes
from mailsage.domain.pacing import Pacer, RouteLimit
from mailsage.domain.providers import Providers
from mailsage.domain.submission import JobRequest, RecipientInput, SubmissionLimits, SubmissionService
from mailsage.ports import Received
from tests.simulation.fake_ses import FakeSes
from tests.simulation.virtual_time import VirtualTime

log = logging.getLogger(__name__)

SENDER_MAX_CONCURRENCY = 10  # infra/config.py's default sender_max_concurrency
SENDER_BATCH_SIZE = 5  # infra/capabilities.py: chunks per sender invocation
ROUTE = "ses"
FROM = "News <news@example.com>"


class CountingMeter:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, name: str, value: float = 1.0, unit: str = "Count") -> None:
        with self._lock:
            self.counts[name] += value


class RecordedEvents:
    """The event publisher: keeps every event published."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def interested(self, account_id: str, type_: str) -> bool:
        return str(type_).startswith("job.")  # a message's events would only cost time here

    def publish(self, events: Iterable[Event]) -> int:
        with self._lock:
            before = len(self.events)
            self.events.extend(e for e in events if self.interested(e.account_id, e.type))
            return len(self.events) - before

    def of(self, type_: str, job_id: str) -> list[Event]:
        return [
            e for e in self.events if e.type == type_ and e.data.get("job_id", e.data.get("id")) == job_id
        ]


class Lanes(LanedQueue):
    """The real LanedQueue, waking idle workers on every send and retry, with a receive per lane for
    the workers of each lane (as each lane has its own event source mapping on AWS)."""

    def __init__(self, priority: SqliteQueue, bulk: SqliteQueue, time: VirtualTime) -> None:
        super().__init__(priority, bulk)
        self.queues = {PRIORITY_TAG: priority, BULK_TAG: bulk}
        self.time = time

    def send(
        self,
        bodies: Sequence[dict[str, Any]],
        dedup_keys: Sequence[str] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        super().send(bodies, dedup_keys, delay_seconds)
        self.time.kick()

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        super().retry_later(receipt, delay_seconds)
        self.time.kick()

    def receive_from(self, tag: str, max_messages: int) -> list[Received]:
        return self._received(tag, self.queues[tag].receive(max_messages, 0.0))

    def next_visible(self, tag: str) -> float | None:
        queue = self.queues[tag]
        row = (
            queue.db.connection()
            .execute("SELECT min(visible_at) FROM queue_messages WHERE queue = ?", (queue.name,))
            .fetchone()
        )
        return None if row[0] is None else float(row[0])


@dataclass
class Simulation:
    """One deployment's senders against a fake SES at `rate` messages per second."""

    directory: Path
    rate: float
    workers: int = SENDER_MAX_CONCURRENCY
    priority_workers: int = 1  # the transactional lane's own sender
    max_24_hour_send: int | None = None
    time: VirtualTime = field(default_factory=VirtualTime)
    meter: CountingMeter = field(default_factory=CountingMeter)
    events: RecordedEvents = field(default_factory=RecordedEvents)
    errors: list[str] = field(default_factory=list)
    seed: Path | None = None  # a database file of an earlier simulation (its jobs submitted), copied

    def __post_init__(self) -> None:
        path = self.directory / "simulation.sqlite3"
        if self.seed is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.seed, path)
        self.db = Database(path, synchronous="OFF")
        self.store = SqliteStore(self.db, clock=self.time)
        self.queue = Lanes(
            SqliteQueue(self.db, "priority", clock=self.time),
            SqliteQueue(self.db, "send", clock=self.time),
            self.time,
        )
        self.ses = FakeSes(self.time, self.time.sleep, self.rate, self.max_24_hour_send)
        self.pacer = Pacer(self.store, self._limit, clock=self.time)  # the pacing row in the same file
        transport = SesTransport(client=self.ses)
        self.delivery = DeliveryService(
            jobs=self.store,
            chunks=self.store,
            messages=self.store,
            suppressions=self.store,
            queue=self.queue,
            providers=Providers({ROUTE: lambda: transport}, ROUTE),
            policy=DeliveryPolicy(),
            outcomes=lambda: Outcomes(self.store, self.events, clock=self.time),  # type: ignore[arg-type]
            composer=Composer("mailsage.local"),
            clock=self.time,
            pacer=self.pacer,
            meter=self.meter,
            sleep=self.time.sleep,
        )
        self.submission = SubmissionService(
            jobs=self.store,
            templates=self.store,
            accounts=self.store,
            suppressions=self.store,
            queue=self.queue,
            limits=SubmissionLimits(max_recipients=100_000, providers=frozenset({ROUTE})),
            publisher=self.events,  # type: ignore[arg-type]
            clock=self.time,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()

    def _limit(self, route: str) -> RouteLimit | None:
        return RouteLimit(rate=self.rate) if route == ROUTE else None

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, account: str, recipients: int, kind: str = "batch", campaign: str | None = None) -> str:
        """A job of `recipients` distinct addresses; returns its id."""
        first = next(self._numbers)
        for _ in range(recipients - 1):
            next(self._numbers)
        request = JobRequest(
            kind=kind,
            recipients=[
                RecipientInput(f"r{first + i}@example.org", None, {"n": first + i}) for i in range(recipients)
            ],
            subject="Hello {{ n }}",
            text="Message number {{ n }}.",
            from_addr=FROM,
            provider=ROUTE,
            campaign_id=campaign,
        )
        return self.submission.submit(account, request).job.id

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self.time.stopping = False
        lanes = [BULK_TAG] * self.workers + [PRIORITY_TAG] * self.priority_workers
        for n, tag in enumerate(lanes):
            self.time.join()  # before the thread starts, so time cannot run ahead of it
            thread = threading.Thread(target=self._worker, args=(tag,), name=f"sim-{tag}{n}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def run_until(self, virtual_seconds: float | None, real_seconds: float = 120.0) -> None:
        """Run the workers `virtual_seconds` from now (None: until nothing more can happen, which
        stops them); they stay blocked there until the next call."""
        if not self._threads:
            self.start()
        until = None if virtual_seconds is None else self.time() + virtual_seconds
        finished = self.time.run_until(until, real_seconds)
        assert finished, f"the simulation took more than {real_seconds} s of real time"
        if virtual_seconds is None:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        self.time.release_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def _worker(self, tag: str) -> None:
        try:
            while not self._stop.is_set():
                seen = self.time.generation
                received = self.queue.receive_from(tag, SENDER_BATCH_SIZE)
                if not received:
                    due = self.queue.next_visible(tag)
                    if due is None or due > self.time():
                        self.time.idle(due, seen)
                    continue
                for record in received:
                    self._deliver(record)
        finally:
            self.time.leave()

    def _deliver(self, record: Received) -> None:
        body = record.body
        ref = ChunkRef(body["account_id"], body["job_id"], int(body["chunk"]))
        try:
            self.delivery.deliver(ref, record.receipt, record.receive_count)
        except RetryChunk:
            return  # comes back after the delay it set
        except Exception as exc:  # recorded: the tests assert there were none
            log.exception("delivery of %s failed", ref)
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.queue.ack(record.receipt)

    # -- what happened ---------------------------------------------------------------------------
    def job(self, account: str, job_id: str) -> Job:
        job = self.store.get_job(account, job_id)
        assert job is not None
        return job

    def sent_order(self) -> list[str]:
        """The job id of each message SES accepted, in order."""
        return [a.job_id for a in self.ses.accepted]

    def close(self) -> None:
        self.stop()
        self.db.close()

    def save(self, path: Path) -> None:
        """Copy the database (before any worker ran) as a seed for later simulations."""
        self.db.connection().execute("VACUUM INTO ?", (str(path),))
