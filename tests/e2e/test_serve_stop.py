"""`mailsage serve` stops within a bounded time on SIGTERM or Ctrl-C, whether the signal reaches the
server alone or its whole process group (the sink child too), reaps its sink, and loses nothing:
after a restart every message reaches the relay exactly once. The relay takes 200 ms a message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest

from mailsage.local.runtime import SINK_STOP_SECONDS, STOP_SECONDS
from tests.conftest import free_port, wait_until
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

# What notes/reliability-runtime.md promises: STOP_SECONDS for requests and work in hand, then
# SINK_STOP_SECONDS for the sink, plus the HTTP server's poll interval and the interpreter's exit.
STOP_BOUND_SECONDS = STOP_SECONDS + SINK_STOP_SECONDS + 5


class SlowRelay:
    """An SMTP relay on loopback that takes 200 ms a message and counts them by Message-ID. A
    message whose client is gone before the reply is not counted: it was not accepted."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.2)
        if server.transport is None or server.transport.is_closing():
            return "451 4.3.0 client gone"
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        with self._lock:
            self.received[str(headers["Message-ID"])] += 1
        return "250 2.0.0 accepted"

    def total(self) -> int:
        with self._lock:
            return sum(self.received.values())


@pytest.fixture
def relay() -> Iterator[tuple[SlowRelay, int]]:
    from aiosmtpd.controller import Controller

    handler = SlowRelay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


class GroupServer(LocalServer):
    """`mailsage serve` in a session of its own: its process group is the server and its sink."""

    def start(self) -> GroupServer:
        cmd = [sys.executable, "-m", "mailsage.cli", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port), "--smtp-port", str(self.smtp_port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("mailsage serve exited:\n" + "".join(lines))
            lines.append(line)
            if line.strip().startswith("mail goes to"):
                break
        self.banner = "".join(lines)
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        return self


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (zombies included)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    """Not running and not left as a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "X"


def submit(server: LocalServer, count: int, tag: str) -> str:
    body = {
        "subject": "Hi",
        "body": "x",
        "recipients": [{"email": f"{tag}{i}@example.com"} for i in range(count)],
    }
    reply = server.call("POST", "/api/v1/emails/batch", body)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["job_id"])


@pytest.mark.parametrize(
    ("target", "sig"),
    [("server", signal.SIGTERM), ("group", signal.SIGTERM), ("group", signal.SIGINT)],
    ids=["sigterm-server", "sigterm-group", "ctrl-c-group"],
)
def test_a_stop_mid_send_is_bounded_reaps_the_sink_and_loses_nothing(
    tmp_path: Path, server_env: dict[str, str], relay: tuple[SlowRelay, int], target: str, sig: int
) -> None:
    handler, relay_port = relay
    env = dict(server_env, MAILSAGE_SMTP_URL=f"smtp://127.0.0.1:{relay_port}")
    server = GroupServer(tmp_path / "data", env, workers=2).start()
    assert server.proc is not None
    sinks = children(server.proc.pid)  # its child processes
    try:
        # Given two jobs being sent through a slow relay, a few messages out already
        assert sinks  # the built-in sink runs, even with mail going to the relay
        jobs = [submit(server, 10, "a"), submit(server, 10, "b")]
        assert wait_until(lambda: handler.total() >= 3, 30)
        # When the signal reaches the server alone, or its whole process group
        if target == "group":
            os.killpg(server.proc.pid, sig)
        else:
            server.proc.send_signal(sig)
        # Then the server exits cleanly within its bound, and its sink is reaped, not left defunct
        assert server.proc.wait(timeout=STOP_BOUND_SECONDS) == 0, "".join(server.output_tail)
        assert wait_until(lambda: all(gone(pid) for pid in sinks), 5)
        output = "".join(server.output_tail)
        assert "stopped" in output, output
    finally:
        server.stop(signal.SIGKILL)
        for pid in sinks:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    # And after a restart every message reaches the relay exactly once
    restarted = LocalServer(tmp_path / "data", env, workers=2)
    restarted.port, restarted.smtp_port = server.port, server.smtp_port
    restarted.start()
    try:
        for job_id in jobs:
            restarted.wait_for(job_id, {"completed"}, timeout=60)
    finally:
        restarted.stop()
    assert handler.total() == 20
    assert len(handler.received) == 20
    assert set(handler.received.values()) == {1}


def test_a_stopping_worker_finishes_only_the_message_in_hand(
    tmp_path: Path, server_env: dict[str, str], relay: tuple[SlowRelay, int]
) -> None:
    handler, relay_port = relay
    env = dict(server_env, MAILSAGE_SMTP_URL=f"smtp://127.0.0.1:{relay_port}")
    server = GroupServer(tmp_path / "data", env, workers=2).start()
    assert server.proc is not None
    try:
        # Given one chunk of 50 going out through a relay that takes 200 ms a message
        job = submit(server, 50, "c")
        assert wait_until(lambda: handler.total() >= 3, 30)
        # When the server is told to stop
        at_signal = handler.total()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=STOP_BOUND_SECONDS) == 0, "".join(server.output_tail)
        # Then the worker sent the message it had in hand and no further one (not the whole chunk)
        assert handler.total() <= at_signal + 1
    finally:
        server.stop(signal.SIGKILL)
    # And after a restart the rest goes out, every message exactly once
    restarted = LocalServer(tmp_path / "data", env, workers=2)
    restarted.port, restarted.smtp_port = server.port, server.smtp_port
    restarted.start()
    try:
        restarted.wait_for(job, {"completed"}, timeout=60)
    finally:
        restarted.stop()
    assert len(handler.received) == 50
    assert set(handler.received.values()) == {1}
