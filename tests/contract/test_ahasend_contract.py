"""Every reply of the AhaSend v2-compatible surface, successful or not, validates against the
response schema the AhaSend contract (`tests/contract/specs/ahasend-openapi.yaml`) gives for its path,
method and status; a status the contract does not list for the operation is a failure.

The real api handler is driven in-process with the canonical v2 sample event
(`events/api_v2_create_message.json`), and messages go through the real sender handler, so the
listed statuses are the ones the pipeline produces. `format` (date-time, uuid, email) is checked,
but for the recipient echoed by a create-message `error` entry (see `_echoed_bad_address`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mailsage.domain.models import Account as AccountSettings
from mailsage.domain.models import Suppression
from mailsage.local.functions import LocalContext
from mailsage.wiring import Backends
from tests.conftest import ROOT, Account, ApiClient, Reply, Worker, load_event

SPEC = Path(
    # A copy of AhaSend's published contract is kept in the repository, so these tests always run.
    os.environ.get("MAILSAGE_AHASEND_SPEC", ROOT / "tests" / "contract" / "specs" / "ahasend-openapi.yaml")
)
if not SPEC.exists():
    pytest.skip(f"the AhaSend contract is not at {SPEC} (set MAILSAGE_AHASEND_SPEC)", allow_module_level=True)

SPEC_URI = "urn:ahasend:openapi"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="

# The operations this surface implements: (method, contract path) -> the statuses checked here.
MESSAGES, SUPPRESSIONS = "/v2/accounts/{account_id}/messages", "/v2/accounts/{account_id}/suppressions"
OPERATIONS: dict[tuple[str, str], set[int]] = {
    ("GET", "/v2/ping"): {200, 401},
    ("POST", MESSAGES): {202, 400, 401, 403, 422},
    ("GET", MESSAGES): {200, 400, 401, 403},
    ("GET", f"{MESSAGES}/{{message_id}}"): {200, 401, 403, 404},
    ("DELETE", f"{MESSAGES}/{{message_id}}/cancel"): {200, 400, 401, 403, 404},
    ("GET", SUPPRESSIONS): {200, 400, 401, 403},
    ("POST", SUPPRESSIONS): {201, 400, 401, 403, 409},
    ("DELETE", SUPPRESSIONS): {200, 400, 401, 403, 404},
    ("DELETE", f"{SUPPRESSIONS}/all"): {200, 400, 401, 403},
}


# -- the contract ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def contract() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(contract(), DRAFT202012))


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z"))  # raises (invalid) for 2023-02-30
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@FORMATS.checks("email")
def _email(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value) is not None


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def operation_path(path: str) -> str | None:
    """The contract path a request path is an instance of (literal segments win over parameters)."""
    best: tuple[int, str] | None = None
    for template in contract()["paths"]:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            literals = sum(1 for s in template.split("/") if s and not s.startswith("{"))
            if best is None or literals > best[0]:
                best = (literals, template)
    return best[1] if best else None


def check_against_contract(method: str, path: str, reply: Reply) -> tuple[str, str, int]:
    """Validate `reply` against the contract's response for the operation; (method, path, status)."""
    template = operation_path(path)
    assert template is not None, f"{path} is not a path of the contract"
    operation = contract()["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not an operation of the contract"
    responses = operation["responses"]
    status = str(reply.status)
    assert status in responses, (
        f"{method} {template} answered {status}, which the contract does not list"
        f" ({', '.join(responses)}): {reply.body}"
    )
    pointer = _pointer("paths", template, method.lower(), "responses", status)
    response = responses[status]
    if "$ref" in response:  # a shared response (#/components/responses/...)
        pointer = response["$ref"].removeprefix("#")
        response = contract()
        for part in pointer.strip("/").split("/"):
            response = response[part.replace("~1", "/").replace("~0", "~")]
    content = response.get("content", {})
    if "application/json" not in content:
        assert reply.body is None, f"{method} {template} {status} has no body in the contract"
        return method, template, reply.status
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    schema = {"$ref": f"{SPEC_URI}#{pointer}/content/application~1json/schema"}
    validator = jsonschema.Draft202012Validator(schema, registry=registry(), format_checker=FORMATS)
    problems = sorted(
        (e for e in validator.iter_errors(reply.body) if not _echoed_bad_address(e, reply.body)),
        key=lambda e: list(e.absolute_path),
    )
    assert not problems, f"{method} {template} {status}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in problems[:5]
    )
    return method, template, reply.status


