"""The local runtime's queue loops survive failures, and records of a failed invocation come back
in seconds rather than after the queue's visibility timeout. Real SQLite queue, real sender."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from mailsage.local.runtime import LocalRuntime, RuntimeConfig
from mailsage.local.sink import SmtpSink
from mailsage.ports import Received
from mailsage.wiring import Backends
from tests.conftest import ApiClient, Worker, free_port, wait_until


class FlakyQueue:
    """The real queue, whose first `receive` fails as a locked database does."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.failures_left = 1

    def receive(self, max_messages: int = 10, wait_seconds: float = 0.0) -> list[Received]:
        if self.failures_left:
            self.failures_left -= 1
            raise sqlite3.OperationalError("database is locked")
        return list(self.queue.receive(max_messages=max_messages, wait_seconds=wait_seconds))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


def run_pump(runtime: LocalRuntime, queue: Any, handler: Any) -> threading.Thread:
    thread = threading.Thread(target=runtime._pump, args=(queue, "sender", 10, handler), daemon=True)
    thread.start()
    return thread


def test_a_loop_survives_a_failed_receive(data_dir: Path, stores: Backends) -> None:
    # Given a loop whose first receive fails (a database locked past its busy timeout)
    runtime = LocalRuntime(RuntimeConfig(data_dir=data_dir))
    bodies: list[dict[str, Any]] = []

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bodies.extend(r["body"] for r in event["Records"])
        return {"batchItemFailures": []}

    thread = run_pump(runtime, FlakyQueue(stores.queue), SimpleNamespace(lambda_handler=handle))
    try:
        # When a record arrives afterwards
        stores.queue.send([{"account_id": "a", "job_id": "j", "chunk": 0}])
        # Then the loop is still running and handles it
        assert wait_until(lambda: len(bodies) == 1)
        assert thread.is_alive()
        assert wait_until(lambda: stores.queue.depth() == 0)  # and acknowledged it
    finally:
        runtime._stopping.set()
        thread.join(timeout=10)


def test_records_of_a_crashed_invocation_come_back_in_seconds(data_dir: Path, stores: Backends) -> None:
    # Given a handler that crashes on its first invocation
    runtime = LocalRuntime(RuntimeConfig(data_dir=data_dir))
    calls: list[int] = []

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("the handler crashed")
        return {"batchItemFailures": []}

    stores.queue.send([{"account_id": "a", "job_id": "j", "chunk": 0}])
    thread = run_pump(runtime, stores.queue, SimpleNamespace(lambda_handler=handle))
    try:
        # Then the record is handled again (well within the 300 s visibility timeout) and acknowledged
        assert wait_until(lambda: len(calls) == 2)
        assert wait_until(lambda: stores.queue.depth() == 0)
    finally:
        runtime._stopping.set()
        thread.join(timeout=10)


class FailingClaims:
    """The real store, whose next `claim_messages` fails as a locked database does."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.failures_left = 1

    def claim_messages(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures_left:
            self.failures_left -= 1
            raise sqlite3.OperationalError("database is locked")
        return self.store.claim_messages(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_chunk_that_fails_unexpectedly_is_retried_in_seconds(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    # Given a batch, and a sender whose store fails once while claiming the chunk
    reply = api.post(
        "/api/v1/emails/batch", {"subject": "Hi", "body": "x", "recipients": [{"email": "a@example.com"}]}
    )
    assert reply.status == 202, reply.body
    service = worker.handler.delivery_service(worker.handler.settings)
    real_store = service.chunks
    service.chunks = FailingClaims(real_store)
    try:
        received = stores.queue.receive(max_messages=10)
        # When the sender handles it
        failed = worker.invoke(received)
        # Then the chunk is reported failed and visible again within seconds, not minutes
        assert failed == {received[0].message_id}
        assert stores.queue.receive(max_messages=10) == []
        retried = receive_within(stores.queue, seconds=10)
        assert [r.body for r in retried] == [received[0].body]
        # And the retry sends the message
        worker.invoke(retried)
        assert len(smtp_sink.messages()) == 1
    finally:
        service.chunks = real_store


def receive_within(queue: Any, seconds: float) -> list[Received]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        received = queue.receive(max_messages=10, wait_seconds=0.2)
        if received:
            return list(received)
    return []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_the_supervisor_restarts_a_loop_that_died(data_dir: Path) -> None:
    # Given a loop whose thread ends with an error its own handling did not catch
    runtime = LocalRuntime(RuntimeConfig(data_dir=data_dir))
    calls: list[float] = []

    def loop() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("an error in the loop's error handling")
        runtime._stopping.wait()

    runtime._spawn("x", loop)
    runtime._loops["x"][0].join(timeout=10)
    assert runtime.health() == {"x": "dead"}  # what /healthz shows until it is restarted
    # When the supervisor runs
    supervisor = threading.Thread(target=runtime._supervise, daemon=True)
    supervisor.start()
    try:
        # Then the loop runs again and is healthy
        assert wait_until(lambda: len(calls) == 2)
        assert wait_until(lambda: runtime.health() == {"x": "ok"})
    finally:
        runtime._stopping.set()
        supervisor.join(timeout=10)


@pytest.fixture
def running(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRuntime]:
    config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=1, sink=False)
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", f"http://127.0.0.1:{config.port}")  # restored afterwards
    runtime = LocalRuntime(config)
    runtime.start()
    yield runtime
    runtime.stop()


def healthz(runtime: LocalRuntime) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{runtime.config.port}/healthz", timeout=10)


def test_healthz_reports_a_failing_loop_until_it_recovers(
    running: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running server: every loop is ok
    reply = healthz(running)
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "ok"
    assert {"worker-0", "events", "scheduler", "http"} <= set(reply.json()["loops"])
    # When the send queue cannot be read (a database locked past its busy timeout)
    assert running.backends is not None
    queue = running.backends.queue
    real_receive = queue.receive

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(queue, "receive", locked)
    # Then /healthz answers 503 naming the loop and the error
    assert wait_until(lambda: healthz(running).status_code == 503)
    unhealthy = healthz(running).json()
    assert unhealthy["status"] == "unhealthy"
    assert unhealthy["loops"]["worker-0"] == "failing: OperationalError: database is locked"
    # And once the database answers again, the loop recovers by itself
    monkeypatch.setattr(queue, "receive", real_receive)
    assert wait_until(lambda: healthz(running).status_code == 200, seconds=30)
