"""The AhaSend-compatible webhook endpoints (`/v2/accounts/{account_id}/webhooks[/{webhook_id}]`):
every reply, successful or not, validates against the vendored AhaSend contract (the client of
test_ahasend_contract.py checks each one), and the behaviour the contract describes: `on_*` flags and
their filters, cursors both ways, partial updates and scope transitions, the secret shown once, and
MailSage's job.* subscriptions of a v1 webhook kept across a v2 update."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mailsage.domain.models import EVENT_FLAGS
from tests.conftest import Account, ApiClient
from tests.contract.test_ahasend_contract import CHECKED, ContractClient, expect

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


def test_every_webhook_operation_was_checked_with_success_and_errors(request: pytest.FixtureRequest) -> None:
    selected = {item.name.split("[")[0] for item in request.session.items if item.path == request.path}
    if selected != {name for name in globals() if name.startswith("test_")}:
        pytest.skip("only part of this module ran")
    for operation, expected in sorted(OPERATIONS.items()):
        statuses = {status for method, path, status in CHECKED if (method, path) == operation}
        assert expected <= statuses, f"{operation}: checked {sorted(statuses)}, expected {sorted(expected)}"