def _echoed_bad_address(error: jsonschema.ValidationError, body: Any) -> bool:
    """The one tolerated `format` miss: a create-message `error` entry echoes, as it was given, the
    recipient address it could not use (format is an annotation in JSON Schema 2020-12; asserting
    it here everywhere else is stricter than the contract)."""
    path = list(error.absolute_path)
    if (
        error.validator != "format"
        or len(path) != 4
        or path[0] != "data"
        or path[2:] != ["recipient", "email"]
    ):
        return False
    return bool(body["data"][path[1]]["status"] == "error")


# -- a client that checks every reply -----------------------------------------------------------------

CHECKED: set[tuple[str, str, int]] = set()  # (method, contract path, status) seen in this module


class ContractClient(ApiClient):
    """The shared client on the canonical v2 event, validating each reply against the contract."""

    sample = "api_v2_create_message.json"

    def __init__(self, handler: Any, account: Account) -> None:
        super().__init__(handler, account.key)
        self.account = account

    @property
    def base(self) -> str:
        return f"/v2/accounts/{self.account.id}"

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
        reply = super().request(method, path, body, **kw)
        CHECKED.add(check_against_contract(method, path.partition("?")[0], reply))
        return reply


@pytest.fixture
def v2(api_handler: Any, account: Account) -> ContractClient:
    return ContractClient(api_handler, account)


@pytest.fixture
def other(api_handler: Any, new_account: Any) -> ContractClient:
    return ContractClient(api_handler, new_account())


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def message(*emails: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "hello@example.com", "name": "Example"},
        "recipients": [
            {"email": e, "name": f"User {i}", "substitutions": {"n": i}} for i, e in enumerate(emails)
        ],
        "subject": "Hello {{ n }}",
        "text_content": "Number {{ n }}",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def bare(message_id: str) -> str:
    return message_id.strip("<>").partition("@")[0]


def expect(reply: Reply, status: int, fragment: str = "") -> Reply:
    assert reply.status == status, reply.body
    if status >= 400:
        assert set(reply.body) == {"message"} and fragment.lower() in reply.body["message"].lower(), (
            reply.body
        )
    return reply


# -- ping -----------------------------------------------------------------------------------------------


def test_ping(v2: ContractClient) -> None:
    assert expect(v2.get("/v2/ping"), 200).body == {"message": "pong"}
    expect(v2.get("/v2/ping", key=None), 401, "authorization")
    expect(v2.get("/v2/ping", key="ms_not_a_key"), 401, "invalid API key")


# -- create message ------------------------------------------------------------------------------------


