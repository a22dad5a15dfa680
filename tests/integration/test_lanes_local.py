"""The transactional lane in the embedded runtime: every producer of chunk records puts a single
send in the priority queue (submission, a scheduled job's start, the runtime's recovery), and in the
running server a single send accepted while a 2,000-recipient batch drains through a slow relay
reaches the relay before the batch's last chunk, without waiting for a worker to finish its chunks.
Real SQLite queues, real handlers, a real SMTP relay on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from mailsage.adapters.lanes import LanedQueue
from mailsage.domain.submission import JobRequest, RecipientInput, SubmissionService
from mailsage.local.runtime import SENDER_BATCH, LocalRuntime, RuntimeConfig
from mailsage.settings import ApiSettings
from mailsage.wiring import Backends, api_services
from tests.conftest import Account, Worker, free_port, wait_until

BATCH = 2000
CHUNK = 50  # ApiSettings.chunk_size
RELAY_DELAY_SECONDS = 0.05  # a slow relay: each message takes this long to be accepted


def lanes(stores: Backends) -> LanedQueue:
    assert isinstance(stores.queue, LanedQueue) and stores.queue.priority is not None
    return stores.queue


def depths(stores: Backends) -> tuple[int, int]:
    """(transactional, bulk) records waiting."""
    queue = lanes(stores)
    assert queue.priority is not None
    return queue.priority.depth(), queue.bulk.depth()


def request(kind: str, emails: list[str], **kw: Any) -> JobRequest:
    return JobRequest(kind=kind, recipients=[RecipientInput(e) for e in emails], subject="Hi", text="x", **kw)


@pytest.fixture
def submission(stores: Backends) -> SubmissionService:
    return api_services(ApiSettings()).submission


def test_a_single_send_is_queued_in_the_transactional_lane_and_a_batch_in_bulk(
    submission: SubmissionService, account: Account, stores: Backends
) -> None:
    # When a single send, a batch and a one-recipient campaign message are accepted
    submission.submit(account.id, request("send", ["ann@example.com"]))
    assert depths(stores) == (1, 0)
    submission.submit(account.id, request("batch", ["a@example.com", "b@example.com"]))
    submission.submit(account.id, request("batch", ["c@example.com"], campaign_id="spring"))
    # Then only the single send is in the transactional lane
    assert depths(stores) == (1, 2)
    [first] = stores.queue.receive(max_messages=1)
    assert first.body.get("lane") == "transactional"


def test_a_scheduled_single_send_starts_in_the_transactional_lane(
    submission: SubmissionService, account: Account, worker: Worker, stores: Backends
) -> None:
    # Given a single send scheduled for later, whose time has come: the scheduler puts its start
    # record on the send queue (as the local scheduler loop does)
    at = time.time() + 3600
    accepted = submission.submit(account.id, request("send", ["ann@example.com"], first_attempt_at=at))
    assert stores.scheduler is not None
    [(name, payload)] = stores.scheduler.due(at)
    stores.queue.send([payload], [f"schedule:{name}"])
    assert depths(stores) == (0, 1)
    # When the sender handles the start record
    assert worker.invoke(stores.queue.receive(max_messages=1)) == set()
    # Then the job's chunk waits in the transactional lane
    assert depths(stores) == (1, 0)
    [chunk] = stores.queue.receive(max_messages=1)
    assert chunk.body["job_id"] == accepted.job.id and chunk.body["chunk"] == 0


def test_recovery_puts_a_single_sends_chunk_back_in_the_transactional_lane(
    data_dir: Path, submission: SubmissionService, account: Account, stores: Backends
) -> None:
    # Given a single send and a batch whose records were lost (the server died holding them)
    submission.submit(account.id, request("send", ["ann@example.com"]))
    submission.submit(account.id, request("batch", ["a@example.com", "b@example.com"]))
    for record in stores.queue.receive(max_messages=10):
        stores.queue.ack(record.receipt)
    assert depths(stores) == (0, 0)
    # When the next server recovers the active jobs
    runtime = LocalRuntime(RuntimeConfig(data_dir=data_dir, sink=False))
    runtime.backends = stores
    runtime._recover()
    # Then each chunk is back in its own lane
    assert depths(stores) == (1, 1)


class SlowRelay:
    """An SMTP relay on 127.0.0.1 that takes RELAY_DELAY_SECONDS to accept each message and keeps
    the order in which recipients arrived."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.arrivals.extend(r.lower() for r in envelope.rcpt_tos)
        await asyncio.sleep(RELAY_DELAY_SECONDS)
        return "250 OK"

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.arrivals)

    def __enter__(self) -> SlowRelay:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@pytest.fixture
def relay() -> Iterator[SlowRelay]:
    with SlowRelay() as relay:
        yield relay


@pytest.fixture
def server(
    data_dir: Path, relay: SlowRelay, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalRuntime, str]]:
    config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=2, sink=False)
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{relay.port}")
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", f"http://127.0.0.1:{config.port}")
    monkeypatch.setenv("MAILSAGE_MAX_BATCH_RECIPIENTS", str(BATCH))
    runtime = LocalRuntime(config)
    _, key = runtime.start()
    try:
        yield runtime, key
    finally:
        runtime.stop()


def post(runtime: LocalRuntime, key: str, path: str, body: dict[str, Any]) -> requests.Response:
    url = f"http://127.0.0.1:{runtime.config.port}{path}"
    return requests.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_a_single_send_overtakes_a_draining_batch(server: tuple[LocalRuntime, str], relay: SlowRelay) -> None:
    runtime, key = server
    # Given a 2,000-recipient batch draining through a slow relay
    readers = [f"reader{i}@example.com" for i in range(BATCH)]
    batch = {"subject": "News", "body": "x", "recipients": [{"email": e} for e in readers]}
    assert post(runtime, key, "/api/v1/emails/batch", batch).status_code == 202
    assert wait_until(lambda: len(relay.snapshot()) >= 10, seconds=60)
    # When a single send is accepted meanwhile
    single = {"recipient": {"email": "urgent@example.com"}, "subject": "Your code", "body": "1234"}
    assert post(runtime, key, "/api/v1/emails/send", single).status_code == 202
    # Then it reaches the relay before any message of the batch's last chunk
    assert wait_until(lambda: "urgent@example.com" in relay.snapshot(), seconds=120)
    arrivals = relay.snapshot()
    before = arrivals[: arrivals.index("urgent@example.com")]
    assert len(before) >= 10
    assert not set(readers[-CHUNK:]) & set(arrivals)
    # And without waiting for a bulk worker to finish the chunks it took at once (SENDER_BATCH
    # chunks each): fewer messages went before it than one such worker's share
    assert len(before) < SENDER_BATCH * CHUNK
    # And the server's health lists the transactional lane's own loops
    loops = runtime.health()
    assert loops.get("priority-0") == loops.get("priority-1") == "ok"
