"""API keys: every v1 route needs a valid Bearer key, a 401 is answered before the body is looked at,
keys are stored only hashed, and one account never sees another's jobs or templates."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply

SEND = "/api/v1/emails/send"
BATCH = "/api/v1/emails/batch"
TEMPLATES = "/api/v1/templates"

SEND_BODY = {
    "recipient": {"email": "user@example.com", "variables": {"name": "User"}},
    "subject": "Hello {{ name }}",
    "body": "Dear {{ name }}.",
}
TEMPLATE_BODY = {"name": "welcome", "subject": "Welcome {{ name }}", "text": "Hello {{ name }}"}


@pytest.fixture
def anon(api_handler: Any) -> ApiClient:
    """A client that sends no Authorization header unless a test gives one."""
    return ApiClient(api_handler, None)


def assert_unauthorized(reply: Reply) -> dict[str, Any]:
    assert reply.status == 401, reply.body
    error = reply.error
    assert error["code"] == "unauthorized", error
    assert reply.headers.get("www-authenticate") == "Bearer"
    return error


ROUTES = [
    ("POST", SEND, SEND_BODY),
    ("POST", BATCH, {**SEND_BODY, "recipients": [SEND_BODY["recipient"]], "recipient": None}),
    ("GET", "/api/v1/emails/jobs/job_1", None),
    ("POST", "/api/v1/emails/jobs/job_1/control", {"action": "pause"}),
    ("GET", TEMPLATES, None),
    ("POST", TEMPLATES, TEMPLATE_BODY),
    ("GET", f"{TEMPLATES}/tpl_1", None),
    ("PUT", f"{TEMPLATES}/tpl_1", TEMPLATE_BODY),
    ("DELETE", f"{TEMPLATES}/tpl_1", None),
    ("POST", f"{TEMPLATES}/tpl_1/preview", {"variables": {}}),
]


def _clean(body: Any) -> Any:
    return {k: v for k, v in body.items() if v is not None} if isinstance(body, dict) else body


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_no_authorization_header_is_401_with_www_authenticate(
    anon: ApiClient, stores: Backends, method: str, path: str, body: Any
) -> None:
    # Given a request without an Authorization header
    # When it is made
    reply = anon.request(method, path, _clean(body), key=None)
    # Then it is 401, asking for a Bearer key, and nothing happened
    error = assert_unauthorized(reply)
    assert "Bearer" in error["message"]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Basic x", "Token {key}", "{key}", "Bearer", "Bearer ", "Bearer: {key}", ""],
    ids=[
        "basic",
        "basic-x",
        "token-scheme",
        "no-scheme",
        "bearer-alone",
        "bearer-space",
        "bearer-colon",
        "empty",
    ],
)
def test_wrong_scheme_or_malformed_header_is_401(
    anon: ApiClient, account: Account, stores: Backends, authorization: str
) -> None:
    # Given an Authorization header that is not `Bearer <key>` (even if it holds the right key)
    header = authorization.format(key=account.key)
    # When a send is made with it
    reply = anon.post(SEND, SEND_BODY, key=None, headers={"Authorization": header})
    # Then it is 401, saying what is expected
    error = assert_unauthorized(reply)
    assert "malformed" in error["message"] and "Bearer <api key>" in error["message"]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize(
    "wrong",
    ["ms_not-a-real-key", "not-even-prefixed", "{key}x", "{key_without_last}", "{hash}", "{key_id}"],
    ids=["random", "unprefixed", "key-plus-char", "key-minus-char", "the-stored-hash", "the-key-id"],
)
def test_wrong_key_is_401(anon: ApiClient, account: Account, stores: Backends, wrong: str) -> None:
    digest = hashlib.sha256(account.key.encode()).hexdigest()
    key = wrong.format(key=account.key, key_without_last=account.key[:-1], hash=digest, key_id=digest[:16])
    reply = anon.post(SEND, SEND_BODY, key=key)
    error = assert_unauthorized(reply)
    assert error["message"] == "invalid API key"
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(anon: ApiClient, account: Account, scheme: str) -> None:
    reply = anon.post(SEND, SEND_BODY, key=None, headers={"Authorization": f"{scheme} {account.key}"})
    assert reply.status == 202, reply.body


@pytest.mark.parametrize(
    ("path", "raw_body"),
    [
        (SEND, '{"bad'),
        (BATCH, '{"bad'),
        (SEND, "[]"),
        (SEND, '{"tempalte_id": "x"}'),
        (BATCH, '{"recipients": []}'),
        (TEMPLATES, '{"name": ""}'),
        ("/api/v1/emails/jobs/job_1/control", '{"action": "explode"}'),
    ],
    ids=[
        "send-not-json",
        "batch-not-json",
        "send-array",
        "send-unknown-field",
        "batch-empty",
        "template",
        "control",
    ],
)
@pytest.mark.parametrize("key", [None, "ms_wrong"], ids=["no-key", "wrong-key"])
def test_401_wins_over_an_invalid_body(anon: ApiClient, path: str, raw_body: str, key: str | None) -> None:
    # Given an unauthenticated request whose body is also invalid
    # When it is made
    reply = anon.post(path, raw_body=raw_body, key=key)
    # Then it is 401, not 400: the body of an unauthenticated caller is not looked at
    assert_unauthorized(reply)


def test_401_wins_over_an_invalid_query(anon: ApiClient) -> None:
    reply = anon.get(f"{TEMPLATES}?limit=0", key=None)
    assert_unauthorized(reply)


def test_key_is_stored_only_hashed(api: ApiClient, account: Account, data_dir: Path) -> None:
    # Given an account whose key has just been used
    assert api.post(SEND, SEND_BODY).status == 202
    # When the database is read directly
    db_path = data_dir / "mailsage.db"
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
        hashes = conn.execute("SELECT key_hash FROM api_keys WHERE account_id = ?", (account.id,)).fetchall()
        dump = "\n".join(conn.iterdump())
    # Then the key appears nowhere in the api_keys table, only its SHA-256
    assert rows
    secret = account.key.removeprefix("ms_")
    for row in rows:
        for value in row:
            assert account.key not in str(value)
            assert secret not in str(value)
    assert hashes == [(hashlib.sha256(account.key.encode()).hexdigest(),)]
    # nor anywhere else in the database, its WAL or journal
    assert secret not in dump
    for path in data_dir.glob("mailsage.db*"):
        assert secret.encode() not in path.read_bytes(), path


# -- isolation between accounts ----------------------------------------------------------------


@pytest.fixture
def other(api_handler: Any, new_account: Callable[[], Account]) -> ApiClient:
    """Account B: the same handler and database, its own key."""
    return ApiClient(api_handler, new_account().key)


@pytest.fixture
def a_job(api: ApiClient) -> str:
    reply = api.post(
        BATCH,
        {**{k: v for k, v in SEND_BODY.items() if k != "recipient"}, "recipients": [SEND_BODY["recipient"]]},
    )
    assert reply.status == 202, reply.body
    return reply.body["job_id"]


@pytest.fixture
def a_template(api: ApiClient) -> dict[str, Any]:
    reply = api.post(TEMPLATES, TEMPLATE_BODY)
    assert reply.status == 201, reply.body
    return reply.body


def assert_not_found(reply: Reply, resource_id: str) -> None:
    assert reply.status == 404, reply.body
    assert reply.error["code"] == "not_found"
    assert resource_id in reply.error["message"]


def test_other_account_cannot_read_a_job(api: ApiClient, other: ApiClient, a_job: str) -> None:
    # Given account A's job
    # When account B asks for it
    reply = other.get(f"/api/v1/emails/jobs/{a_job}")
    # Then it does not exist for B, and A still sees it
    assert_not_found(reply, a_job)
    assert api.get(f"/api/v1/emails/jobs/{a_job}").status == 200


@pytest.mark.parametrize("action", ["pause", "resume", "stop"])
def test_other_account_cannot_control_a_job(
    api: ApiClient, other: ApiClient, a_job: str, action: str
) -> None:
    # Given account A's queued job
    # When account B tries to control it
    reply = other.post(f"/api/v1/emails/jobs/{a_job}/control", {"action": action})
    # Then it is 404 (not 409, which would confirm the job exists), and A's job is untouched
    assert_not_found(reply, a_job)
    assert api.get(f"/api/v1/emails/jobs/{a_job}").body["state"] == "queued"


def test_other_account_cannot_read_a_template(other: ApiClient, a_template: dict[str, Any]) -> None:
    tid = a_template["template_id"]
    assert_not_found(other.get(f"{TEMPLATES}/{tid}"), tid)


def test_other_account_cannot_update_a_template(
    api: ApiClient, other: ApiClient, a_template: dict[str, Any]
) -> None:
    # Given account A's template
    tid = a_template["template_id"]
    # When account B tries to replace it
    reply = other.put(f"{TEMPLATES}/{tid}", {**TEMPLATE_BODY, "name": "hijacked", "text": "pwned"})
    # Then it is 404 and A's template is unchanged
    assert_not_found(reply, tid)
    assert api.get(f"{TEMPLATES}/{tid}").body == a_template


def test_other_account_cannot_delete_a_template(
    api: ApiClient, other: ApiClient, a_template: dict[str, Any]
) -> None:
    tid = a_template["template_id"]
    reply = other.delete(f"{TEMPLATES}/{tid}")
    assert_not_found(reply, tid)
    assert api.get(f"{TEMPLATES}/{tid}").body == a_template


def test_other_account_cannot_preview_a_template(other: ApiClient, a_template: dict[str, Any]) -> None:
    tid = a_template["template_id"]
    reply = other.post(f"{TEMPLATES}/{tid}/preview", {"variables": {"name": "x"}})
    assert_not_found(reply, tid)


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_other_account_cannot_send_with_a_template(
    other: ApiClient, stores: Backends, a_template: dict[str, Any], path: str
) -> None:
    # Given account A's template
    tid = a_template["template_id"]
    recipient = {"email": "b@example.com", "variables": {"name": "B"}}
    body: dict[str, Any] = {"template_id": tid}
    body |= {"recipient": recipient} if path == SEND else {"recipients": [recipient]}
    # When account B sends with its id
    reply = other.post(path, body)
    # Then the template does not exist for B, and nothing is enqueued
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "template_error"
    assert tid in reply.error["message"] and "does not exist" in reply.error["message"]
    assert stores.queue.depth() == 0


def test_template_lists_are_per_account(api: ApiClient, other: ApiClient, a_template: dict[str, Any]) -> None:
    # Given a template for A and one for B
    b_template = other.post(TEMPLATES, {**TEMPLATE_BODY, "name": "b"}).body
    # When each lists its templates
    a_list = api.get(TEMPLATES).body["data"]
    b_list = other.get(TEMPLATES).body["data"]
    # Then each sees only its own
    assert [t["template_id"] for t in a_list] == [a_template["template_id"]]
    assert [t["template_id"] for t in b_list] == [b_template["template_id"]]


def test_template_ids_do_not_collide_across_accounts(
    api: ApiClient, other: ApiClient, a_template: dict[str, Any]
) -> None:
    b_template = other.post(TEMPLATES, TEMPLATE_BODY).body
    assert b_template["template_id"] != a_template["template_id"]
    assert api.get(f"{TEMPLATES}/{b_template['template_id']}").status == 404


def test_an_allowed_origin_gets_cors_headers(
    monkeypatch: pytest.MonkeyPatch, data_dir: Any, account: Account
) -> None:
    from mailsage.local.functions import load_handler

    monkeypatch.setenv("MAILSAGE_ALLOWED_ORIGINS", '["https://app.example.com"]')
    api = ApiClient(load_handler("api"), account.key)
    allowed = api.post(SEND, SEND_BODY, headers={"Origin": "https://app.example.com"})
    other = api.post(SEND, SEND_BODY, headers={"Origin": "https://evil.example.com"})
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example.com"
    assert "access-control-allow-origin" not in other.headers