def test_create_message_replies(v2: ContractClient, stores: Backends) -> None:
    # One recipient, no name: the reply's recipient still has one (the contract requires it).
    [entry] = expect(v2.post(f"{v2.base}/messages", message("a@example.com")), 202).body["data"]
    assert entry["status"] == "queued" and entry["error"] is None and "schedule" not in entry
    assert re.fullmatch(r"<[0-9a-f-]{36}@example\.com>", entry["id"])  # the sender's domain

    # Several recipients: one entry each, in order; bad ones are errors, the others go out.
    stores.store.put_suppression(
        Suppression(
            "sup-1", v2.account.id, "blocked@example.com", None, "test", time.time(), time.time() + 3600
        )
    )
    body = message("b@example.com", "not-an-address", "b@example.com", "blocked@example.com", "c@example.com")
    body["recipients"][4]["substitutions"] = {}  # "n" is undefined for this one: a template error
    entries = expect(v2.post(f"{v2.base}/messages", body), 202).body["data"]
    assert [(e["recipient"]["email"], e["status"]) for e in entries] == [
        ("b@example.com", "queued"),
        ("not-an-address", "error"),
        ("b@example.com", "error"),
        ("blocked@example.com", "error"),
        ("c@example.com", "error"),
    ]
    assert [e["id"] is None for e in entries] == [False, True, True, False, True]
    assert "suppress" in entries[3]["error"]

    # Every recipient failing is still a 202, all errors.
    entries = expect(v2.post(f"{v2.base}/messages", message("x", "y")), 202).body["data"]
    assert [e["status"] for e in entries] == ["error", "error"] and all(e["id"] is None for e in entries)

    # A schedule: scheduled entries echoing it.
    first, until = time.time() + 3600, time.time() + 7200
    schedule = {"first_attempt": rfc3339(first), "expires": rfc3339(until)}
    [entry] = expect(v2.post(f"{v2.base}/messages", message("d@example.com", schedule=schedule)), 202).body[
        "data"
    ]
    assert entry["status"] == "scheduled" and entry["schedule"] == schedule

    # Everything the request can carry.
    full = message(
        "e@example.com",
        reply_to={"email": "support@example.com", "name": "Support"},
        html_content='<p>Hi {{ n }}</p><img src="cid:logo@example.com">',
        amp_content="<!doctype html><html amp4email><body>Hi {{ n }}</body></html>",
        headers={"X-Campaign": "launch", "Message-ID": "<ignored@example.com>"},
        substitutions={"n": "global", "company": "Acme"},
        tags=["launch", "welcome"],
        attachments=[
            {
                "base64": True,
                "data": PNG_B64,
                "content_type": "image/png",
                "file_name": "logo.png",
                "content_id": "<logo@example.com>",
            },
            {"data": "a,b\n1,2\n", "content_type": "text/csv", "file_name": "data.csv"},
        ],
        tracking={"open": True, "click": None},
        retention={"metadata": 30, "data": 7},
        sandbox=True,
        sandbox_result="deliver",
    )
    [entry] = expect(v2.post(f"{v2.base}/messages", full), 202).body["data"]
    assert entry["status"] == "queued"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"from": None}, "from is required"),
        ({"recipients": []}, "recipients"),
        ({"recipients": [{"email": f"u{i}@example.com"} for i in range(101)]}, "recipients"),
        ({"subject": None}, "subject is required"),
        ({"subject": "two\r\nlines"}, "subject"),
        ({"text_content": None}, "text_content or html_content"),
        ({"from": {"email": "not-an-address"}}, "from.email"),
        ({"from": {"email": "a@example.com", "name": "x\ny"}}, "from.name"),
        ({"reply_to": {"email": "nope"}}, "reply_to.email"),
        ({"reply_to": {"email": "r@example.com"}, "headers": {"Reply-To": "x@example.com"}}, "reply_to"),
        ({"headers": {"Subject": "sneaky"}}, "subject"),
        ({"headers": {"Content-Type": "text/plain"}}, "content-type"),
        ({"headers": {"X-Evil": "a\r\nBcc: victim@example.com"}}, "line break"),
        ({"headers": {"Bad Name": "x"}}, "header name"),
        ({"retention": {"metadata": 0}}, "retention.metadata"),
        ({"retention": {"metadata": 31}}, "retention.metadata"),
        ({"retention": {"data": -1}}, "retention.data"),
        ({"retention": {"data": 31}}, "retention.data"),
        ({"schedule": {"first_attempt": "tomorrow"}}, "schedule.first_attempt"),
        ({"schedule": {"first_attempt": "2030-01-01T10:00:00"}}, "schedule.first_attempt"),
        ({"schedule": {"first_attempt": rfc3339(time.time() - 3600)}}, "in the future"),
        ({"schedule": {"first_attempt": rfc3339(time.time() + 8 * 86400)}}, "within 7 days"),
        ({"schedule": {"expires": rfc3339(time.time() + 9 * 86400)}}, "within 8 days"),
        (
            {
                "schedule": {
                    "first_attempt": rfc3339(time.time() + 7200),
                    "expires": rfc3339(time.time() + 3600),
                }
            },
            "after schedule.first_attempt",
        ),
        ({"sandbox": True, "sandbox_result": "explode"}, "sandbox_result"),
        (
            {
                "attachments": [
                    {"base64": True, "data": "!!!", "content_type": "text/plain", "file_name": "a"}
                ]
            },
            "base64",
        ),
        ({"attachments": [{"data": "x", "content_type": "text/plain"}]}, "file_name is required"),
        ({"attachments": [{"data": "x", "content_type": "nonsense", "file_name": "a"}]}, "content_type"),
        (
            {
                "attachments": [
                    {"data": "x", "content_type": "text/plain", "file_name": "a", "content_disposition": "x"}
                ]
            },
            "content_disposition",
        ),
        ({"tags": "not-a-list"}, "tags"),
        ({"subject": "{% if %}"}, "subject"),
    ],
)
def test_create_message_validation_is_400_naming_the_field(
    v2: ContractClient, stores: Backends, change: dict[str, Any], fragment: str
) -> None:
    body = message("a@example.com")
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    expect(v2.post(f"{v2.base}/messages", body), 400, fragment)
    assert stores.queue.depth() == 0


