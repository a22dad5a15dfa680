"""The Python client covers every operation of the API: each client method is called (sync and
async) against a transport that records the request, and the requests must match every operation of
the committed OpenAPI document. A route added to the API without a client method fails here."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mailsage_client import AsyncMailSage, AsyncPaginator, MailSage, Paginator
from mailsage_client import _async_v1 as async_v1
from mailsage_client import _async_v2 as async_v2
from mailsage_client import _sync_v1 as sync_v1
from mailsage_client import _sync_v2 as sync_v2

OPENAPI = Path(__file__).resolve().parents[2] / "functions" / "api" / "openapi.json"
UNTIL = "2030-01-01T00:00:00Z"

# One call per client method; a list method is iterated to its first request.
OPERATIONS: list[Callable[[Any], Any]] = [
    lambda c: c.ping(),
    lambda c: c.emails.send("a@example.com", subject="s", text="t"),
    lambda c: c.emails.batch(["a@example.com"], subject="s", text="t"),
    lambda c: c.jobs.get("job"),
    lambda c: c.jobs.pause("job"),
    lambda c: c.jobs.resume("job"),
    lambda c: c.jobs.stop("job"),
    lambda c: c.templates.create("n", "s", text="t"),
    lambda c: c.templates.get("tpl"),
    lambda c: c.templates.list(),
    lambda c: c.templates.replace("tpl", "n", "s"),
    lambda c: c.templates.delete("tpl"),
    lambda c: c.templates.preview("tpl", {"a": 1}),
    lambda c: c.webhooks.create("n", "https://h.example/", ["message.delivered"]),
    lambda c: c.webhooks.get("wh"),
    lambda c: c.webhooks.list(),
    lambda c: c.webhooks.update("wh", enabled=False),
    lambda c: c.webhooks.delete("wh"),
    lambda c: c.webhooks.deliveries("wh"),
    lambda c: c.webhooks.replay("wh", "dl"),
    lambda c: c.webhooks.test("wh"),
    lambda c: c.campaigns.get("camp"),
    lambda c: c.account("acc").messages.create(
        from_="f@example.com", recipients=["a@example.com"], subject="s"
    ),
    lambda c: c.account("acc").messages.list(status=["Bounced", "Failed"]),
    lambda c: c.account("acc").messages.get("<m@host>"),
    lambda c: c.account("acc").messages.cancel("m"),
    lambda c: c.account("acc").suppressions.create("a@example.com", expires_at=UNTIL),
    lambda c: c.account("acc").suppressions.list(email="a@example.com"),
    lambda c: c.account("acc").suppressions.delete("a@example.com"),
    lambda c: c.account("acc").suppressions.delete_all(domain="example.com"),
    lambda c: c.account("acc").webhooks.create("n", "https://h.example/", events=["delivered"]),
    lambda c: c.account("acc").webhooks.get("wh"),
    lambda c: c.account("acc").webhooks.list(enabled=True),
    lambda c: c.account("acc").webhooks.update("wh", name="m"),
    lambda c: c.account("acc").webhooks.delete("wh"),
    lambda c: c.account("acc").webhooks.deliveries("wh"),
    lambda c: c.account("acc").webhooks.replay("wh", "dl"),
    lambda c: c.account("acc").webhooks.test("wh", "on_delivered"),
]


class Recorded(Exception):
    """Raised by the transport: the request is recorded, no reply is needed."""


def operations() -> set[tuple[str, str]]:
    paths = json.loads(OPENAPI.read_text())["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def operation_of(request: httpx.Request, known: set[tuple[str, str]]) -> tuple[str, str]:
    path = request.url.raw_path.split(b"?")[0].decode()
    for method, template in known:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if method == request.method and re.match(pattern, path):
            return method, template
    raise AssertionError(f"{request.method} {path} is no operation of the API")


def record(seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise Recorded

    return handler


def sync_requests() -> list[httpx.Request]:
    seen: list[httpx.Request] = []
    client = MailSage(
        "http://mailsage.test", "key", http_client=httpx.Client(transport=httpx.MockTransport(record(seen)))
    )
    for operation in OPERATIONS:
        with pytest.raises(Recorded):
            result = operation(client)
            assert isinstance(result, Paginator)
            next(iter(result))
    return seen


def async_requests() -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        return record(seen)(request)

    async def run_all() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncMailSage("http://mailsage.test", "key", http_client=http) as client:
            for operation in OPERATIONS:
                with pytest.raises(Recorded):
                    result = operation(client)
                    if isinstance(result, AsyncPaginator):
                        await anext(aiter(result))
                    else:
                        await result

    asyncio.run(run_all())
    return seen


@pytest.mark.parametrize("requests", [sync_requests, async_requests], ids=["sync", "async"])
def test_every_operation_of_the_api_has_a_client_method(requests: Callable[[], list[httpx.Request]]) -> None:
    known = operations()
    seen = requests()
    assert len(seen) == len(OPERATIONS)
    assert {operation_of(r, known) for r in seen} == known


@pytest.mark.parametrize("requests", [sync_requests, async_requests], ids=["sync", "async"])
def test_creates_carry_an_idempotency_key_and_nothing_else_does(
    requests: Callable[[], list[httpx.Request]],
) -> None:
    for request in requests():
        action = request.url.path.rsplit("/", 1)[-1] in {"control", "preview"}
        creates = request.method == "POST" and not action
        assert ("Idempotency-Key" in request.headers) == creates, f"{request.method} {request.url.path}"


def test_ids_are_sent_url_encoded_and_lists_comma_separated() -> None:
    seen = sync_requests()
    paths = [r.url.raw_path.decode() for r in seen]
    assert "/v2/accounts/acc/messages/%3Cm%40host%3E" in paths
    listed = next(r for r in seen if r.url.path == "/v2/accounts/acc/messages" and r.method == "GET")
    assert listed.url.params["status"] == "Bounced,Failed"


@pytest.mark.parametrize(
    ("sync_class", "async_class"),
    [
        (sync_v1.Emails, async_v1.AsyncEmails),
        (sync_v1.Jobs, async_v1.AsyncJobs),
        (sync_v1.Templates, async_v1.AsyncTemplates),
        (sync_v1.Webhooks, async_v1.AsyncWebhooks),
        (sync_v1.Campaigns, async_v1.AsyncCampaigns),
        (sync_v2.Messages, async_v2.AsyncMessages),
        (sync_v2.Suppressions, async_v2.AsyncSuppressions),
        (sync_v2.V2Webhooks, async_v2.AsyncV2Webhooks),
        (MailSage, AsyncMailSage),
    ],
)
def test_the_async_client_has_the_same_methods_and_arguments(sync_class: type, async_class: type) -> None:
    def methods(cls: type) -> dict[str, list[tuple[str, Any, Any]]]:
        found = {}
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") or name in {"close", "aclose"}:
                continue
            params = inspect.signature(member).parameters.values()
            found[name] = [(p.name, p.kind, p.default) for p in params]
        return found

    assert methods(sync_class) == methods(async_class)
