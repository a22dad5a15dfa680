"""Shared fixtures: a data directory per test, accounts with keys, the real api/sender handlers
driven with the canonical events from events/, and a real SMTP sink on loopback."""

from __future__ import annotations

import base64
import copy
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from mailsage.domain.auth import AuthService
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from mailsage.local.sink import SmtpSink
from mailsage.ports import Received
from mailsage.settings import CommonSettings
from mailsage.wiring import Backends, backends

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def wait_until(condition: Callable[[], Any], seconds: float = 20.0) -> bool:
    """Poll `condition` every 50 ms for up to `seconds` (a bounded wait for liveness, not a timing
    assertion); True as soon as it holds, else its value at the deadline."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving_relay(handler: Any, controller: Any = None) -> Iterator[int]:
    """An aiosmtpd relay on loopback answering with `handler` (through `controller`, an aiosmtpd
    Controller class, default the plain one); yields its port and stops it after."""
    from aiosmtpd.controller import Controller

    port = free_port()
    running = (controller or Controller)(handler, hostname="127.0.0.1", port=port)
    running.start()
    try:
        yield port
    finally:
        running.stop()


def read_eml(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


@dataclass
class Account:
    id: str
    key: str


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(path))
    # Fast retries so tests exercise backoff without waiting for it.
    monkeypatch.setenv("MAILSAGE_RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("MAILSAGE_MAX_ATTEMPTS", "3")
    for name in ("MAILSAGE_SMTP_URL", "MAILSAGE_DEV_API_KEY", "MAILSAGE_DEV_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def stores(data_dir: Path) -> Backends:
    return backends(CommonSettings())


@pytest.fixture
def new_account(stores: Backends) -> Callable[[], Account]:
    def make() -> Account:
        account_id = str(uuid.uuid4())
        return Account(account_id, AuthService(stores.store).create_key(account_id))

    return make


@pytest.fixture
def account(new_account: Callable[[], Account]) -> Account:
    return new_account()


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]  # lower-case names

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, self.body
        return self.body["error"]


class ApiClient:
    """Calls the real api handler with copies of the canonical API Gateway event."""

    sample = "api_send.json"  # the canonical event each request is a copy of

    def __init__(self, handler: Any, key: str | None) -> None:
        self.handler = handler
        self.key = key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        event = load_event(self.sample)
        path, _, query = path.partition("?")
        multi: dict[str, list[str]] = {}  # API Gateway splits the query off, keeping repeats
        for name, value in parse_qsl(query, keep_blank_values=True):
            multi.setdefault(name, []).append(value)
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = event["resource"] = event["requestContext"]["path"] = path
        event["queryStringParameters"] = {k: v[-1] for k, v in multi.items()} or None
        event["multiValueQueryStringParameters"] = multi or None
        event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        # A sample's own Idempotency-Key would make unrelated requests replays of each other.
        all_headers = {k: v for k, v in event["headers"].items() if k != "Idempotency-Key"}
        key = self.key if key == "default" else key
        if key is None:
            all_headers.pop("Authorization")
        else:
            all_headers["Authorization"] = f"Bearer {key}"
        all_headers.update(headers or {})
        event["headers"] = all_headers
        event["multiValueHeaders"] = {k: [v] for k, v in all_headers.items()}
        result = self.handler.lambda_handler(event, LocalContext("mailsage-api"))
        text = result.get("body") or ""
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():  # how the REST resolver replies
            headers[name.lower()] = ", ".join(values)
        if result.get("isBase64Encoded"):
            return Reply(result["statusCode"], base64.b64decode(text), headers)
        if text and not headers.get("content-type", "application/json").startswith("application/json"):
            return Reply(result["statusCode"], text, headers)  # HTML pages, redirects
        return Reply(result["statusCode"], json.loads(text) if text else None, headers)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def api_handler(data_dir: Path) -> Any:
    return load_handler("api")


@pytest.fixture
def api(api_handler: Any, account: Account) -> ApiClient:
    return ApiClient(api_handler, account.key)


@pytest.fixture
def smtp_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    port = free_port()
    sink = SmtpSink(tmp_path / "outbox", port)
    sink.start()
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{port}")
    yield sink
    sink.stop()


class Worker:
    """Feeds the send queue to the real sender handler, as the local runtime's worker loop does."""

    def __init__(self, handler: Any, stores: Backends) -> None:
        self.handler = handler
        self.queue = stores.queue
        self.invocations = 0

    def invoke(self, received: list[Received]) -> set[str]:
        """Run one sender invocation; acknowledge what succeeded; return the failed message ids."""
        self.invocations += 1
        result = self.handler.lambda_handler(sqs_event(received), LocalContext("mailsage-sender"))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for r in received:
            if r.message_id not in failed:
                self.queue.ack(r.receipt)
        return failed

    def drain(self, max_rounds: int = 200) -> None:
        for _ in range(max_rounds):
            received = self.queue.receive(max_messages=10, wait_seconds=0.3)
            if not received:
                if self.queue.depth() == 0:
                    return
                continue
            self.invoke(received)
        raise AssertionError("the send queue did not drain")


@pytest.fixture
def worker(data_dir: Path, smtp_sink: SmtpSink, stores: Backends) -> Worker:
    return Worker(load_handler("sender"), stores)