def test_create_message_malformed_bodies_are_400(v2: ContractClient) -> None:
    expect(v2.post(f"{v2.base}/messages", raw_body='{"from": '), 400, "not valid JSON")
    expect(v2.post(f"{v2.base}/messages", raw_body="[]"), 400, "")
    expect(v2.post(f"{v2.base}/messages"), 400, "body is required")
    reply = v2.post(f"{v2.base}/messages", raw_body="x", headers={"Content-Type": "text/plain"})
    expect(reply, 400, "application/json")


def test_attachments_past_the_limit_are_400(
    data_dir: Path, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailsage.local.functions import load_handler

    monkeypatch.setenv("MAILSAGE_MAX_ATTACHMENT_BYTES", "1000")
    v2 = ContractClient(load_handler("api"), account)
    small = {"data": "x" * 600, "content_type": "text/plain", "file_name": "a.txt"}
    expect(v2.post(f"{v2.base}/messages", message("a@example.com", attachments=[small])), 202)
    reply = v2.post(f"{v2.base}/messages", message("a@example.com", attachments=[small, small]))
    expect(reply, 400, "the limit is 1000 bytes")


def test_create_message_auth_and_sender_domains(
    v2: ContractClient, other: ContractClient, stores: Backends
) -> None:
    expect(v2.post(f"{v2.base}/messages", message("a@example.com"), key=None), 401)
    expect(v2.post(f"{v2.base}/messages", message("a@example.com"), key="ms_wrong"), 401, "invalid API key")
    # The key's account is not the path's: 403, whatever the body holds.
    expect(other.post(f"{v2.base}/messages", message("a@example.com")), 403, "account")
    expect(other.post(f"{v2.base}/messages", {"nonsense": True}), 403, "account")
    # Sender domains: only the account's.
    stores.store.put_account(AccountSettings(v2.account.id, sender_domains=["example.com"]))
    expect(v2.post(f"{v2.base}/messages", message("a@example.com")), 202)
    foreign = message("a@example.com", **{"from": {"email": "ceo@elsewhere.example"}})
    expect(v2.post(f"{v2.base}/messages", foreign), 403, "elsewhere.example")
    assert stores.queue.depth() == 1


def test_create_message_idempotency_replies(v2: ContractClient) -> None:
    key = {"Idempotency-Key": "contract-1"}
    first = expect(v2.post(f"{v2.base}/messages", message("a@example.com"), headers=key), 202)
    replay = expect(v2.post(f"{v2.base}/messages", message("a@example.com"), headers=key), 202)
    assert replay.body == first.body and replay.headers.get("idempotent-replayed") == "true"
    expect(v2.post(f"{v2.base}/messages", message("b@example.com"), headers=key), 422, "")


# -- list and get messages ---------------------------------------------------------------------------


@pytest.fixture
def sent(v2: ContractClient, worker: Worker, stores: Backends) -> dict[str, str]:
    """Messages in many states: recipient -> message id."""
    ids: dict[str, str] = {}

    def create(email: str, **fields: Any) -> None:
        [entry] = expect(v2.post(f"{v2.base}/messages", message(email, **fields)), 202).body["data"]
        ids[email] = bare(entry["id"])

    create("smtp@example.com", tags=["real"])
    create(
        "attach@example.com",
        html_content='<img src="cid:logo@x">',
        attachments=[
            {
                "base64": True,
                "data": PNG_B64,
                "content_type": "image/png",
                "file_name": "logo.png",
                "content_id": "<logo@x>",
            },
            {"data": "hello", "content_type": "text/plain", "file_name": "note.txt"},
        ],
    )
    create("purged@example.com", retention={"data": 0, "metadata": 1})
    for outcome in ("deliver", "bounce", "defer", "fail", "suppress"):
        create(f"sandbox-{outcome}@example.com", sandbox=True, sandbox_result=outcome, tags=["sandbox"])
    create("scheduled@example.com", schedule={"first_attempt": rfc3339(time.time() + 3600)})
    create("cancelled@example.com", schedule={"first_attempt": rfc3339(time.time() + 3600)})
    expect(v2.delete(f"{v2.base}/messages/{ids['cancelled@example.com']}/cancel"), 200)
    stores.store.put_suppression(
        Suppression("s", v2.account.id, "blocked@example.com", None, "test", time.time(), time.time() + 3600)
    )
    create("blocked@example.com")
    worker.drain()
    return ids


def test_list_and_get_messages_in_every_state(v2: ContractClient, sent: dict[str, str]) -> None:
    page = expect(v2.get(f"{v2.base}/messages"), 200).body
    statuses = {m["recipient"]: m["status"] for m in page["data"]}
    assert statuses == {
        "smtp@example.com": "Sent",
        "attach@example.com": "Sent",
        "purged@example.com": "Sent",
        "sandbox-deliver@example.com": "Sandbox Delivered",
        "sandbox-bounce@example.com": "Sandbox Bounced",
        "sandbox-defer@example.com": "Sandbox Deferred",
        "sandbox-fail@example.com": "Sandbox Failed",
        "sandbox-suppress@example.com": "Sandbox Suppressed",
        "scheduled@example.com": "Scheduled",
        "cancelled@example.com": "Cancelled",
        "blocked@example.com": "Suppressed",
    }
    assert page["pagination"] == {"has_more": False}

    for email, message_id in sent.items():
        got = expect(v2.get(f"{v2.base}/messages/{message_id}"), 200).body
        assert got["id"] == message_id and got["recipient"] == email
    with_content = v2.get(f"{v2.base}/messages/{sent['attach@example.com']}").body
    parsed = with_content["content_parsed"]
    assert {a["filename"] for a in parsed["attachments"]} == {"logo.png", "note.txt"}
    assert "Message-ID" in parsed["headers"]
    purged = v2.get(f"{v2.base}/messages/{sent['purged@example.com']}").body
    assert "content" not in purged and "content_parsed" not in purged


def test_list_messages_filters_and_pages(v2: ContractClient, sent: dict[str, str]) -> None:
    base = f"{v2.base}/messages"
    sandbox = expect(v2.get(f"{base}?status={quote('Sandbox Delivered,Sandbox Bounced')}"), 200).body["data"]
    assert {m["recipient"] for m in sandbox} == {"sandbox-deliver@example.com", "sandbox-bounce@example.com"}
    assert v2.get(f"{base}?status=Delivered").body["data"] == []
    assert [m["recipient"] for m in v2.get(f"{base}?tags=real").body["data"]] == ["smtp@example.com"]
    header = quote(f"<{sent['smtp@example.com']}@mailsage.local>")
    assert [m["recipient"] for m in v2.get(f"{base}?message_id_header={header}").body["data"]] == [
        "smtp@example.com"
    ]
    assert len(v2.get(f"{base}?sender=hello@example.com&recipient=smtp@example.com").body["data"]) == 1

    first = expect(v2.get(f"{base}?limit=4"), 200).body
    assert len(first["data"]) == 4 and first["pagination"]["has_more"] is True
    assert "previous_cursor" not in first["pagination"]
    second = expect(v2.get(f"{base}?limit=4&after={first['pagination']['next_cursor']}"), 200).body
    assert second["pagination"]["previous_cursor"] == second["data"][0]["id"]
    back = expect(v2.get(f"{base}?limit=4&before={second['pagination']['previous_cursor']}"), 200).body
    assert [m["id"] for m in back["data"]] == [m["id"] for m in first["data"]]
    assert "previous_cursor" not in back["pagination"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("status=Lost", "status"),
        ("from_time=yesterday", "from_time"),
        ("to_time=2024-01-01", "to_time"),
        ("after=a&before=b", "after or before"),
        ("after=00000000-0000-4000-8000-000000000000", "after"),
        ("tags=" + ",".join(f"t{i}" for i in range(21)), "tags"),
    ],
)
def test_list_messages_bad_queries_are_400(v2: ContractClient, query: str, fragment: str) -> None:
    expect(v2.get(f"{v2.base}/messages?{query}"), 400, fragment)


