"""A relay that cuts connections and defers: every accepted message is sent, a message is failed
only for its own attempts, and a duplicate only where the relay cut the line after taking it in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults.accounting import assert_accounted, wait_completed
from tests.faults.relay import FaultRelay
from tests.faults.serve import ServeProcess

pytestmark = pytest.mark.faults


def test_a_relay_dropping_5_percent_of_data_fails_no_message_untried(
    serve: Callable[..., ServeProcess], relay: FaultRelay
) -> None:
    # Given a relay that cuts the connection on 5% of DATA commands: half of them before reading
    # the message, half after reading it (the relay has it, the sender never hears)
    relay.drop_before_data = relay.drop_after_data = 0.025
    server = serve()

    # When 2,000 messages are accepted
    jobs = [server.submit(i * 500, 500) for i in range(4)]

    # Then every job completes, each message reached the relay, none was failed (failing one would
    # take MAX_ATTEMPTS drops of that very message), and a duplicate is only a message whose
    # connection was cut after the relay took it in
    wait_completed(server, jobs, timeout=150)
    result = assert_accounted(server, relay, jobs)
    assert result["failed"] == 0, result
    assert result["sent"] == 2000
    assert sum(relay.dropped_after.values()) > 0  # the fault did happen


def test_a_relay_deferring_5_percent_of_messages_gets_each_exactly_once(
    serve: Callable[..., ServeProcess], relay: FaultRelay
) -> None:
    # Given a relay that answers 451 to 5% of the messages it reads
    relay.defer = 0.05
    server = serve()

    # When 500 messages are accepted
    jobs = [server.submit(0, 500)]

    # Then each is sent exactly once and none failed
    wait_completed(server, jobs, timeout=90)
    result = assert_accounted(server, relay, jobs)
    assert result == {**result, "sent": 500, "failed": 0, "duplicates": 0}
    assert sum(relay.attempts.values()) > 500  # the deferred ones were offered again
