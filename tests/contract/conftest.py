"""Contract fixtures: every port fixture is parametrized over the adapters that implement it.

Each adapter is built by a small factory keyed by name, on fresh storage per test. Adding an
adapter (e.g. "dynamodb", "sqs", "eventbridge" under moto) is one entry in the matching dict below;
the suites in this folder then run against it unchanged. Tests only use the port methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.adapters.sqlite.scheduler import SqliteScheduler
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.models import Content, Job, JobState, Message, MessageStatus, new_id
from mailsage.ports import Queue, Scheduler, Store
from tests.contract import aws_messaging, aws_store, laned_queues

# Queue timing for the contract: short enough that visibility expiry and dead-lettering can be
# observed by waiting briefly. An adapter that cannot honour sub-second timeouts would need its own.
VISIBILITY_TIMEOUT = 0.3
MAX_RECEIVES = 3


@dataclass(frozen=True)
class QueueConfig:
    visibility_timeout: float
    max_receives: int


# -- adapter factories ------------------------------------------------------------------------------


@contextmanager
def _sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "contract.sqlite3")
    try:
        yield db
    finally:
        db.close()


@contextmanager
def _sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with _sqlite_db(tmp_path) as db:
        yield SqliteStore(db)


@contextmanager
def _sqlite_queue(tmp_path: Path, config: QueueConfig) -> Iterator[Queue]:
    with _sqlite_db(tmp_path) as db:
        yield SqliteQueue(
            db,
            name="contract",
            visibility_timeout=config.visibility_timeout,
            max_receives=config.max_receives,
        )


@contextmanager
def _sqlite_scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    with _sqlite_db(tmp_path) as db:
        yield SqliteScheduler(db)


STORES: dict[str, Callable[[Path], AbstractContextManager[Store]]] = {
    "sqlite": _sqlite_store,
    **aws_store.STORES,
}
QUEUES: dict[str, Callable[[Path, QueueConfig], AbstractContextManager[Queue]]] = {
    "sqlite": _sqlite_queue,
    **aws_messaging.QUEUES,
    **laned_queues.QUEUES,
}
SCHEDULERS: dict[str, Callable[[Path], AbstractContextManager[Scheduler]]] = {
    "sqlite": _sqlite_scheduler,
    **aws_messaging.SCHEDULERS,
}


# -- port fixtures ----------------------------------------------------------------------------------


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with STORES[request.param](tmp_path) as adapter:
        yield adapter


@pytest.fixture
def queue_config() -> QueueConfig:
    return QueueConfig(visibility_timeout=VISIBILITY_TIMEOUT, max_receives=MAX_RECEIVES)


@pytest.fixture(params=sorted(QUEUES))
def queue(request: pytest.FixtureRequest, tmp_path: Path, queue_config: QueueConfig) -> Iterator[Queue]:
    with QUEUES[request.param](tmp_path, queue_config) as adapter:
        yield adapter


@pytest.fixture(params=sorted(SCHEDULERS))
def scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scheduler]:
    with SCHEDULERS[request.param](tmp_path) as adapter:
        yield adapter


# -- domain object factory --------------------------------------------------------------------------


@dataclass
class JobFactory:
    """Builds a job and its messages (seq 0..n-1, laid out chunk by chunk) and optionally stores them."""

    store: Store

    def build(
        self,
        account_id: str = "acc_a",
        chunk_sizes: Sequence[int] = (2,),
        state: JobState = JobState.QUEUED,
        message_status: MessageStatus = MessageStatus.QUEUED,
    ) -> tuple[Job, list[Message]]:
        now = time.time()
        total = sum(chunk_sizes)
        job = Job(
            id=new_id("job"),
            account_id=account_id,
            kind="batch" if total > 1 else "send",
            state=state,
            content=Content(
                subject="Hello {{ name }}",
                text="Dear {{ name }}",
                html="<p>Dear {{ name }}</p>",
                from_addr="Acme <noreply@acme.test>",
                reply_to="support@acme.test",
            ),
            total=total,
            created_at=now,
            updated_at=now,
            chunks=len(chunk_sizes),
        )
        messages: list[Message] = []
        for chunk, size in enumerate(chunk_sizes):
            for _ in range(size):
                seq = len(messages)
                messages.append(
                    Message(
                        id=new_id("msg"),
                        job_id=job.id,
                        account_id=account_id,
                        seq=seq,
                        chunk=chunk,
                        email=f"user{seq}@example.com",
                        name=f"User {seq}",
                        variables={"name": f"User {seq}", "code": seq, "tags": ["a", "b"]},
                        status=message_status,
                    )
                )
        return job, messages

    def create(
        self,
        account_id: str = "acc_a",
        chunk_sizes: Sequence[int] = (2,),
        state: JobState = JobState.QUEUED,
        message_status: MessageStatus = MessageStatus.QUEUED,
    ) -> tuple[Job, list[Message]]:
        job, messages = self.build(account_id, chunk_sizes, state, message_status)
        self.store.create_job(job, messages)
        return job, messages


@pytest.fixture
def jobs(store: Store) -> JobFactory:
    return JobFactory(store)
