"""Per-message attempts and the post-send write, on every store (SQLite, DynamoDB under moto).

The real DeliveryService sends through a real SMTP relay on loopback that can drop the connection
on chosen recipients' DATA and can trigger a store fault right after it accepted a message (a
foreign SQLite write lock; failing DynamoDB UpdateItems), so the write recording the send fails.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest

from mailsage.adapters.smtp import SmtpConfig, SmtpTransport
from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain import delivery
from mailsage.domain.composition import Composer
from mailsage.domain.delivery import DeliveryPolicy, DeliveryService, RetryChunk
from mailsage.domain.models import ChunkRef, Message, MessageStatus
from mailsage.domain.outcomes import Outcomes
from mailsage.domain.providers import Providers
from mailsage.ports import Store
from tests.conftest import free_port, serving_relay
from tests.contract.conftest import JobFactory


class Relay:
    """Accepts mail, counting each recipient's offers (DATA seen) and deliveries (250 given)."""

    def __init__(self) -> None:
        self.offers: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.drops: dict[str, int] = {}  # recipient -> DATA commands still to answer by hanging up
        self.throttles: dict[str, int] = {}  # recipient -> DATA commands still to answer `throttle_reply`
        self.throttle_reply = "451 4.7.1 Rate limit exceeded, slow down"
        self.on_accept: Callable[[str], None] = lambda rcpt: None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        [rcpt] = envelope.rcpt_tos
        self.offers[rcpt] += 1
        if self.throttles.get(rcpt, 0) > 0:
            self.throttles[rcpt] -= 1
            return self.throttle_reply
        if self.drops.get(rcpt, 0) > 0:
            self.drops[rcpt] -= 1
            server.transport.abort()  # the connection is lost before the reply
            return "421 gone"
        self.on_accept(rcpt)
        self.delivered[rcpt] += 1
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler = Relay()
    with serving_relay(handler) as port:
        yield handler, port


@pytest.fixture
def queue(tmp_path: Any) -> Iterator[SqliteQueue]:
    db = Database(tmp_path / "queue.sqlite3")
    yield SqliteQueue(db, "send", visibility_timeout=30.0, max_receives=50)
    db.close()


def service(store: Store, queue: SqliteQueue, port: int, lease: float = 300.0) -> DeliveryService:
    transport = SmtpTransport(SmtpConfig("127.0.0.1", port, timeout=5.0))
    policy = DeliveryPolicy(max_attempts=3, retry_base_seconds=0.0, claim_lease_seconds=lease)
    return DeliveryService(
        jobs=store,
        chunks=store,
        messages=store,
        suppressions=store,
        queue=queue,
        providers=Providers({"smtp": lambda: transport}, "smtp"),
        policy=policy,
        outcomes=lambda: Outcomes(store, None, policy.message_id_domain, policy.suppression),
        composer=Composer(policy.message_id_domain),
    )


def drain(sender: DeliveryService, queue: SqliteQueue, within: float = 30.0) -> int:
    """Deliver what the queue holds until it is empty, as the worker loop does; returns deliveries."""
    deliveries = 0
    deadline = time.monotonic() + within
    while queue.depth() and time.monotonic() < deadline:
        for r in queue.receive(max_messages=10, wait_seconds=0.3):
            deliveries += 1
            try:
                sender.deliver(ChunkRef.from_body(r.body), r.receipt, r.receive_count)
            except RetryChunk:
                continue
            except Exception:
                continue  # its record comes back after the delay deliver() set
            queue.ack(r.receipt)
    assert queue.depth() == 0, "the send queue did not drain"
    return deliveries


def by_email(store: Store, job_id: str) -> dict[str, Message]:
    return {m.email: m for m in store.chunk_messages(job_id, 0)}


def submit(jobs: JobFactory, queue: SqliteQueue, size: int) -> str:
    job, _ = jobs.create(chunk_sizes=(size,))
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": 0}])
    return job.id