def test_messages_auth_and_not_found(v2: ContractClient, other: ContractClient) -> None:
    [entry] = v2.post(f"{v2.base}/messages", message("a@example.com")).body["data"]
    for method, path in (
        ("GET", f"{v2.base}/messages"),
        ("GET", f"{v2.base}/messages/{bare(entry['id'])}"),
        ("DELETE", f"{v2.base}/messages/{bare(entry['id'])}/cancel"),
    ):
        expect(v2.request(method, path, key=None), 401)
        expect(other.request(method, path), 403, "account")
    # Another account's message under its own path: not found, as an unknown id.
    expect(other.get(f"{other.base}/messages/{bare(entry['id'])}"), 404, "not found")
    expect(v2.get(f"{v2.base}/messages/{uuid.uuid4()}"), 404, "not found")
    expect(v2.delete(f"{v2.base}/messages/{uuid.uuid4()}/cancel"), 404, "not found")


def test_cancel_replies(v2: ContractClient) -> None:
    later = {"first_attempt": rfc3339(time.time() + 3600)}
    [entry] = v2.post(f"{v2.base}/messages", message("a@example.com", schedule=later)).body["data"]
    expect(v2.delete(f"{v2.base}/messages/{quote(entry['id'])}/cancel"), 200)
    expect(v2.delete(f"{v2.base}/messages/{bare(entry['id'])}/cancel"), 400, "Cancelled")
    [now] = v2.post(f"{v2.base}/messages", message("b@example.com")).body["data"]
    expect(v2.delete(f"{v2.base}/messages/{bare(now['id'])}/cancel"), 400, "only a scheduled message")


