"""The AhaSend-compatible webhook endpoints (`/v2/accounts/{account_id}/webhooks[/{webhook_id}]`):
every reply, successful or not, validates against the vendored AhaSend contract (the client of
test_ahasend_contract.py checks each one), and the behaviour the contract describes: `on_*` flags and
their filters, cursors both ways, partial updates and scope transitions, the secret shown once, and
MailSage's job.* subscriptions of a v1 webhook kept across a v2 update.

MailSage's extensions of the contract, the delivery log and replay
(`.../webhooks/{webhook_id}/deliveries[/{delivery_id}/replay]`), are not in the AhaSend contract:
their replies are validated against MailSage's own OpenAPI document (functions/api/openapi.json)
instead, so what the routes declare (`responses=`) is what they answer. Deliveries are made by the
real webhook dispatcher posting to a real receiver on loopback."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mailsage.adapters.webhook_http import HttpWebhookClient
from mailsage.api.dependencies import webhook_service_dep
from mailsage.domain.events import delivery_body, message_event
from mailsage.domain.models import EVENT_FLAGS, WebhookDelivery
from mailsage.domain.webhook_delivery import RetryDelivery, WebhookDispatcher, WebhookPolicy
from mailsage.domain.webhooks import WebhookService
from mailsage.ports import Queue, Received
from mailsage.wiring import Backends
from tests.conftest import ROOT, Account, ApiClient, Reply
from tests.contract.test_ahasend_contract import CHECKED, ContractClient, expect
from tests.webhook_receiver import WebhookReceiver

WEBHOOKS = "/v2/accounts/{account_id}/webhooks"
ONE = f"{WEBHOOKS}/{{webhook_id}}"
OPERATIONS: dict[tuple[str, str], set[int]] = {
    ("GET", WEBHOOKS): {200, 400, 401, 403},
    ("POST", WEBHOOKS): {201, 400, 401, 403, 422},
    ("GET", ONE): {200, 401, 403, 404},
    ("PUT", ONE): {200, 400, 401, 403, 404},
    ("DELETE", ONE): {200, 401, 403, 404},
}
FLAGS = sorted(flag for flag in EVENT_FLAGS.values() if flag is not None)
URL = "https://hooks.example.com/ahasend"


@pytest.fixture
def v2(api_handler: Any, account: Account) -> ContractClient:
    return ContractClient(api_handler, account)


@pytest.fixture
def other(api_handler: Any, new_account: Any) -> ContractClient:
    return ContractClient(api_handler, new_account())


def hooks(v2: ContractClient) -> str:
    return f"{v2.base}/webhooks"


def create(v2: ContractClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Delivery events", "url": URL, "scope": "global", **fields}
    return expect(v2.post(hooks(v2), body), 201).body  # type: ignore[no-any-return]


def ids(reply_body: dict[str, Any]) -> list[str]:
    return [w["id"] for w in reply_body["data"]]


# -- create, get, delete ---------------------------------------------------------------------------------


def test_create_get_and_delete(v2: ContractClient) -> None:
    created = create(v2, on_delivered=True, on_bounced=True, enabled=None, domains=["ignored.example.com"])
    assert created["object"] == "webhook" and created["secret"].startswith("whsec_")
    assert created["enabled"] is True  # null: the default
    assert {f for f in FLAGS if created[f]} == {"on_delivered", "on_bounced"}
    assert created["scope"] == "global" and created["domains"] == []  # global ignores domains
    assert created["last_request_at"] is None and created["success_count"] == 0

    got = expect(v2.get(f"{hooks(v2)}/{created['id']}"), 200).body
    assert "secret" not in got and got == {k: v for k, v in created.items() if k != "secret"}

    deleted = expect(v2.delete(f"{hooks(v2)}/{created['id']}"), 200).body
    assert created["id"] in deleted["message"]
    expect(v2.get(f"{hooks(v2)}/{created['id']}"), 404, "not found")
    expect(v2.delete(f"{hooks(v2)}/{created['id']}"), 404, "not found")
    expect(v2.put(f"{hooks(v2)}/{created['id']}", {"name": "x"}), 404, "not found")


def test_a_scoped_webhook_needs_domains(v2: ContractClient) -> None:
    expect(v2.post(hooks(v2), {"name": "n", "url": URL, "scope": "scoped"}), 400, "at least one domain")
    expect(v2.post(hooks(v2), {"name": "n", "url": URL, "scope": "scoped", "domains": []}), 400, "domain")
    scoped = create(v2, scope="scoped", domains=["Mail.Example.com"], on_failed=True)
    assert scoped["scope"] == "scoped" and scoped["domains"] == ["mail.example.com"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"url": URL, "scope": "global"}, "name is required"),
        ({"name": "n", "scope": "global"}, "url is required"),
        ({"name": "n", "url": URL}, "scope is required"),
        ({"name": "n", "url": URL, "scope": "everywhere"}, "scope"),
        ({"name": "x" * 256, "url": URL, "scope": "global"}, "name"),
        ({"name": "n", "url": "ftp://hooks.example.com/", "scope": "global"}, "http:// or https://"),
        ({"name": "n", "url": "not a url", "scope": "global"}, "url"),
        ({"name": "n", "url": URL, "scope": "global", "on_delivered": "often"}, "on_delivered"),
        ({"name": " ", "url": URL, "scope": "global"}, "name"),
    ],
)
def test_create_validation_is_400(v2: ContractClient, body: dict[str, Any], fragment: str) -> None:
    expect(v2.post(hooks(v2), body), 400, fragment)


def test_create_is_idempotent_with_a_key(v2: ContractClient) -> None:
    body = {"name": "n", "url": URL, "scope": "global", "on_opened": True}
    headers = {"Idempotency-Key": f"hook-{uuid.uuid4()}"}
    first = expect(v2.post(hooks(v2), body, headers=headers), 201)
    again = expect(v2.post(hooks(v2), body, headers=headers), 201)
    assert again.body == first.body and again.headers.get("idempotent-replayed") == "true"
    expect(v2.post(hooks(v2), {**body, "name": "other"}, headers=headers), 422, "different")
    assert ids(expect(v2.get(hooks(v2)), 200).body) == [first.body["id"]]


def test_auth_and_other_accounts(v2: ContractClient, other: ContractClient) -> None:
    hook = create(v2)["id"]
    for method, path, body in (
        ("GET", hooks(v2), None),
        ("POST", hooks(v2), {"name": "n", "url": URL, "scope": "global"}),
        ("GET", f"{hooks(v2)}/{hook}", None),
        ("PUT", f"{hooks(v2)}/{hook}", {"name": "n"}),
        ("DELETE", f"{hooks(v2)}/{hook}", None),
    ):
        expect(v2.request(method, path, body, key=None), 401)
        expect(other.request(method, path, body), 403, "account")
    # Another account's webhook under its own path: not found, like an unknown id.
    assert expect(other.get(hooks(other)), 200).body["data"] == []
    expect(other.get(f"{hooks(other)}/{hook}"), 404, "not found")
    expect(other.put(f"{hooks(other)}/{hook}", {"name": "mine"}), 404, "not found")
    expect(other.delete(f"{hooks(other)}/{hook}"), 404, "not found")
    assert expect(v2.get(f"{hooks(v2)}/{hook}"), 200).body["name"] == "Delivery events"


# -- list: filters and cursors -----------------------------------------------------------------------------


def test_list_filters_on_flags_and_enabled(v2: ContractClient) -> None:
    delivered = create(v2, name="delivered", on_delivered=True)["id"]
    both = create(v2, name="both", on_delivered=True, on_bounced=True)["id"]
    off = create(v2, name="off", on_bounced=True, enabled=False)["id"]
    nothing = create(v2, name="nothing")["id"]

    def listed(query: str) -> set[str]:
        return set(ids(expect(v2.get(f"{hooks(v2)}?{query}"), 200).body))

    assert listed("") == {delivered, both, off, nothing}
    assert listed("on_delivered=true") == {delivered, both}
    assert listed("on_delivered=true&on_bounced=false") == {delivered}
    assert listed("on_bounced=true") == {both, off}
    assert listed("enabled=false") == {off}
    assert listed("enabled=true&on_bounced=true") == {both}
    assert listed("on_delivered=false&on_bounced=false") == {nothing}
    assert listed("on_dns_error=true") == set()
    # a filtered page with a cursor
    page = expect(v2.get(f"{hooks(v2)}?on_bounced=true&limit=1"), 200).body
    assert page["pagination"]["has_more"] is True
    rest = expect(
        v2.get(f"{hooks(v2)}?on_bounced=true&limit=1&after={page['pagination']['next_cursor']}"), 200
    )
    assert (
        set(ids(page)) | set(ids(rest.body)) == {both, off} and rest.body["pagination"]["has_more"] is False
    )


def test_list_pages_both_ways(v2: ContractClient) -> None:
    every = sorted(create(v2, name=f"hook {i}")["id"] for i in range(5))
    first = expect(v2.get(f"{hooks(v2)}?limit=2"), 200).body
    assert first["object"] == "list" and ids(first) == every[:2]
    assert first["pagination"] == {"has_more": True, "next_cursor": every[1]}
    second = expect(v2.get(f"{hooks(v2)}?limit=2&after={every[1]}"), 200).body
    assert ids(second) == every[2:4]
    assert second["pagination"] == {"has_more": True, "next_cursor": every[3], "previous_cursor": every[2]}
    last = expect(v2.get(f"{hooks(v2)}?limit=2&after={every[3]}"), 200).body
    assert ids(last) == every[4:] and last["pagination"] == {"has_more": False, "previous_cursor": every[4]}
    # back from the last page
    back = expect(v2.get(f"{hooks(v2)}?limit=2&before={every[4]}"), 200).body
    assert ids(back) == every[2:4]
    assert back["pagination"] == {"has_more": True, "next_cursor": every[3], "previous_cursor": every[2]}
    start = expect(v2.get(f"{hooks(v2)}?limit=2&before={every[2]}"), 200).body
    assert ids(start) == every[:2] and "previous_cursor" not in start["pagination"]
    assert ids(expect(v2.get(hooks(v2)), 200).body) == every  # default limit 100


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("enabled=perhaps", "enabled"),
        ("on_opened=maybe", "on_opened"),
        ("after=a&before=b", "either after or before"),
        ("before=00000000-0000-4000-8000-000000000000", "before"),
    ],
)
def test_list_bad_queries_are_400(v2: ContractClient, query: str, fragment: str) -> None:
    expect(v2.get(f"{hooks(v2)}?{query}"), 400, fragment)


# -- update ----------------------------------------------------------------------------------------------


def test_update_changes_only_what_is_given(v2: ContractClient) -> None:
    created = create(v2, on_delivered=True, on_opened=True)
    path = f"{hooks(v2)}/{created['id']}"
    same = expect(v2.put(path, {}), 200).body
    assert {k: v for k, v in same.items() if k != "updated_at"} == {
        k: v for k, v in created.items() if k not in ("secret", "updated_at")
    }
    changed = expect(
        v2.put(path, {"name": "Renamed", "on_opened": False, "on_clicked": True, "on_delivered": None}), 200
    ).body
    assert changed["name"] == "Renamed" and changed["url"] == URL and "secret" not in changed
    assert {f for f in FLAGS if changed[f]} == {"on_delivered", "on_clicked"}
    assert changed["updated_at"] >= created["updated_at"] and changed["created_at"] == created["created_at"]
    off = expect(v2.put(path, {"enabled": False, "url": "https://new.example.com/h"}), 200).body
    assert off["enabled"] is False and off["url"] == "https://new.example.com/h" and off["name"] == "Renamed"
    expect(v2.put(path, {"url": "mailto:me@example.com"}), 400, "http:// or https://")
    expect(v2.put(path, {"name": "x" * 256}), 400, "name")
    expect(v2.put(path, {"scope": "somewhere"}), 400, "scope")
    expect(v2.put(f"{hooks(v2)}/{uuid.uuid4()}", {"name": "n"}), 404, "not found")
    assert expect(v2.get(path), 200).body == off


def test_update_scope_transitions(v2: ContractClient) -> None:
    hook = create(v2, on_failed=True)["id"]
    path = f"{hooks(v2)}/{hook}"
    # global -> scoped needs a non-empty domains array in the same request
    expect(v2.put(path, {"scope": "scoped"}), 400, "non-empty domains")
    expect(v2.put(path, {"scope": "scoped", "domains": None}), 400, "non-empty domains")
    expect(v2.put(path, {"scope": "scoped", "domains": []}), 400, "non-empty domains")
    expect(v2.put(path, {"scope": "scoped", "domains": ["bad domain"]}), 400, "not a valid domain")
    assert expect(v2.get(path), 200).body["scope"] == "global"
    scoped = expect(
        v2.put(path, {"scope": "scoped", "domains": ["A.example.com", "b.example.com"]}), 200
    ).body
    assert scoped["scope"] == "scoped" and scoped["domains"] == ["a.example.com", "b.example.com"]
    # scoped: omitted or null keeps the domains, an array replaces them, [] clears them
    assert expect(v2.put(path, {"name": "n"}), 200).body["domains"] == ["a.example.com", "b.example.com"]
    assert expect(v2.put(path, {"domains": None}), 200).body["domains"] == ["a.example.com", "b.example.com"]
    assert expect(v2.put(path, {"domains": ["c.example.com"]}), 200).body["domains"] == ["c.example.com"]
    cleared = expect(v2.put(path, {"scope": "scoped", "domains": []}), 200).body
    assert cleared["scope"] == "scoped" and cleared["domains"] == []
    expect(v2.put(path, {"domains": ["c.example.com"]}), 200)
    # -> global clears them and ignores any given
    glob = expect(v2.put(path, {"scope": "global", "domains": ["d.example.com"]}), 200).body
    assert glob["scope"] == "global" and glob["domains"] == []
    assert expect(v2.put(path, {"domains": ["e.example.com"]}), 200).body["domains"] == []


def test_job_events_of_a_v1_webhook_are_invisible_here_and_kept(v2: ContractClient, api: ApiClient) -> None:
    created = api.post(
        "/api/v1/webhooks",
        {"name": "v1", "url": URL, "events": ["job.completed", "job.stopped", "message.delivered"]},
    )
    assert created.status == 201, created.body
    hook = created.body["id"]
    seen = expect(v2.get(f"{hooks(v2)}/{hook}"), 200).body
    assert {f for f in FLAGS if seen[f]} == {"on_delivered"}
    expect(v2.put(f"{hooks(v2)}/{hook}", {"on_delivered": False, "on_bounced": True}), 200)
    assert api.get(f"/api/v1/webhooks/{hook}").body["events"] == [
        "job.completed",
        "job.stopped",
        "message.bounced",
    ]
    # and a webhook created here has no job.* events
    v2_hook = create(v2, **dict.fromkeys(FLAGS, True))["id"]
    events = api.get(f"/api/v1/webhooks/{v2_hook}").body["events"]
    assert sorted(events) == sorted(e for e, f in EVENT_FLAGS.items() if f is not None)


# -- MailSage extensions: the delivery log and replay ----------------------------------------------------

DELIVERIES = f"{ONE}/deliveries"
REPLAY = f"{DELIVERIES}/{{delivery_id}}/replay"
# (method, path of MailSage's OpenAPI document) -> the statuses checked here
EXTENSIONS: dict[tuple[str, str], set[int]] = {
    ("GET", DELIVERIES): {200, 400, 401, 403, 404},
    ("POST", REPLAY): {202, 401, 403, 404, 409, 503},
}
EXTENSION_CHECKED: set[tuple[str, str, int]] = set()
OPENAPI = ROOT / "functions" / "api" / "openapi.json"
OPENAPI_URI = "urn:mailsage:openapi"
# Retries come back quickly; a retried delivery stays "retrying" for RETRY_SECONDS.
POLICY = WebhookPolicy(
    timeout_seconds=2.0,
    max_attempts=5,
    retry_base_seconds=0.2,
    retry_factor=1.0,
    retry_max_seconds=0.2,
    disable_after=100,
    log_days=30,
)
RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


@lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text())  # type: ignore[no-any-return]


def check_against_openapi(method: str, path: str, reply: Reply) -> tuple[str, str, int]:
    """Validate `reply` against the response MailSage's OpenAPI document declares for it."""
    document = openapi()
    templates = [
        t for t in document["paths"] if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)), path)
    ]
    assert len(templates) == 1, f"{path}: {templates or 'not a path'} of the OpenAPI document"
    [template] = templates
    responses = document["paths"][template][method.lower()]["responses"]
    assert str(reply.status) in responses, (
        f"{method} {template} answered {reply.status}, which it does not declare ({', '.join(responses)}):"
        f" {reply.body}"
    )
    escaped = template.replace("~", "~0").replace("/", "~1")
    schema = {
        "$ref": f"{OPENAPI_URI}#/paths/{escaped}/{method.lower()}/responses/{reply.status}"
        "/content/application~1json/schema"
    }
    registry = Registry().with_resource(OPENAPI_URI, Resource.from_contents(document, DRAFT202012))
    problems = list(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(reply.body))
    assert not problems, f"{method} {template} {reply.status}: {[p.message for p in problems[:5]]}"
    return method, template, reply.status


