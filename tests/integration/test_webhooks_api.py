"""/api/v1/webhooks: create (the secret shown once), validation, list pagination, partial update,
delete, account isolation, the delivery log and replaying a delivery onto the webhook queue."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from mailsage.api.dependencies import webhook_service_dep
from mailsage.domain.clock import ManualClock
from mailsage.domain.models import WebhookDelivery
from mailsage.domain.webhooks import WebhookService
from mailsage.local.functions import load_handler
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply

WEBHOOKS = "/api/v1/webhooks"
URL = "https://hooks.example.com/mailsage"


def webhook_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Deliveries", "url": URL, "events": ["message.delivered"]}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(api: ApiClient, **overrides: Any) -> dict[str, Any]:
    reply = api.post(WEBHOOKS, webhook_body(**overrides))
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def patch(api: ApiClient, webhook_id: str, body: dict[str, Any]) -> Reply:
    return api.request("PATCH", f"{WEBHOOKS}/{webhook_id}", body)


def assert_error(reply: Reply, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.error["code"] == code, reply.body
    if message is not None:
        assert message in reply.error["message"], reply.error
    return reply.error


REPLY_FIELDS = {
    "id",
    "name",
    "url",
    "enabled",
    "events",
    "scope",
    "domains",
    "created_at",
    "updated_at",
    "success_count",
    "error_count",
    "errors_since_last_success",
    "last_request_at",
    "disabled_reason",
    "signing",
}


# -- create --------------------------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_never_again(api: ApiClient) -> None:
    created = create(api, events=["message.bounced", "job.completed", "message.delivered", "message.bounced"])
    assert set(created) == REPLY_FIELDS | {"secret"}
    assert str(uuid.UUID(created["id"])) == created["id"]
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["job.completed", "message.bounced", "message.delivered"]  # once, sorted
    assert created["enabled"] is True and created["scope"] == "global" and created["domains"] == []
    assert created["success_count"] == created["error_count"] == created["errors_since_last_success"] == 0
    assert created["last_request_at"] is None and created["disabled_reason"] is None
    assert created["created_at"] == created["updated_at"] and created["created_at"].endswith("Z")

    one = api.get(f"{WEBHOOKS}/{created['id']}")
    assert one.status == 200 and set(one.body) == REPLY_FIELDS
    assert {k: v for k, v in created.items() if k != "secret"} == one.body
    listed = api.get(WEBHOOKS).body["data"]
    assert [set(w) for w in listed] == [REPLY_FIELDS]
    updated = patch(api, created["id"], {"name": "Renamed"})
    assert updated.status == 200 and "secret" not in updated.body
    assert created["secret"] not in json.dumps([one.body, listed, updated.body])


def test_a_second_webhook_gets_its_own_id_and_secret(api: ApiClient) -> None:
    a, b = create(api), create(api)
    assert a["id"] != b["id"] and a["secret"] != b["secret"]


def test_scoped_webhook_keeps_lower_cased_domains_and_global_ignores_them(api: ApiClient) -> None:
    scoped = create(
        api, scope="scoped", domains=["News.Example.COM", "news.example.com.", "shop.example.com"]
    )
    assert scoped["scope"] == "scoped" and scoped["domains"] == ["news.example.com", "shop.example.com"]
    glob = create(api, scope="global", domains=["news.example.com"])
    assert glob["domains"] == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "must start with http:// or https://"),
        ({"url": "hooks.example.com/x"}, "must start with http:// or https://"),
        ({"url": "https://user:pw@hooks.example.com/"}, "user name or password"),
        ({"events": ["message.delivered", "message.exploded"]}, "unknown event type 'message.exploded'"),
        ({"scope": "scoped"}, "a scoped webhook needs at least one domain"),
        ({"scope": "scoped", "domains": []}, "a scoped webhook needs at least one domain"),
        ({"scope": "scoped", "domains": ["not a domain"]}, "'not a domain' is not a valid domain name"),
        ({"name": "   "}, "a webhook needs a name"),
    ],
)
def test_create_refuses_bad_fields_with_a_clear_message(
    api: ApiClient, overrides: dict[str, Any], message: str
) -> None:
    assert_error(api.post(WEBHOOKS, webhook_body(**overrides)), 400, "validation_error", message)
    assert api.get(WEBHOOKS).body["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": URL, "events": ["message.delivered"]},  # no name
        {"name": "x" * 256, "url": URL, "events": ["message.delivered"]},
        {"name": "n", "url": URL, "events": []},
        {"name": "n", "url": URL, "events": ["message.delivered"], "scope": "everywhere"},
        {"name": "n", "url": URL, "events": ["message.delivered"], "secret": "mine"},  # unknown field
    ],
)
def test_create_refuses_a_malformed_body(api: ApiClient, body: dict[str, Any]) -> None:
    assert_error(api.post(WEBHOOKS, body), 400, "validation_error")


def test_the_embedded_runtime_allows_private_urls_by_default(api: ApiClient) -> None:
    assert create(api, url="http://127.0.0.1:8080/hook")["url"] == "http://127.0.0.1:8080/hook"


@pytest.fixture
def public_only(data_dir: Any, account: Account, monkeypatch: pytest.MonkeyPatch) -> ApiClient:
    monkeypatch.setenv("MAILSAGE_ALLOW_PRIVATE_WEBHOOK_URLS", "false")
    return ApiClient(load_handler("api"), account.key)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://localhost/hook",
        "http://metadata.internal/hook",
    ],
)
def test_private_hosts_are_refused_when_private_urls_are_not_allowed(
    public_only: ApiClient, url: str
) -> None:
    error = assert_error(public_only.post(WEBHOOKS, webhook_body(url=url)), 400, "validation_error")
    assert "not a public address" in error["message"] or "local or internal name" in error["message"]
    assert create(public_only)["url"] == URL  # a public host is fine
    created = create(public_only)
    # ... and a change to a private one is refused too
    assert_error(patch(public_only, created["id"], {"url": url}), 400, "validation_error")


# -- list ----------------------------------------------------------------------------------------------


def test_list_pages_with_a_cursor(api: ApiClient) -> None:
    ids = sorted(create(api, name=f"hook {i}")["id"] for i in range(5))
    first = api.get(f"{WEBHOOKS}?limit=2")
    assert first.status == 200
    assert [w["id"] for w in first.body["data"]] == ids[:2] and first.body["next_cursor"] == ids[1]
    second = api.get(f"{WEBHOOKS}?limit=2&after={ids[1]}").body
    assert [w["id"] for w in second["data"]] == ids[2:4] and second["next_cursor"] == ids[3]
    last = api.get(f"{WEBHOOKS}?limit=2&after={ids[3]}").body
    assert [w["id"] for w in last["data"]] == ids[4:] and last["next_cursor"] is None
    everything = api.get(WEBHOOKS).body
    assert [w["id"] for w in everything["data"]] == ids and everything["next_cursor"] is None
    assert_error(api.get(f"{WEBHOOKS}?limit=0"), 400, "validation_error")
    assert_error(api.get(f"{WEBHOOKS}?limit=101"), 400, "validation_error")


# -- update --------------------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(api: ApiClient, stores: Backends) -> None:
    # Given a webhook service on a clock of the test's, and a webhook created through it
    clock = ManualClock(time.time())
    on_clock = WebhookService(stores.store, stores.webhooks, allow_private=True, clock=clock)
    api.handler.app.dependency_overrides[webhook_service_dep] = lambda **_: on_clock
    created = create(api, events=["message.delivered", "job.completed"])
    clock.advance(1.0)
    # When some of its fields are changed a second later
    reply = patch(api, created["id"], {"name": "Bounces", "events": ["message.bounced"], "enabled": False})
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["name"] == "Bounces" and body["events"] == ["message.bounced"] and body["enabled"] is False
    assert body["url"] == URL and body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]
    assert api.get(f"{WEBHOOKS}/{created['id']}").body == body

    # null and absent fields are unchanged
    again = patch(api, created["id"], {"name": None, "url": "https://other.example.com/h"}).body
    assert again["name"] == "Bounces" and again["url"] == "https://other.example.com/h"
    assert again["events"] == ["message.bounced"] and again["enabled"] is False

    assert_error(patch(api, created["id"], {"events": ["nope"]}), 400, "validation_error", "'nope'")
    assert_error(patch(api, created["id"], {"url": "gopher://x.example.com"}), 400, "validation_error")
    assert_error(patch(api, created["id"], {"secret": "whsec_mine"}), 400, "validation_error")
    assert api.get(f"{WEBHOOKS}/{created['id']}").body == again


def test_scope_transitions(api: ApiClient) -> None:
    hook = create(api)["id"]
    # global -> scoped needs domains in the same request
    assert_error(patch(api, hook, {"scope": "scoped"}), 400, "validation_error", "non-empty domains")
    assert_error(patch(api, hook, {"scope": "scoped", "domains": []}), 400, "validation_error")
    scoped = patch(api, hook, {"scope": "scoped", "domains": ["A.example.com"]}).body
    assert scoped["scope"] == "scoped" and scoped["domains"] == ["a.example.com"]
    # scoped: absent domains are kept, a list replaces them
    assert patch(api, hook, {"name": "n2"}).body["domains"] == ["a.example.com"]
    assert patch(api, hook, {"domains": ["b.example.com"]}).body["domains"] == ["b.example.com"]
    # -> global clears them and ignores those given
    glob = patch(api, hook, {"scope": "global", "domains": ["c.example.com"]}).body
    assert glob["scope"] == "global" and glob["domains"] == []
    assert patch(api, hook, {"domains": ["d.example.com"]}).body["domains"] == []


def test_re_enabling_clears_the_error_streak_and_the_reason(
    api: ApiClient, stores: Backends, account: Account
) -> None:
    hook = create(api)["id"]
    for _ in range(3):
        stores.store.record_webhook_attempt(account.id, hook, False, time.time(), disable_after=3)
    disabled = api.get(f"{WEBHOOKS}/{hook}").body
    assert disabled["enabled"] is False and disabled["errors_since_last_success"] == 3
    assert disabled["disabled_reason"] and disabled["error_count"] == 3 and disabled["last_request_at"]
    # a change that does not enable it keeps the streak
    assert patch(api, hook, {"name": "still off"}).body["errors_since_last_success"] == 3
    enabled = patch(api, hook, {"enabled": True}).body
    assert enabled["enabled"] is True and enabled["errors_since_last_success"] == 0
    assert enabled["disabled_reason"] is None and enabled["error_count"] == 3  # the total stays


# -- delete and isolation ------------------------------------------------------------------------------


def test_delete(api: ApiClient) -> None:
    hook = create(api)["id"]
    reply = api.delete(f"{WEBHOOKS}/{hook}")
    assert reply.status == 204 and reply.body is None
    assert_error(api.get(f"{WEBHOOKS}/{hook}"), 404, "not_found")
    assert_error(api.delete(f"{WEBHOOKS}/{hook}"), 404, "not_found")
    assert api.get(WEBHOOKS).body["data"] == []


def test_another_accounts_webhook_is_not_found(
    api: ApiClient, api_handler: Any, new_account: Any, stores: Backends, account: Account
) -> None:
    hook = create(api)["id"]
    delivery = seed_delivery(stores, account, hook)
    other = ApiClient(api_handler, new_account().key)
    assert other.get(WEBHOOKS).body["data"] == []
    assert_error(other.get(f"{WEBHOOKS}/{hook}"), 404, "not_found")
    assert_error(patch(other, hook, {"name": "mine now"}), 404, "not_found")
    assert_error(other.delete(f"{WEBHOOKS}/{hook}"), 404, "not_found")
    assert_error(other.get(f"{WEBHOOKS}/{hook}/deliveries"), 404, "not_found")
    assert_error(other.post(f"{WEBHOOKS}/{hook}/deliveries/{delivery.id}/replay"), 404, "not_found")
    assert stores.webhooks is not None and stores.webhooks.depth() == 0
    assert api.get(f"{WEBHOOKS}/{hook}").body["name"] == "Deliveries"


def test_without_a_key_it_is_401(api: ApiClient) -> None:
    assert_error(api.get(WEBHOOKS, key=None), 401, "unauthorized")
    assert_error(api.post(WEBHOOKS, webhook_body(), key=None), 401, "unauthorized")


# -- delivery log and replay ---------------------------------------------------------------------------


def seed_delivery(
    stores: Backends, account: Account, webhook_id: str, created_at: float | None = None, **fields: Any
) -> WebhookDelivery:
    created_at = time.time() if created_at is None else created_at
    payload = {"type": "message.delivered", "timestamp": created_at, "data": {"id": str(uuid.uuid4())}}
    delivery = WebhookDelivery(
        id=f"msg_{uuid.uuid4().hex}",
        account_id=account.id,
        webhook_id=webhook_id,
        event_type="message.delivered",
        payload=json.dumps(payload, separators=(",", ":")),
        created_at=created_at,
        updated_at=created_at,
        **fields,
    )
    stores.store.put_webhook_delivery(delivery)
    return delivery


def test_deliveries_are_listed_newest_first_with_their_attempts(
    api: ApiClient, stores: Backends, account: Account
) -> None:
    hook = create(api)["id"]
    now = time.time()
    old = seed_delivery(
        stores,
        account,
        hook,
        now - 100,
        status="succeeded",
        attempts=[
            {
                "time": now - 100,
                "status_code": 500,
                "error": "HTTP 500",
                "duration_ms": 12.5,
                "replay": False,
            },
            {"time": now - 40, "status_code": 200, "error": None, "duration_ms": 8, "replay": False},
        ],
    )
    new = seed_delivery(stores, account, hook, now - 10, status="retrying", next_attempt_at=now + 30)
    seed_delivery(stores, account, hook, now - 50, expires_at=now - 1)  # expired: left out

    reply = api.get(f"{WEBHOOKS}/{hook}/deliveries")
    assert reply.status == 200, reply.body
    data = reply.body["data"]
    assert [d["id"] for d in data] == [new.id, old.id] and reply.body["next_cursor"] is None
    first, second = data[1], data[0]
    assert first["event_type"] == "message.delivered" and first["status"] == "succeeded"
    assert first["payload"] == json.loads(old.payload)
    assert first["next_attempt_at"] is None
    assert [(a["status_code"], a["error"], a["duration_ms"], a["replay"]) for a in first["attempts"]] == [
        (500, "HTTP 500", 12.5, False),
        (200, None, 8, False),
    ]
    assert all(a["time"].endswith("Z") for a in first["attempts"])
    assert second["status"] == "retrying" and second["attempts"] == [] and second["next_attempt_at"]

    page = api.get(f"{WEBHOOKS}/{hook}/deliveries?limit=1").body
    assert [d["id"] for d in page["data"]] == [new.id] and page["next_cursor"] == new.id
    rest = api.get(f"{WEBHOOKS}/{hook}/deliveries?limit=1&after={new.id}").body
    assert [d["id"] for d in rest["data"]] == [old.id] and rest["next_cursor"] is None

    assert_error(api.get(f"{WEBHOOKS}/{uuid.uuid4()}/deliveries"), 404, "not_found")


def test_replay_enqueues_the_delivery_on_the_webhook_queue(
    api: ApiClient, stores: Backends, account: Account
) -> None:
    hook = create(api)["id"]
    delivery = seed_delivery(stores, account, hook, status="failed")
    queue = stores.webhooks
    assert queue is not None
    for received in queue.receive(max_messages=10):  # nothing else is waiting
        queue.ack(received.receipt)

    reply = api.post(f"{WEBHOOKS}/{hook}/deliveries/{delivery.id}/replay")
    assert reply.status == 202, reply.body
    assert reply.body == {"delivery_id": delivery.id, "webhook_id": hook, "status": "queued"}
    [received] = queue.receive(max_messages=10)
    assert received.body == {
        "delivery_id": delivery.id,
        "account_id": account.id,
        "webhook_id": hook,
        "event_type": "message.delivered",
        "payload": delivery.payload,
        "created_at": delivery.created_at,
        "replay": True,
    }
    queue.ack(received.receipt)

    assert_error(api.post(f"{WEBHOOKS}/{hook}/deliveries/msg_unknown/replay"), 404, "not_found")
    assert_error(api.post(f"{WEBHOOKS}/{uuid.uuid4()}/deliveries/{delivery.id}/replay"), 404, "not_found")
    patch(api, hook, {"enabled": False})
    assert_error(
        api.post(f"{WEBHOOKS}/{hook}/deliveries/{delivery.id}/replay"), 409, "conflict", "is disabled"
    )
    assert queue.receive(max_messages=10) == []


def test_replay_without_a_webhook_queue_is_503(api: ApiClient, stores: Backends, account: Account) -> None:
    hook = create(api)["id"]
    delivery = seed_delivery(stores, account, hook)
    # A deployment without a webhook queue (AWS without MAILSAGE_WEBHOOK_QUEUE_URL)
    without_queue = WebhookService(stores.store, None, allow_private=True)
    api.handler.app.dependency_overrides[webhook_service_dep] = lambda **_: without_queue
    error = assert_error(
        api.post(f"{WEBHOOKS}/{hook}/deliveries/{delivery.id}/replay"), 503, "service_unavailable"
    )
    assert error["message"] == "webhook deliveries are not configured in this deployment"
