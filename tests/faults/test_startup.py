"""Every loop of `mailsage serve` starts with a working handler, even when Powertools' Logger set-up
race (two threads creating a service's first Logger at once) is made likely: a loser of that race
either dies at start or fails every invocation at once, and such a sender worker swallows the whole
queue in a second, each record invisible for the visibility timeout (the five-minute stall)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.accounting import assert_accounted, wait_completed
from tests.faults.relay import FaultRelay
from tests.faults.serve import ServeProcess

pytestmark = pytest.mark.faults

SLOW_LOGGER_SETUP = Path(__file__).parent / "slow_logger_setup"


def test_no_loop_is_broken_at_start_when_the_logger_race_window_is_wide(
    serve: Callable[..., ServeProcess], relay: FaultRelay
) -> None:
    # Given a server whose Powertools Loggers take 50 ms to set up (the race window widened)
    path = os.pathsep.join(p for p in (str(SLOW_LOGGER_SETUP), os.environ.get("PYTHONPATH")) if p)
    server = serve(PYTHONPATH=path)

    # When 2,000 messages are accepted
    jobs = [server.submit(i * 500, 500) for i in range(4)]

    # Then all are sent exactly once, and no loop died or failed an invocation
    wait_completed(server, jobs, timeout=90)
    result = assert_accounted(server, relay, jobs)
    assert result == {**result, "sent": 2000, "failed": 0, "duplicates": 0}
    log = server.log_text()
    assert "Exception in thread" not in log, server.tail()
    assert "invocation failed" not in log, server.tail()
    assert server.health().status_code == 200