class ExtensionClient(ContractClient):
    """The v2 client for MailSage's extension routes: replies are checked against MailSage's own
    OpenAPI document rather than the AhaSend contract (which does not have these paths)."""

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
        reply = ApiClient.request(self, method, path, body, **kw)
        EXTENSION_CHECKED.add(check_against_openapi(method, path.partition("?")[0], reply))
        return reply


@pytest.fixture
def ext(api_handler: Any, account: Account) -> ExtensionClient:
    return ExtensionClient(api_handler, account)


@pytest.fixture
def ext_other(api_handler: Any, new_account: Any) -> ExtensionClient:
    return ExtensionClient(api_handler, new_account())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def queue(stores: Backends) -> Queue:
    assert stores.webhooks is not None
    for waiting in stores.webhooks.receive(max_messages=10):  # nothing else is waiting
        stores.webhooks.ack(waiting.receipt)
    return stores.webhooks


def hook_for(v2: ContractClient, receiver: WebhookReceiver) -> str:
    """A webhook (on message.delivered) posting to `receiver`, which checks its signature."""
    created = create(v2, url=receiver.url, on_delivered=True)
    receiver.secret = created["secret"]
    return created["id"]  # type: ignore[no-any-return]


def publish(
    stores: Backends, queue: Queue, account: Account, hook: str, occurred_at: float
) -> dict[str, Any]:
    """Put one message.delivered event for the webhook on the webhook queue, as the event publisher
    does; its queue body."""
    webhook = stores.store.get_webhook(account.id, hook)
    assert webhook is not None
    event = message_event(
        "message.delivered",
        account_id=account.id,
        message_id=f"msg_{uuid.uuid4().hex}",
        recipient="user@example.com",
        from_addr="News <news@example.com>",
        subject="Hello",
        message_id_domain="mailsage.local",
        occurred_at=occurred_at,
    )
    body = delivery_body(webhook, event)
    queue.send([body])
    return body