def test_a_message_is_failed_only_for_its_own_attempts(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int]
) -> None:
    # Given a relay that hangs up on every DATA of user3, in a chunk of 10 (3 attempts allowed)
    handler, port = relay
    handler.drops["user3@example.com"] = 99
    job_id = submit(jobs, queue, 10)

    # When the chunk is delivered until the queue is empty
    drain(service(store, queue, port), queue)

    # Then only user3 failed, after 3 offers of its own; everyone else went out once, on one attempt
    messages = by_email(store, job_id)
    failed = {e: m for e, m in messages.items() if m.status == MessageStatus.FAILED}
    assert list(failed) == ["user3@example.com"]
    assert (failed["user3@example.com"].attempts, handler.offers["user3@example.com"]) == (3, 3)
    assert "gave up after 3 attempts" in (failed["user3@example.com"].error_message or "")
    others = {e: m for e, m in messages.items() if e != "user3@example.com"}
    assert {m.status for m in others.values()} == {MessageStatus.SENT}
    assert {m.attempts for m in others.values()} == {1}
    assert all(handler.delivered[e] == 1 for e in others)
    assert store.get_job("acc_a", job_id).state == "completed"  # type: ignore[union-attr]


def test_messages_behind_a_lost_connection_come_back_without_an_attempt(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int]
) -> None:
    # Given a relay that hangs up once on user2's DATA, user1 and user4 too (one each)
    handler, port = relay
    handler.drops.update({"user1@example.com": 1, "user2@example.com": 1, "user4@example.com": 1})
    job_id = submit(jobs, queue, 6)

    # When delivered until done
    drain(service(store, queue, port), queue)

    # Then every message is sent exactly once; the dropped ones carry 2 attempts, the rest 1
    messages = by_email(store, job_id)
    assert {m.status for m in messages.values()} == {MessageStatus.SENT}
    attempts = {e: m.attempts for e, m in messages.items()}
    assert attempts == {
        "user0@example.com": 1,
        "user1@example.com": 2,
        "user2@example.com": 2,
        "user3@example.com": 1,
        "user4@example.com": 2,
        "user5@example.com": 1,
    }
    assert set(handler.delivered.values()) == {1}


def test_an_unreachable_relay_counts_an_attempt_for_each_waiting_message(
    store: Store, jobs: JobFactory, queue: SqliteQueue
) -> None:
    # Given no relay listening at all
    job_id = submit(jobs, queue, 3)

    # When the chunk is delivered until it gives up
    drain(service(store, queue, free_port()), queue)

    # Then each message failed on its third attempt: an outage ends, it does not loop
    messages = by_email(store, job_id)
    assert {(m.status, m.attempts) for m in messages.values()} == {(MessageStatus.FAILED, 3)}


def test_after_a_crash_only_the_message_in_flight_waits_for_its_lease(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int]
) -> None:
    # Given a worker that died while sending user1 (it held user1's claim, and only that one)
    handler, port = relay
    job, messages = jobs.create(chunk_sizes=(5,))
    assert store.claim_messages(job.id, [messages[1].id], lease_seconds=300.0) == [messages[1].id]
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": 0}])
    sender = service(store, queue, port)

    # When the chunk is delivered again (the restart's recovery)
    [received] = queue.receive(max_messages=1)
    sender.deliver(ChunkRef.from_body(received.body), received.receipt, received.receive_count)
    queue.ack(received.receipt)

    # Then everyone else is sent at once; user1 waits in a new record, delayed by the lease
    assert sorted(handler.delivered) == [f"user{i}@example.com" for i in (0, 2, 3, 4)]
    assert by_email(store, job.id)["user1@example.com"].status == MessageStatus.SENDING
    assert queue.depth() == 1 and queue.receive(max_messages=1) == []


@contextmanager
def store_fault(store: Store, seconds: float) -> Iterator[Callable[[], None]]:
    """Yields `start()`: from then on, for `seconds`, the store's writes fail for real — a foreign
    write lock on the SQLite file (with a short busy timeout), or DynamoDB refusing UpdateItem."""
    if isinstance(store, SqliteStore):
        store.db.connection().execute("PRAGMA busy_timeout = 100")
        foreign = sqlite3.connect(store.db.path, isolation_level=None, check_same_thread=False)

        def start() -> None:
            foreign.execute("BEGIN IMMEDIATE")
            threading.Timer(seconds, lambda: foreign.execute("COMMIT")).start()

        yield start
        foreign.close()
        return
    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    until = [0.0]
    original = DynamoHandler.update_item

    def update_item(handler: DynamoHandler) -> Any:
        if time.monotonic() < until[0]:
            raise DynamodbException("InternalServerError", "forced failure")
        return original(handler)

    with mock.patch.object(DynamoHandler, "update_item", update_item):
        yield lambda: until.__setitem__(0, time.monotonic() + seconds)


