"""SIGTERM to `mailsage serve` while a slow relay takes 200 ms a message, sent to the server alone
and to its whole process group (which also reaches the built-in sink's process): it exits within a
bound, leaves no child behind, and a restart sends the rest, nothing lost and nothing twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.accounting import assert_accounted, wait_completed, wait_until
from tests.faults.relay import FaultRelay
from tests.faults.serve import ServeProcess

pytestmark = pytest.mark.faults

# The runtime documents a stop within STOP_SECONDS + SINK_STOP_SECONDS (10 + 5 s, local/runtime.py);
# the test waits no longer than this.
STOP_BOUND_SECONDS = 30
LEASE_SECONDS = 45


def alive(pid: int) -> bool:
    """Running (a zombie, or no such process, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("group", [False, True], ids=["main-process", "process-group"])
def test_sigterm_stops_within_the_bound_and_a_restart_loses_nothing(
    serve: Callable[..., ServeProcess], relay: FaultRelay, group: bool
) -> None:
    # Given a server sending 300 messages through a relay that takes 200 ms a message
    relay.delay_seconds = 0.2
    server = serve(MAILSAGE_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS))
    jobs = [server.submit(0, 300)]
    wait_until(lambda: relay.total_received() >= 20, 60, "20 messages reached the relay", server)
    children = server.children()
    assert children, "the built-in sink runs in a child process"

    # When it is sent SIGTERM (to the server, or to its process group)
    signalled = time.monotonic()
    server.signal(signal.SIGTERM, group=group)

    # Then it exits within the bound, and its sink process has ended too
    code = server.wait_exit(STOP_BOUND_SECONDS)
    stopped_in = time.monotonic() - signalled
    assert code is not None, f"still running {STOP_BOUND_SECONDS} s after SIGTERM\n{server.tail()}"
    wait_until(lambda: not any(alive(c) for c in children), 10, "the sink process ended", server)
    sent_before = relay.total_received()
    assert sent_before < 300, "the stop came after everything was sent"

    # and when it is started again, every message is sent exactly once
    server.start()
    wait_completed(server, jobs, timeout=LEASE_SECONDS + 60)
    result = assert_accounted(server, relay, jobs)
    assert result == {**result, "sent": 300, "failed": 0, "duplicates": 0}
    print(f"stopped in {stopped_in:.1f} s (exit code {code}), {sent_before} sent before; {result}")