def dispatch(stores: Backends, queue: Queue, received: Received) -> str:
    """What the webhooks function does with a queued delivery: its outcome ("retry" when it will
    come back)."""
    dispatcher = WebhookDispatcher(stores.store, queue, POLICY, HttpWebhookClient(allow_private=True))
    try:
        outcome = dispatcher.dispatch(received.body, received.receipt, received.receive_count)
    except RetryDelivery:
        return "retry"
    queue.ack(received.receipt)
    return outcome


def dispatch_next(stores: Backends, queue: Queue, wait: float = 0.0) -> str:
    [received] = queue.receive(max_messages=1, wait_seconds=wait)
    return dispatch(stores, queue, received)


def deliveries(client: ContractClient, hook: str, query: str = "", **kw: Any) -> Reply:
    return client.get(f"{hooks(client)}/{hook}/deliveries{query}", **kw)


def replay(client: ContractClient, hook: str, delivery_id: str, **kw: Any) -> Reply:
    return client.post(f"{hooks(client)}/{hook}/deliveries/{delivery_id}/replay", **kw)


def seconds(value: str) -> float:
    assert RFC3339_Z.fullmatch(value), value
    return datetime.fromisoformat(value).timestamp()


def test_deliveries_are_listed_newest_first_with_their_attempts(
    v2: ContractClient,
    ext: ExtensionClient,
    stores: Backends,
    queue: Queue,
    account: Account,
    receiver: WebhookReceiver,
) -> None:
    hook = hook_for(v2, receiver)
    assert expect(deliveries(ext, hook), 200).body == {
        "object": "list",
        "data": [],
        "pagination": {"has_more": False},
    }

    # An older event: refused once (500), then delivered on its retry.
    receiver.respond(500, 200)
    old = publish(stores, queue, account, hook, time.time() - 60)
    assert dispatch_next(stores, queue) == "retry"
    assert dispatch_next(stores, queue, wait=3.0) == "succeeded"
    # A newer one: refused (503), waiting for its retry.
    receiver.respond(503)
    new = publish(stores, queue, account, hook, time.time() - 30)
    before_attempt = time.time()
    assert dispatch_next(stores, queue) == "retry"
    assert [r.headers["webhook-id"] for r in receiver.requests] == [old["delivery_id"]] * 2 + [
        new["delivery_id"]
    ]
    assert all(r.verified for r in receiver.requests)

    listed = expect(deliveries(ext, hook), 200).body
    assert listed["object"] == "list" and listed["pagination"] == {"has_more": False}
    assert [d["id"] for d in listed["data"]] == [new["delivery_id"], old["delivery_id"]]
    newest, oldest = listed["data"]
    assert {k: oldest[k] for k in ("object", "webhook_id", "event_type", "status", "next_attempt_at")} == {
        "object": "webhook_delivery",
        "webhook_id": hook,
        "event_type": "message.delivered",
        "status": "succeeded",
        "next_attempt_at": None,
    }
    assert oldest["payload"] == json.loads(old["payload"]) == json.loads(receiver.requests[0].body)
    assert seconds(oldest["created_at"]) == pytest.approx(old["created_at"], abs=0.001)
    assert [(a["status_code"], a["error"], a["replay"]) for a in oldest["attempts"]] == [
        (500, "the endpoint answered HTTP 500", False),
        (200, None, False),
    ]
    assert all(a["duration_ms"] >= 0 for a in oldest["attempts"])
    first, second = (seconds(a["time"]) for a in oldest["attempts"])
    assert first <= second <= seconds(oldest["updated_at"])
    assert newest["status"] == "retrying"
    assert [(a["status_code"], a["error"]) for a in newest["attempts"]] == [
        (503, "the endpoint answered HTTP 503")
    ]
    assert seconds(newest["next_attempt_at"]) == pytest.approx(before_attempt + 0.2, abs=1.0)

    # pages, newest first, forwards with `after`
    page = expect(deliveries(ext, hook, "?limit=1"), 200).body
    assert [d["id"] for d in page["data"]] == [new["delivery_id"]]
    assert page["pagination"] == {"has_more": True, "next_cursor": new["delivery_id"]}
    rest = expect(deliveries(ext, hook, f"?limit=1&after={new['delivery_id']}"), 200).body
    assert rest["data"] == [oldest] and rest["pagination"] == {"has_more": False}

    expect(deliveries(ext, hook, "?limit=0"), 400, "limit")
    expect(deliveries(ext, hook, "?limit=101"), 400, "limit")
    expect(deliveries(ext, str(uuid.uuid4())), 404, "not found")
    expect(deliveries(ext, hook, key=None), 401)