def test_the_write_after_the_relay_accepted_is_retried_until_it_lands(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int]
) -> None:
    handler, port = relay
    with store_fault(store, seconds=1.5) as start:
        # Given the store failing for 1.5 s from the moment the relay accepts user1
        handler.on_accept = lambda rcpt: start() if rcpt == "user1@example.com" else None
        job_id = submit(jobs, queue, 3)

        # When the chunk is delivered
        drain(service(store, queue, port), queue)

    # Then user1 is recorded as sent, and nobody was sent twice
    messages = by_email(store, job_id)
    assert {m.status for m in messages.values()} == {MessageStatus.SENT}
    assert handler.delivered == Counter({f"user{i}@example.com": 1 for i in range(3)})


def test_a_send_this_process_knows_of_is_recorded_never_repeated(
    store: Store,
    jobs: JobFactory,
    queue: SqliteQueue,
    relay: tuple[Relay, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a lease of 1 s and a store failing for 2 s once the relay accepted user0: the write's
    # retries stop before the lease ends, the delivery fails, and the chunk comes back
    monkeypatch.setattr(delivery, "SENT_WRITE_MARGIN_SECONDS", 0.5)
    handler, port = relay
    with store_fault(store, seconds=2.0) as start:
        handler.on_accept = lambda rcpt: start() if rcpt == "user0@example.com" else None
        job_id = submit(jobs, queue, 2)

        # When the chunk is delivered until done (user0's lease runs out meanwhile)
        drain(service(store, queue, port, lease=1.0), queue)

    # Then user0 was handed to the relay once and recorded as sent by this process
    assert handler.delivered == Counter({"user0@example.com": 1, "user1@example.com": 1})
    assert {m.status for m in by_email(store, job_id).values()} == {MessageStatus.SENT}


def test_a_stopping_worker_starts_no_new_message_and_leaves_the_rest_untried(
    store: Store, jobs: JobFactory, queue: SqliteQueue, relay: tuple[Relay, int]
) -> None:
    # Given a worker whose invocation is out of time after its second message
    handler, port = relay
    job, _ = jobs.create(chunk_sizes=(5,))
    queue.send([{"account_id": job.account_id, "job_id": job.id, "chunk": 0}])
    sender = service(store, queue, port)
    [received] = queue.receive(max_messages=1)

    # When it delivers the chunk
    sender.deliver(
        ChunkRef.from_body(received.body),
        received.receipt,
        received.receive_count,
        remaining_ms=lambda: 0 if sum(handler.delivered.values()) >= 2 else 60_000,
    )
    queue.ack(received.receipt)

    # Then two went out and the other three are queued with no attempt, back in the queue at once
    messages = sorted(store.chunk_messages(job.id, 0), key=lambda m: m.seq)
    assert [(m.status, m.attempts) for m in messages] == [(MessageStatus.SENT, 1)] * 2 + [
        (MessageStatus.QUEUED, 0)
    ] * 3
    drain(sender, queue)
    assert handler.delivered == Counter({f"user{i}@example.com": 1 for i in range(5)})


@pytest.mark.parametrize(
    "reply",
    ["451 4.7.1 Rate limit exceeded, slow down", "421 4.7.0 Too many messages, closing connection"],
)
def test_a_throttle_is_not_an_attempt(
    store: Store,
    jobs: JobFactory,
    queue: SqliteQueue,
    relay: tuple[Relay, int],
    monkeypatch: pytest.MonkeyPatch,
    reply: str,
) -> None:
    # Given a relay that asks to slow down 5 times on each of two recipients' DATA (3 attempts
    # allowed), in a chunk of 4
    monkeypatch.setattr(delivery, "THROTTLE_DELAY_SECONDS", 0.0)
    handler, port = relay
    job_id = submit(jobs, queue, 4)
    emails = sorted(by_email(store, job_id))
    handler.throttle_reply = reply
    handler.throttles = {emails[0]: 5, emails[2]: 5}
    # When the queue drains
    drain(service(store, queue, port), queue)
    # Then every message was sent once, none failed, and no throttle was counted as an attempt
    # (each counts one: the hand-over that was taken)
    messages = by_email(store, job_id)
    assert {e: m.status for e, m in messages.items()} == {e: MessageStatus.SENT for e in emails}
    assert {e: m.attempts for e, m in messages.items()} == {e: 1 for e in emails}
    assert handler.delivered == Counter({e: 1 for e in emails})
    assert handler.offers[emails[0]] == handler.offers[emails[2]] == 6
