"""`mailsage serve` prints one readable line per request on its console (method, path, status, ms)."""

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