def test_replay_sends_the_delivery_to_the_receiver_once_more(
    v2: ContractClient,
    ext: ExtensionClient,
    stores: Backends,
    queue: Queue,
    account: Account,
    receiver: WebhookReceiver,
) -> None:
    hook = hook_for(v2, receiver)
    body = publish(stores, queue, account, hook, time.time())
    assert dispatch_next(stores, queue) == "succeeded"
    delivery_id = body["delivery_id"]

    reply = expect(replay(ext, hook, delivery_id), 202)
    assert reply.body == {
        "object": "webhook_delivery_replay",
        "delivery_id": delivery_id,
        "webhook_id": hook,
        "status": "queued",
    }
    [queued] = queue.receive(max_messages=10)
    assert queued.body == {**body, "replay": True}
    assert dispatch(stores, queue, queued) == "succeeded"

    first, again = receiver.requests
    assert again.verified, again.rejection
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == delivery_id
    assert again.body == first.body
    [logged] = expect(deliveries(ext, hook), 200).body["data"]
    assert [(a["status_code"], a["replay"]) for a in logged["attempts"]] == [(200, False), (200, True)]
    assert logged["status"] == "succeeded"

    # With an Idempotency-Key a retried replay is queued once.
    key = {"Idempotency-Key": f"replay-{uuid.uuid4()}"}
    once = expect(replay(ext, hook, delivery_id, headers=key), 202)
    twice = expect(replay(ext, hook, delivery_id, headers=key), 202)
    assert twice.body == once.body and twice.headers.get("idempotent-replayed") == "true"
    [queued] = queue.receive(max_messages=10)
    assert queued.body == {**body, "replay": True}
    queue.ack(queued.receipt)

    expect(replay(ext, hook, f"msg_{uuid.uuid4().hex}"), 404, "not found")
    expect(replay(ext, str(uuid.uuid4()), delivery_id), 404, "not found")
    expect(v2.put(f"{hooks(v2)}/{hook}", {"enabled": False}), 200)
    expect(replay(ext, hook, delivery_id), 409, "disabled")
    expect(replay(ext, hook, delivery_id, key=None), 401)
    assert queue.depth() == 0 and len(receiver.requests) == 2


