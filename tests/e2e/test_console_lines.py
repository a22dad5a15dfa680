"""`mailsage serve` prints one readable line per request on its console (method, path, status, ms)
and one per job milestone (accepted, completed)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e
LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) \d+ ms$")


def _lines(server: LocalServer) -> list[dict[str, str]]:
    return [m.groupdict() for line in list(server.output_tail) if (m := LINE.match(line.strip()))]


def test_each_request_is_one_line_with_its_status(server: LocalServer) -> None:
    sent = server.call(
        "POST",
        "/api/v1/emails/send",
        {"recipient": {"email": "a@example.com"}, "subject": "s", "body": "b"},
    )
    assert sent.status_code == 202, sent.text
    missing = server.call("GET", "/api/v1/emails/jobs/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404

    expected = [
        {"method": "POST", "path": "/api/v1/emails/send", "status": "202"},
        {
            "method": "GET",
            "path": "/api/v1/emails/jobs/00000000-0000-0000-0000-000000000000",
            "status": "404",
        },
    ]
    assert wait_until(lambda: all(line in _lines(server) for line in expected), 30), list(server.output_tail)
    assert not any("Authorization" in line or server.key in line for line in server.output_tail)


def test_a_job_is_one_line_when_accepted_and_one_when_completed(server: LocalServer) -> None:
    sent = server.call(
        "POST",
        "/api/v1/emails/send",
        {"recipient": {"email": "m@example.com"}, "subject": "s", "body": "b"},
    )
    assert sent.status_code == 202, sent.text
    job_id = sent.json()["job_id"]

    def lines() -> list[str]:
        return [line.strip() for line in list(server.output_tail) if f"job {job_id} " in line]

    assert wait_until(lambda: any(" completed: 1 messages; " in line for line in lines()), 60), lines()
    accepted, completed = lines()
    assert re.fullmatch(rf"\d\d:\d\d:\d\d job {job_id} accepted: 1 messages; queued 1", accepted), accepted
    assert re.fullmatch(rf"\d\d:\d\d:\d\d job {job_id} completed: 1 messages; (sent|delivered) 1", completed)


def test_milestones_are_off_unless_asked_for() -> None:
    """On Lambda the root logger may be at INFO: a line per job would be paid for in log ingestion."""
    import subprocess
    import sys

    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from mailsage.domain.milestones import jobs_log;"
        "print(jobs_log.isEnabledFor(logging.INFO))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
