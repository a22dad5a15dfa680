"""Fixtures of the fault-injection suite: a fault relay on loopback, `mailsage serve` processes
sending to it, and the exact accounting every scenario ends with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.faults.relay import FaultRelay
from tests.faults.serve import Accepted, ServeProcess

MAX_ATTEMPTS = 5
# Short retry delays keep every scenario within a minute or two; the rules under test do not
# depend on them.
FAST_RETRIES = {
    "MAILSAGE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "MAILSAGE_RETRY_BASE_SECONDS": "0.5",
    "MAILSAGE_RETRY_MAX_SECONDS": "4",
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def relay() -> Iterator[FaultRelay]:
    relay = FaultRelay(free_port()).start()
    yield relay
    relay.stop()


@pytest.fixture
def serve(
    request: pytest.FixtureRequest, tmp_path: Path, relay: FaultRelay
) -> Iterator[Callable[..., ServeProcess]]:
    """Start `mailsage serve` sending to the fault relay: `serve(**MAILSAGE_settings)`. Each server's
    log is kept; a failed test prints its tail."""
    started: list[ServeProcess] = []

    def start(
        data_dir: Path | None = None, log_path: Path | None = None, to_relay: bool = True, **env: str
    ) -> ServeProcess:
        """`to_relay=False`: mail goes to serve's built-in sink (its outbox in the data directory)."""
        relay_url = {"MAILSAGE_SMTP_URL": f"smtp://127.0.0.1:{relay.port}"} if to_relay else {}
        settings = {**relay_url, **FAST_RETRIES, **env}
        server = ServeProcess(
            data_dir or tmp_path / f"data-{len(started)}",
            log_path=log_path or tmp_path / f"serve-{len(started)}.log",
            workers=4,
            **settings,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for server in started:
            print(f"--- {server.log_path} (tail) ---\n{server.tail(150)}")


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