# -- suppressions --------------------------------------------------------------------------------------


def test_suppression_replies(v2: ContractClient, other: ContractClient) -> None:
    base = f"{v2.base}/suppressions"
    later = rfc3339(time.time() + 86400)
    created = expect(v2.post(base, {"email": "a@example.com", "expires_at": later}), 201).body["data"]
    assert created[0]["domain"] == "" and created[0]["email"] == "a@example.com"
    scoped = {
        "email": "a@example.com",
        "domain": "news.example.com",
        "reason": "bounced",
        "expires_at": later,
    }
    expect(v2.post(base, scoped), 201)
    expect(v2.post(base, scoped), 409, "already suppressed")
    for i in range(3):
        expect(v2.post(base, {"email": f"u{i}@example.com", "expires_at": later}), 201)

    listed = expect(v2.get(base), 200).body
    assert len(listed["data"]) == 5 and listed["pagination"] == {"has_more": False}
    assert len(expect(v2.get(f"{base}?email=a@example.com"), 200).body["data"]) == 2
    assert len(expect(v2.get(f"{base}?domain=news.example.com"), 200).body["data"]) == 1
    page = expect(v2.get(f"{base}?limit=2"), 200).body
    following = expect(v2.get(f"{base}?limit=2&after={page['pagination']['next_cursor']}"), 200).body
    back = expect(v2.get(f"{base}?limit=2&before={following['pagination']['previous_cursor']}"), 200).body
    assert back["data"] == page["data"]

    expect(v2.delete(f"{base}?email=a@example.com&domain=news.example.com"), 200)
    expect(v2.delete(f"{base}?email=a@example.com&domain=news.example.com"), 404, "no suppression")
    expect(v2.delete(base), 400, "email is required")
    expect(v2.delete(f"{base}/all?domain=news.example.com"), 200)
    expect(v2.delete(f"{base}/all?domain={quote('not a domain')}"), 400, "domain")
    assert expect(v2.delete(f"{base}/all"), 200).body == {"message": "deleted 4 suppressions"}

    for method, path, body in (
        ("GET", base, None),
        ("POST", base, {"email": "a@example.com", "expires_at": later}),
        ("DELETE", f"{base}?email=a@example.com", None),
        ("DELETE", f"{base}/all", None),
    ):
        expect(v2.request(method, path, body, key=None), 401)
        expect(other.request(method, path, body), 403, "account")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"email": "nope", "expires_at": "2099-01-01T00:00:00Z"}, "email"),
        ({"email": "a@example.com"}, "expires_at is required"),
        ({"email": "a@example.com", "expires_at": "next week"}, "expires_at"),
        ({"email": "a@example.com", "expires_at": "2001-01-01T00:00:00Z"}, "in the future"),
        (
            {"email": "a@example.com", "expires_at": "2099-01-01T00:00:00Z", "domain": "not a domain"},
            "domain",
        ),
        ({"email": "a@example.com", "expires_at": "2099-01-01T00:00:00Z", "reason": "x" * 256}, "reason"),
    ],
)
def test_create_suppression_validation_is_400(
    v2: ContractClient, body: dict[str, Any], fragment: str
) -> None:
    expect(v2.post(f"{v2.base}/suppressions", body), 400, fragment)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=0", "limit"),
        ("from_time=x", "from_time"),
        ("after=a&before=b", "after or before"),
        ("before=zz", "before"),
    ],
)
def test_list_suppressions_bad_queries_are_400(v2: ContractClient, query: str, fragment: str) -> None:
    expect(v2.get(f"{v2.base}/suppressions?{query}"), 400, fragment)


