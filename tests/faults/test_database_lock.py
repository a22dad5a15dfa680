"""Another process holds the database's write lock for 40 s, past the store's 30 s busy timeout: on
an idle server and on one that is sending. Everything accepted completes, without a restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.accounting import assert_accounted, wait_completed, wait_until
from tests.faults.relay import FaultRelay
from tests.faults.serve import ServeProcess

pytestmark = pytest.mark.faults

LOCK_SECONDS = 40  # past the store's 30 s busy timeout (adapters/sqlite/db.py)

# A foreign process: takes the write lock, says so, holds it, lets go.
HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@contextmanager
def foreign_write_lock(database: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds `database`'s write lock; the block runs while it does, and the lock is
    released (the process ended) when it returns."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(database), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
        holder.wait(timeout=seconds + 30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def database(server: ServeProcess) -> Path:
    return server.data_dir / "mailsage.db"  # CommonSettings.database_path


def test_an_idle_server_sends_what_is_accepted_after_a_40_s_foreign_lock(
    serve: Callable[..., ServeProcess], relay: FaultRelay
) -> None:
    # Given an idle server that has sent a first job
    server = serve()
    first = server.submit(0, 20)
    wait_completed(server, [first], timeout=60)

    # When another process holds the database's write lock for 40 s, then lets go
    with foreign_write_lock(database(server), LOCK_SECONDS):
        pass

    # Then a batch accepted after the release is sent completely, by the same process, and the
    # server reports every loop healthy again
    after = server.submit(1000, 100)
    wait_completed(server, [first, after], timeout=90)
    result = assert_accounted(server, relay, [first, after])
    assert result == {**result, "sent": 120, "failed": 0, "duplicates": 0}
    wait_until(lambda: server.health().status_code == 200, 30, "GET /healthz answers 200", server)
    assert server.proc is not None and server.proc.poll() is None


def test_a_busy_server_completes_every_message_across_a_40_s_foreign_lock(
    serve: Callable[..., ServeProcess], relay: FaultRelay
) -> None:
    # Given a server sending 2,000 messages through a relay that takes 20 ms a message
    relay.delay_seconds = 0.02
    server = serve()
    jobs = [server.submit(i * 500, 500) for i in range(4)]
    wait_until(lambda: relay.total_received() >= 200, 60, "200 messages reached the relay", server)

    # When another process holds the database's write lock for 40 s while it sends
    with foreign_write_lock(database(server), LOCK_SECONDS):
        received_at_lock = relay.total_received()

    # Then every job completes without a restart, each message sent exactly once (a message the
    # relay took in while its `sent` could not be written is not sent again) and none failed
    wait_completed(server, jobs, timeout=120)
    result = assert_accounted(server, relay, jobs)
    assert result == {**result, "sent": 2000, "failed": 0, "duplicates": 0}
    assert received_at_lock < 2000  # the lock did come while sending
    assert server.proc is not None and server.proc.poll() is None