def seed_delivery(stores: Backends, account: Account, hook: str) -> WebhookDelivery:
    now = time.time()
    delivery = WebhookDelivery(
        id=f"msg_{uuid.uuid4().hex}",
        account_id=account.id,
        webhook_id=hook,
        event_type="message.delivered",
        payload=json.dumps({"type": "message.delivered", "data": {"id": "m1"}}),
        created_at=now,
        updated_at=now,
        status="failed",
        attempts=[{"time": now, "status_code": 500, "error": "HTTP 500", "duration_ms": 3, "replay": False}],
    )
    stores.store.put_webhook_delivery(delivery)
    return delivery


def test_another_accounts_deliveries_are_not_found(
    v2: ContractClient,
    ext: ExtensionClient,
    ext_other: ExtensionClient,
    stores: Backends,
    queue: Queue,
    account: Account,
) -> None:
    hook = create(v2)["id"]
    delivery = seed_delivery(stores, account, hook)
    # Under the other account's own path: not found, like an unknown id.
    expect(deliveries(ext_other, hook), 404, "not found")
    expect(replay(ext_other, hook, delivery.id), 404, "not found")
    # Under this account's path with the other account's key: 403.
    expect(ext_other.get(f"{hooks(ext)}/{hook}/deliveries"), 403, "account")
    expect(ext_other.post(f"{hooks(ext)}/{hook}/deliveries/{delivery.id}/replay"), 403, "account")
    assert queue.depth() == 0
    assert [d["id"] for d in expect(deliveries(ext, hook), 200).body["data"]] == [delivery.id]


