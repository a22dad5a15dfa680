"""Fixtures of the fault-injection suite: a fault relay on loopback and `mailsage serve` processes
sending to it (the accounting the scenarios end with is in accounting.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.faults.accounting import MAX_ATTEMPTS
from tests.faults.relay import FaultRelay
from tests.faults.serve import ServeProcess

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