# -- the whole surface was checked ------------------------------------------------------------------------


def test_the_canonical_v2_sample_event_is_a_valid_create_message(
    api_handler: Any, data_dir: Path, stores: Backends
) -> None:
    from mailsage.domain.auth import AuthService

    event = load_event("api_v2_create_message.json")
    account_id = event["path"].split("/")[3]
    AuthService(stores.store).register_key(account_id, event["headers"]["Authorization"].split()[-1])
    result = api_handler.lambda_handler(copy.deepcopy(event), LocalContext("mailsage-api"))
    reply = Reply(result["statusCode"], json.loads(result["body"]), {"content-type": "application/json"})
    check_against_contract("POST", event["path"], reply)
    assert [e["status"] for e in reply.body["data"]] == ["queued", "queued"]


def test_every_operation_was_checked_with_success_and_errors(request: pytest.FixtureRequest) -> None:
    selected = {item.name.split("[")[0] for item in request.session.items if item.path == request.path}
    if selected != {name for name in globals() if name.startswith("test_")}:
        pytest.skip("only part of this module ran")
    for operation, expected in sorted(OPERATIONS.items()):
        statuses = {status for method, path, status in CHECKED if (method, path) == operation}
        assert expected <= statuses, f"{operation}: checked {sorted(statuses)}, expected {sorted(expected)}"