def test_replay_without_a_webhook_queue_is_503(
    v2: ContractClient,
    ext: ExtensionClient,
    stores: Backends,
    account: Account,
    api_handler: Any,
) -> None:
    hook = create(v2)["id"]
    delivery = seed_delivery(stores, account, hook)
    # A deployment without a webhook queue (AWS without MAILSAGE_WEBHOOK_QUEUE_URL)
    without_queue = WebhookService(stores.store, None, allow_private=True)
    api_handler.app.dependency_overrides[webhook_service_dep] = lambda **_: without_queue
    reply = expect(replay(ext, hook, delivery.id), 503)
    assert reply.body == {"message": "webhook deliveries are not configured in this deployment"}
    # what is not found is still 404, and the log can still be read
    expect(replay(ext, hook, "msg_unknown"), 404, "not found")
    assert [d["id"] for d in expect(deliveries(ext, hook), 200).body["data"]] == [delivery.id]


def test_every_webhook_operation_was_checked_with_success_and_errors(request: pytest.FixtureRequest) -> None:
    selected = {item.name.split("[")[0] for item in request.session.items if item.path == request.path}
    if selected != {name for name in globals() if name.startswith("test_")}:
        pytest.skip("only part of this module ran")
    for operation, expected in sorted(OPERATIONS.items()):
        statuses = {status for method, path, status in CHECKED if (method, path) == operation}
        assert expected <= statuses, f"{operation}: checked {sorted(statuses)}, expected {sorted(expected)}"
    for operation, expected in sorted(EXTENSIONS.items()):
        statuses = {status for method, path, status in EXTENSION_CHECKED if (method, path) == operation}
        assert expected <= statuses, f"{operation}: checked {sorted(statuses)}, expected {sorted(expected)}"
