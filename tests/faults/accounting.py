"""What every fault scenario ends with: waiting, bounded, for the jobs to complete, and the exact
accounting of accepted messages against what the fault relay received."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.faults.relay import FaultRelay
from tests.faults.serve import Accepted, ServeProcess

MAX_ATTEMPTS = 5


def wait_until(condition: Callable[[], Any], timeout: float, what: str, server: ServeProcess) -> Any:
    """Poll `condition` until it is truthy; fail after `timeout` seconds with the server's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s\n{server.tail()}")


def wait_completed(server: ServeProcess, jobs: list[Accepted], timeout: float) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        states = [server.job(j.job_id) for j in jobs]
        return states if all(s["state"] == "completed" for s in states) else None

    try:
        return wait_until(done, timeout, "every job completed", server)  # type: ignore[no-any-return]
    except AssertionError as exc:
        states = [(j.job_id, server.job(j.job_id)["state"], server.job(j.job_id)["counts"]) for j in jobs]
        raise AssertionError(f"{states}\n{exc}") from None


def assert_accounted(
    server: ServeProcess,
    relay: FaultRelay,
    jobs: list[Accepted],
    in_flight_allowance: int = 0,
) -> dict[str, int]:
    """The exact accounting every scenario ends with, once its jobs completed:
    - accepted = sent once + failed, by message: the relay holds exactly the accepted messages that
      are not `failed`, and the jobs' counts say the same;
    - a message is `failed` only after the relay was offered it MAX_ATTEMPTS times (its own
      attempts, not its chunk's);
    - a duplicate only where the relay cut the connection after taking the message in, plus at
      most `in_flight_allowance` more (messages in flight when the server was killed)."""
    accepted = {mid: email for j in jobs for mid, email in j.messages.items()}
    states = [server.job(j.job_id) for j in jobs]
    counts = {k: sum(s["counts"][k] for s in states) for k in states[0]["counts"]}
    failed = {m["message_id"].strip("<>").split("@")[0]: m for m in server.messages_with_status("Failed")}
    failed = {mid: m for mid, m in failed.items() if mid in accepted}

    assert [s["state"] for s in states] == ["completed"] * len(jobs), states
    assert counts["sent"] + counts["delivered"] + counts["failed"] == len(accepted), counts
    assert counts["failed"] == len(failed), (counts, len(failed))
    received = relay.unique()
    assert received - set(accepted) == set(), "the relay received mail nobody accepted"
    assert set(accepted) - set(failed) - received == set(), (
        f"{len(set(accepted) - set(failed) - received)} messages counted as sent never reached the relay"
    )
    failed_untried = {
        mid: (relay.attempts[accepted[mid]], m.get("num_attempts"))
        for mid, m in failed.items()
        if relay.attempts[accepted[mid]] < MAX_ATTEMPTS
    }
    assert not failed_untried, (
        f"{len(failed_untried)} of {len(failed)} failed messages were not offered to the relay "
        f"{MAX_ATTEMPTS} times (relay attempts, API num_attempts): {list(failed_untried.items())[:10]}"
    )
    extra = {
        mid: n - relay.dropped_after[mid]
        for mid, n in relay.duplicates().items()
        if n > relay.dropped_after[mid]
    }
    assert sum(extra.values()) <= in_flight_allowance, (
        f"{sum(extra.values())} duplicates outside the window of a connection cut after the data "
        f"(allowed: {in_flight_allowance}): {list(extra.items())[:10]}"
    )
    return {
        "accepted": len(accepted),
        "sent": counts["sent"] + counts["delivered"],
        "failed": len(failed),
        "duplicates": sum(relay.duplicates().values()),
        "duplicates_outside_window": sum(extra.values()),
    }
