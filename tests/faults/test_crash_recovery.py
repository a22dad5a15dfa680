"""`kill -9` of `mailsage serve` in the middle of a job, then a restart: what nobody tried is sent
within 30 s of the restart (not after the claim lease), and nothing is sent twice but what may have
been in flight at the kill."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.accounting import assert_accounted, wait_completed, wait_until
from tests.faults.relay import FaultRelay
from tests.faults.serve import ServeProcess

pytestmark = pytest.mark.faults

WORKERS = 4
RESUME_SECONDS = 30
# Short enough to bound the test, long enough that waiting for it would miss RESUME_SECONDS.
LEASE_SECONDS = 45


def test_after_kill_9_mail_nobody_tried_is_sent_within_30_s_of_the_restart(
    serve: Callable[..., ServeProcess], relay: FaultRelay
) -> None:
    # Given a server sending 2,000 messages through a relay that takes 5 ms a message
    relay.delay_seconds = 0.005
    server = serve(MAILSAGE_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS))
    jobs = [server.submit(i * 500, 500) for i in range(4)]
    wait_until(lambda: relay.total_received() >= 400, 60, "400 messages reached the relay", server)

    # When it is killed with SIGKILL mid-send, and started again on the same data directory
    server.kill()
    tried = relay.attempted()  # recipients the relay was offered before the kill
    accepted = {email for j in jobs for email in j.messages.values()}
    untried = accepted - tried
    assert untried, "the kill came after everything was sent"
    restarted = time.monotonic()
    server.start()

    # Then within 30 s of the restart every message the relay was never offered has reached it,
    # but for at most one per worker: a message claimed for sending when the kill came (it may
    # have been in flight) waits for its claim's lease
    def waiting() -> set[str]:
        return untried - set(relay.recipient_of.values())

    wait_until(
        lambda: len(waiting()) <= WORKERS,
        RESUME_SECONDS,
        f"the {len(untried)} untried messages sent after the restart (but {WORKERS})",
        server,
    )
    resumed_in = time.monotonic() - restarted
    # and every job completes (what may have been in flight, after its lease), each message sent
    # once but for at most one in flight per worker at the kill
    wait_completed(server, jobs, timeout=LEASE_SECONDS + 60)
    result = assert_accounted(server, relay, jobs, in_flight_allowance=WORKERS)
    assert result == {**result, "sent": 2000, "failed": 0}
    print(f"{len(untried)} untried sent {resumed_in:.1f} s after the restart; {result}")
