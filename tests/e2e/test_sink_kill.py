"""`kill -9` of `mailsage serve` and its sink together, after the sink accepted mail and before it
reported the deliveries: after a restart every message is reported delivered."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import LocalServer, out
from tests.e2e.test_serve_stop import GroupServer, children, gone, submit, wait_until

pytestmark = pytest.mark.e2e


def test_deliveries_the_sink_had_not_reported_are_reported_after_a_kill_and_restart(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    server = GroupServer(data, server_env, workers=2).start()
    assert server.proc is not None
    processes = [server.proc.pid, *children(server.proc.pid)]
    try:
        # Given 20 messages the sink accepted and the sender recorded as sent, their delivery
        # notifications still inside the sink's delay
        job_id = submit(server, 20, "k")
        assert wait_until(lambda: out(server.job(job_id)) == 20, 30)
        # When the server and its sink are killed at once
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        assert wait_until(lambda: all(gone(pid) for pid in processes), 10)
    finally:
        for pid in processes:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    spooled = list((data / "sink-notifications").glob("*.jsonl"))
    assert spooled, "the kill came after every notification was queued: nothing was tested"
    # And the server starts again
    restarted = LocalServer(data, server_env, workers=2).start()
    try:
        # Then every message is reported delivered, none left `sent`
        wait_until(lambda: restarted.job(job_id)["counts"]["delivered"] >= 20, 30)
        job = restarted.job(job_id)
        assert job["counts"]["delivered"] == 20, job
        assert list((data / "sink-notifications").glob("*.jsonl")) == []
        assert len(restarted.outbox()) == 20  # and nothing was sent twice
    finally:
        restarted.stop()
