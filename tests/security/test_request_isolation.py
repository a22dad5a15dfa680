"""Two accounts hammer one `mailsage serve` at once: every request is handled as its own request.

The local runtime runs several API requests at the same time in threads; a request must never be
answered with another request's identity, path or surface (v1 and v2 have different envelopes).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mailsage.domain.auth import AuthService
from mailsage.settings import CommonSettings
from mailsage.wiring import backends
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

CLIENTS_PER_ACCOUNT = 8
ROUNDS = 8  # 8 clients x 8 rounds = 64 templates and 64 suppressions an account (one page each)


@dataclass
class Tenant:
    name: str  # every name and address this account creates starts with it
    account_id: str
    key: str


@pytest.fixture
def tenants_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalServer, Tenant, Tenant]]:
    data_dir = tmp_path / "data"
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    server_env["MAILSAGE_DEV_API_KEY"] = "dev-" + uuid.uuid4().hex
    server_env["MAILSAGE_DEV_ACCOUNT_ID"] = str(uuid.uuid4())
    # 8 clients an account back to back: far past the per-account request limit (20/s by default).
    server_env["MAILSAGE_ACCOUNT_RATE_LIMIT"] = server_env["MAILSAGE_ACCOUNT_RATE_BURST"] = "100000"
    # The second account is created in the server's database before it starts.
    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(data_dir))
    other_id = str(uuid.uuid4())
    other_key = AuthService(backends(CommonSettings()).store).create_key(other_id)
    server = LocalServer(data_dir, server_env).start()
    try:
        yield (
            server,
            Tenant("alpha", server_env["MAILSAGE_DEV_ACCOUNT_ID"], server.key),
            Tenant("bravo", other_id, other_key),
        )
    finally:
        server.stop()


def _is_v1_error(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and isinstance(body["error"], dict)
        and {"code", "message"} <= set(body["error"])
    )


def _is_v2_error(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"message"} and isinstance(body["message"], str)


class Client:
    """One concurrent caller: records every reply that is not what its own request deserves."""

    def __init__(self, server: LocalServer, me: Tenant, other: Tenant, number: int) -> None:
        self.url = server.url
        self.me, self.other, self.number = me, other, number
        self.session = requests.Session()
        self.problems: list[str] = []
        self.templates: set[str] = set()
        self.suppressed: set[str] = set()

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = "mine") -> tuple[int, Any]:
        headers = {} if key is None else {"Authorization": f"Bearer {self.me.key if key == 'mine' else key}"}
        reply = self.session.request(method, self.url + path, json=body, headers=headers, timeout=60)
        try:
            return reply.status_code, reply.json()
        except ValueError:
            return reply.status_code, reply.text

    def expect(self, what: str, status: int, got: tuple[int, Any], envelope: str | None = None) -> Any:
        code, body = got
        if code != status:
            self.problems.append(f"{self.me.name}#{self.number} {what}: {code} {body!r:.200}")
        elif envelope == "v1" and not _is_v1_error(body):
            self.problems.append(f"{self.me.name}#{self.number} {what}: not the v1 envelope {body!r:.200}")
        elif envelope == "v2" and not _is_v2_error(body):
            self.problems.append(f"{self.me.name}#{self.number} {what}: not the v2 envelope {body!r:.200}")
        return body

    def run(self, start: threading.Barrier) -> None:
        me, acct = self.me, f"/v2/accounts/{self.me.account_id}"
        start.wait()
        for i in range(ROUNDS):
            name = f"{me.name}-{self.number}-{i}"
            # v1: create a template and read it back, list only mine
            created = self.expect(
                "create template",
                201,
                self.call("POST", "/api/v1/templates", {"name": name, "subject": "Hi {{ n }}", "text": "x"}),
            )
            if isinstance(created, dict) and "template_id" in created:
                self.templates.add(created["template_id"])
                got = self.expect(
                    "get template", 200, self.call("GET", f"/api/v1/templates/{created['template_id']}")
                )
                if isinstance(got, dict) and got.get("name") != name:
                    self.problems.append(f"{me.name}#{self.number} read {got.get('name')!r} for {name!r}")
            listed = self.expect("list templates", 200, self.call("GET", "/api/v1/templates?limit=100"))
            for t in listed.get("data", []) if isinstance(listed, dict) else []:
                if not t["name"].startswith(f"{me.name}-"):
                    self.problems.append(f"{me.name}#{self.number} sees template {t['name']!r}")
            # v2: create a suppression, list only mine
            email = f"{name}@example.com"
            self.expect(
                "create suppression",
                201,
                self.call(
                    "POST",
                    f"{acct}/suppressions",
                    {"email": email, "expires_at": "2099-01-01T00:00:00Z"},
                ),
            )
            self.suppressed.add(email)
            page = self.expect("list suppressions", 200, self.call("GET", f"{acct}/suppressions?limit=100"))
            for s in page.get("data", []) if isinstance(page, dict) else []:
                if not s["email"].startswith(f"{me.name}-"):
                    self.problems.append(f"{me.name}#{self.number} sees suppression {s['email']!r}")
            self.expect("v2 ping", 200, self.call("GET", "/v2/ping"))
            # refusals, each in its own surface's envelope
            self.expect("v1 without key", 401, self.call("GET", "/api/v1/templates", key=None), "v1")
            self.expect("v2 without key", 401, self.call("GET", f"{acct}/suppressions", key=None), "v2")
            self.expect("v1 404", 404, self.call("GET", f"/api/v1/nothing-{i}"), "v1")
            self.expect("v2 404", 404, self.call("GET", f"/v2/nothing-{i}"), "v2")
            self.expect(
                "v2 other account's path",
                403,
                self.call("GET", f"/v2/accounts/{self.other.account_id}/suppressions"),
                "v2",
            )
            self.expect("v1 bad key", 401, self.call("GET", "/api/v1/templates", key="wrong-" + name), "v1")


def test_concurrent_requests_of_two_accounts_never_see_each_other(
    tenants_server: tuple[LocalServer, Tenant, Tenant],
) -> None:
    server, alpha, bravo = tenants_server
    # Given two accounts with 8 concurrent clients each, mixing v1 and v2, valid keys, missing and
    # wrong keys, unknown paths and another account's path
    clients = [Client(server, alpha, bravo, n) for n in range(CLIENTS_PER_ACCOUNT)]
    clients += [Client(server, bravo, alpha, n) for n in range(CLIENTS_PER_ACCOUNT)]
    start = threading.Barrier(len(clients))

    # When they all run at once
    with ThreadPoolExecutor(len(clients)) as pool:
        for future in [pool.submit(c.run, start) for c in clients]:
            future.result()

    # Then every reply was the one its own request deserved: no valid key refused, no other
    # surface's envelope, nothing of the other account seen
    problems = [p for c in clients for p in c.problems]
    assert not problems, f"{len(problems)} wrong replies, e.g.:\n" + "\n".join(problems[:15])
    # and each account holds exactly what its own clients created, nothing more
    for tenant in (alpha, bravo):
        mine = [c for c in clients if c.me is tenant]
        owner = Client(server, tenant, tenant, -1)
        templates = owner.call("GET", "/api/v1/templates?limit=100")[1]["data"]
        assert {t["template_id"] for t in templates} == set().union(*(c.templates for c in mine))
        suppressions = owner.call("GET", f"/v2/accounts/{tenant.account_id}/suppressions?limit=100")[1][
            "data"
        ]
        assert {s["email"] for s in suppressions} == set().union(*(c.suppressed for c in mine))
        assert len(suppressions) == CLIENTS_PER_ACCOUNT * ROUNDS
