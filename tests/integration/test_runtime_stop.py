"""The local runtime's stop is bounded, hands back what no worker started, tells the sender that no
time is left, and stops and reaps its sink process however that ended; a sink that dies while the
server runs is started again. Real SQLite queue, real sink process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from mailsage.local import runtime as runtime_module
from mailsage.local.functions import LocalContext
from mailsage.local.runtime import LocalRuntime, RuntimeConfig
from mailsage.ports import Received
from mailsage.wiring import Backends
from tests.conftest import free_port, wait_until


def test_the_context_has_no_time_left_once_stopping() -> None:
    # Given a worker's context
    stopping = threading.Event()
    context = LocalContext("mailsage-sender", stopping=stopping)
    assert context.get_remaining_time_in_millis() > 60_000
    # When the runtime begins to stop
    stopping.set()
    # Then the sender sees no time left, and starts no further message
    assert context.get_remaining_time_in_millis() == 0


def test_a_stop_does_not_wait_past_its_bound_for_a_stuck_loop(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a loop stuck in a call that ignores the stop (a send to a relay that never answers)
    monkeypatch.setattr(runtime_module, "STOP_SECONDS", 0.5)
    runtime = LocalRuntime(RuntimeConfig(data_dir=data_dir, sink=False))
    released = threading.Event()
    runtime._spawn("worker-0", lambda: released.wait(60))
    try:
        # When the runtime stops
        left: list[list[str]] = []
        stopper = threading.Thread(target=lambda: left.append(runtime.stop()), daemon=True)
        stopper.start()
        stopper.join(10)
        # Then it returns after its bound, naming the loop it leaves behind
        assert not stopper.is_alive()
        assert left == [["worker-0"]]
    finally:
        released.set()


class StopDuringReceive:
    """The real queue; the stop begins while a receive is under way."""

    def __init__(self, queue: Any, runtime: LocalRuntime) -> None:
        self.queue = queue
        self.runtime = runtime

    def receive(self, max_messages: int = 10, wait_seconds: float = 0.0) -> list[Received]:
        received = list(self.queue.receive(max_messages=max_messages))
        self.runtime._stopping.set()
        return received

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


def test_records_received_as_the_stop_begins_are_handed_back_untouched(
    data_dir: Path, stores: Backends
) -> None:
    # Given two chunks in the send queue, received just as the stop begins
    runtime = LocalRuntime(RuntimeConfig(data_dir=data_dir, sink=False))
    stores.queue.send(
        [{"account_id": "a", "job_id": "j", "chunk": 0}, {"account_id": "a", "job_id": "j", "chunk": 1}]
    )
    calls: list[Any] = []
    handler = SimpleNamespace(lambda_handler=lambda event, context: calls.append(event))
    # When the worker loop runs
    runtime._pump(StopDuringReceive(stores.queue, runtime), "sender", 10, handler)
    # Then the sender was not invoked, and both chunks are visible again at once (not after the
    # visibility timeout), for the next start
    assert calls == []
    assert len(stores.queue.receive(max_messages=10)) == 2


@pytest.fixture
def running(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRuntime]:
    """A runtime with its sink process (and the environment it sets, restored afterwards)."""
    config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=1)
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", f"http://127.0.0.1:{config.port}")
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{config.smtp_port}")
    runtime = LocalRuntime(config)
    runtime.start()
    sink = runtime._sink
    yield runtime
    runtime.stop()
    if sink is not None and sink.pid is not None and sink.alive():
        os.kill(sink.pid, signal.SIGKILL)


def reaped(pid: int) -> bool:
    """Gone, and not left as a zombie of this process."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return False


def test_a_sink_that_got_sigterm_too_is_stopped_and_reaped(running: LocalRuntime) -> None:
    # Given a running server whose sink got SIGTERM as well (the signal went to the process group)
    assert running._sink is not None and running._sink.pid is not None
    pid = running._sink.pid
    os.kill(pid, signal.SIGTERM)
    # Then the sink keeps taking mail until the server says stop (the workers may be sending)
    time.sleep(0.5)
    assert running._sink.alive()
    # When the server stops
    stopper = threading.Thread(target=running.stop, daemon=True)
    stopper.start()
    stopper.join(30)
    # Then it does not hang, and the sink is gone and reaped (no defunct child)
    assert not stopper.is_alive()
    assert reaped(pid)


def test_a_sink_that_died_is_started_again(running: LocalRuntime) -> None:
    # Given a running server whose sink process is killed
    assert running._sink is not None and running._sink.pid is not None
    pid = running._sink.pid
    os.kill(pid, signal.SIGKILL)
    # Then the supervisor reaps it and starts a new one, and /healthz shows the sink ok again
    assert wait_until(lambda: running._sink is not None and running._sink.pid not in (None, pid))
    assert reaped(pid)
    url = f"http://127.0.0.1:{running.config.port}/healthz"
    assert wait_until(lambda: requests.get(url, timeout=10).json()["loops"].get("sink") == "ok")


def test_a_stopping_server_takes_no_new_request_on_an_open_connection(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a client with a kept-alive connection to a running server
    config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=1, sink=False)
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", f"http://127.0.0.1:{config.port}")
    runtime = LocalRuntime(config)
    runtime.start()
    connection = http.client.HTTPConnection("127.0.0.1", config.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200
        # When the server stops
        runtime.stop()
        # Then a further request on that connection is answered 503 with Retry-After, and closed
        connection.request("GET", "/api/v1/emails/jobs/x")
        refused = connection.getresponse()
        body = json.loads(refused.read())
        assert refused.status == 503
        assert refused.getheader("Retry-After") == "5"
        assert body["error"]["code"] == "service_unavailable"
        assert refused.getheader("Connection") == "close"
    finally:
        connection.close()
        runtime.stop()
