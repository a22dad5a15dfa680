"""Every way a request to /api/v1/emails can be wrong gets the v1 error envelope with the right
status and code, never a 500, and a rejected request enqueues nothing."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from mailsage.local.functions import LocalContext, load_handler
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply, load_event

SEND = "/api/v1/emails/send"
BATCH = "/api/v1/emails/batch"


def send_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipient": {"email": "user@example.com", "name": "User", "variables": {"name": "User"}},
        "subject": "Hello {{ name }}",
        "body": "Dear {{ name }}.",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def batch_body(recipients: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipients": recipients
        if recipients is not None
        else [{"email": f"user{i}@example.com", "variables": {"name": f"User {i}"}} for i in range(3)],
        "subject": "Hello {{ name }}",
        "body": "Dear {{ name }}.",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def fields(reply: Reply) -> set[str]:
    """The field paths named by a validation error's details."""
    details = reply.error.get("details")
    assert isinstance(details, list), reply.body
    return {d["field"] for d in details}


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    error = reply.error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "details"}
    return error


@pytest.fixture
def limited_api(data_dir: Path, account: Account, monkeypatch: pytest.MonkeyPatch) -> ApiClient:
    """An api handler cold-started with small limits (settings are read at cold start)."""
    monkeypatch.setenv("MAILSAGE_MAX_BATCH_RECIPIENTS", "5")
    monkeypatch.setenv("MAILSAGE_MAX_REQUEST_BYTES", "2048")
    return ApiClient(load_handler("api"), account.key)


# -- the body is not a JSON object -------------------------------------------------------------


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_malformed_json_is_a_validation_error(api: ApiClient, stores: Backends, path: str) -> None:
    # Given a body that is not JSON
    # When it is posted
    reply = api.post(path, raw_body='{"bad')
    # Then it is 400 validation_error saying so, and nothing was enqueued
    error = assert_error(reply, 400, "validation_error")
    assert "not valid JSON" in error["message"]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize("raw", ["[]", '[{"email": "a@example.com"}]', '"a string"', "42", "null"])
def test_body_that_is_not_an_object_is_a_validation_error(api: ApiClient, path: str, raw: str) -> None:
    reply = api.post(path, raw_body=raw)
    assert_error(reply, 400, "validation_error")


# -- shape: types, missing and unknown fields --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (SEND, send_body(subject=5), "subject"),
        (SEND, send_body(body=["text"]), "body"),
        (SEND, send_body(recipient="user@example.com"), "recipient"),
        (SEND, send_body(recipient={"email": "user@example.com", "variables": [1]}), "recipient.variables"),
        (SEND, send_body(recipient={"email": 7}), "recipient.email"),
        (BATCH, batch_body(recipients="x"), "recipients"),
        (BATCH, batch_body([{"email": "a@example.com", "variables": [1]}]), "recipients.0.variables"),
        (BATCH, batch_body(validation="paranoid"), "validation"),
    ],
    ids=[
        "subject-int",
        "body-list",
        "recipient-str",
        "recipient-variables-list",
        "recipient-email-int",
        "recipients-str",
        "recipients-0-variables-list",
        "validation-unknown",
    ],
)
def test_wrong_types_name_the_field(api: ApiClient, path: str, body: dict[str, Any], field: str) -> None:
    # Given a body with one field of the wrong type
    # When it is posted
    reply = api.post(path, body)
    # Then the error names that field's path
    assert_error(reply, 400, "validation_error")
    assert field in fields(reply), reply.body


def test_missing_recipient_is_named(api: ApiClient) -> None:
    reply = api.post(SEND, send_body(recipient=None))
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"recipient"}
    assert reply.error["details"][0]["type"] == "missing"


def test_missing_recipients_is_named(api: ApiClient) -> None:
    body = batch_body()
    del body["recipients"]
    reply = api.post(BATCH, body)
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"recipients"}


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_missing_content_is_a_validation_error(api: ApiClient, stores: Backends, path: str) -> None:
    # Given a subject but no body, html or template_id
    body = send_body() if path == SEND else batch_body()
    del body["body"]
    # When it is posted
    reply = api.post(path, body)
    # Then it asks for the content
    error = assert_error(reply, 400, "validation_error")
    assert "body" in error["message"] and "template_id" in error["message"]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_missing_subject_without_template_is_a_validation_error(api: ApiClient, path: str) -> None:
    body = send_body() if path == SEND else batch_body()
    del body["subject"]
    reply = api.post(path, body)
    error = assert_error(reply, 400, "validation_error")
    assert "subject" in error["message"]
    assert error["details"] == {"field": "subject"}


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_empty_subject_is_a_validation_error(api: ApiClient, path: str) -> None:
    body = send_body(subject="") if path == SEND else batch_body(subject="")
    reply = api.post(path, body)
    assert_error(reply, 400, "validation_error")
    assert "subject" in fields(reply)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (SEND, send_body(tempalte_id="tpl_1"), "tempalte_id"),
        (BATCH, batch_body(tempalte_id="tpl_1"), "tempalte_id"),
        (SEND, send_body(recipient={"email": "user@example.com", "nmae": "x"}), "recipient.nmae"),
        (BATCH, batch_body([{"email": "a@example.com", "vars": {}}]), "recipients.0.vars"),
    ],
    ids=["send-top", "batch-top", "send-recipient", "batch-recipient"],
)
def test_unknown_fields_are_rejected(api: ApiClient, path: str, body: dict[str, Any], field: str) -> None:
    # Given a typo in a field name
    # When it is posted
    reply = api.post(path, body)
    # Then it is rejected rather than silently ignored
    assert_error(reply, 400, "validation_error")
    assert field in fields(reply)
    assert any(d["type"] == "extra_forbidden" for d in reply.error["details"])


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize("content", [{"body": "text"}, {"html": "<p>html</p>"}])
def test_template_id_and_inline_content_together_is_a_validation_error(
    api: ApiClient, path: str, content: dict[str, str]
) -> None:
    created = api.post("/api/v1/templates", {"name": "t", "subject": "s", "text": "t"})
    body = (send_body() if path == SEND else batch_body()) | {"template_id": created.body["template_id"]}
    body.pop("body")
    body.update(content)
    reply = api.post(path, body)
    error = assert_error(reply, 400, "validation_error")
    assert "template_id" in error["message"] and "not both" in error["message"]


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_unknown_template_id_is_a_template_error(api: ApiClient, stores: Backends, path: str) -> None:
    body = send_body(template_id="tpl_missing", body=None, subject=None)
    if path == BATCH:
        body = batch_body(template_id="tpl_missing", body=None, subject=None)
    reply = api.post(path, body)
    error = assert_error(reply, 400, "template_error")
    assert "tpl_missing" in error["message"] and "does not exist" in error["message"]
    assert error["details"] == {"field": "template_id"}
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize("template_id", ["has space", "a/b", "x" * 129])
def test_malformed_template_id_is_a_validation_error(api: ApiClient, path: str, template_id: str) -> None:
    body = send_body() if path == SEND else batch_body()
    body.pop("body")
    body["template_id"] = template_id
    reply = api.post(path, body)
    assert_error(reply, 400, "validation_error")
    assert "template_id" in fields(reply)


# -- header injection --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize("subject", ["Hi\r\nBcc: victim@example.com", "Hi\nthere", "Hi\rthere"])
def test_line_break_in_subject_is_a_validation_error(
    api: ApiClient, stores: Backends, path: str, subject: str
) -> None:
    body = send_body(subject=subject) if path == SEND else batch_body(subject=subject)
    reply = api.post(path, body)
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"subject"}
    assert "line break" in reply.error["details"][0]["message"]
    assert stores.queue.depth() == 0


def test_line_break_in_rendered_subject_rejects_the_recipient(api: ApiClient) -> None:
    # Given a subject whose variable brings a line break for one recipient
    recipients = [
        {"email": "a@example.com", "variables": {"name": "A"}},
        {"email": "b@example.com", "variables": {"name": "B\r\nBcc: victim@example.com"}},
    ]
    # When the batch is posted
    reply = api.post(BATCH, batch_body(recipients))
    # Then that recipient is rejected, the other accepted
    assert reply.status == 202, reply.body
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 1 and rejected["code"] == "template_error"
    assert "line break" in rejected["message"]
    assert [m["email"] for m in reply.body["messages"]] == ["a@example.com"]


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.com", "Eve\nX", "Eve\rX"])
def test_line_break_in_recipient_name_on_send_is_invalid_recipient(
    api: ApiClient, stores: Backends, name: str
) -> None:
    reply = api.post(SEND, send_body(recipient={"email": "eve@example.com", "name": name}))
    error = assert_error(reply, 400, "invalid_recipient")
    assert "name" in error["message"] and "line break" in error["message"]
    assert stores.queue.depth() == 0


def test_line_break_in_recipient_name_on_batch_rejects_only_that_recipient(api: ApiClient) -> None:
    # Given three recipients, the middle one with a line break in its name
    recipients = [
        {"email": "a@example.com", "name": "A", "variables": {"name": "A"}},
        {"email": "b@example.com", "name": "B\r\nBcc: victim@example.com", "variables": {"name": "B"}},
        {"email": "c@example.com", "name": "C", "variables": {"name": "C"}},
    ]
    # When the batch is posted (lenient by default)
    reply = api.post(BATCH, batch_body(recipients))
    # Then the batch is accepted without it, and the reply says which and why
    assert reply.status == 202, reply.body
    assert reply.body["accepted"] == 2 and reply.body["rejected"] == 1
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 1
    assert rejected["email"] == "b@example.com"
    assert rejected["code"] == "invalid_recipient"
    assert "line break" in rejected["message"]
    assert [(m["index"], m["email"]) for m in reply.body["messages"]] == [
        (0, "a@example.com"),
        (2, "c@example.com"),
    ]


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize("field", ["from", "reply_to"])
def test_line_break_in_from_or_reply_to_is_a_validation_error(
    api: ApiClient, stores: Backends, path: str, field: str
) -> None:
    value = "Acme <noreply@acme.example>\r\nBcc: victim@example.com"
    body = (send_body() if path == SEND else batch_body()) | {field: value}
    reply = api.post(path, body)
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {field}
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("field", ["from", "reply_to"])
def test_invalid_from_or_reply_to_address_is_a_validation_error(api: ApiClient, field: str) -> None:
    reply = api.post(SEND, send_body(**{field: "Acme <not-an-address>"}))
    error = assert_error(reply, 400, "validation_error")
    assert error["message"].startswith(f"{field}")
    assert error["details"] == {"field": field}


# -- recipients --------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "a@b@example.com", "user@", "@example.com", ""])
def test_invalid_email_on_send_is_invalid_recipient(api: ApiClient, stores: Backends, email: str) -> None:
    reply = api.post(SEND, send_body(recipient={"email": email}))
    error = assert_error(reply, 400, "invalid_recipient")
    assert "not a valid email address" in error["message"]
    assert stores.queue.depth() == 0


def test_invalid_email_on_lenient_batch_lists_rejected_and_accepted(api: ApiClient, stores: Backends) -> None:
    # Given a batch with one bad address between two good ones
    recipients = [
        {"email": "a@example.com", "variables": {"name": "A"}},
        {"email": "not-an-email", "variables": {"name": "B"}},
        {"email": "c@example.com", "variables": {"name": "C"}},
    ]
    # When it is posted
    reply = api.post(BATCH, batch_body(recipients))
    # Then it is accepted, the bad one listed with index, email, code and message
    assert reply.status == 202, reply.body
    assert reply.body["accepted"] == 2 and reply.body["rejected"] == 1
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 1
    assert rejected["email"] == "not-an-email"
    assert rejected["code"] == "invalid_recipient"
    assert "not a valid email address" in rejected["message"]
    accepted = reply.body["messages"]
    assert [(m["index"], m["email"], m["status"]) for m in accepted] == [
        (0, "a@example.com", "queued"),
        (2, "c@example.com", "queued"),
    ]
    assert all(
        uuid.UUID(m["message_id"]) for m in accepted
    )  # plain UUIDs, as the AhaSend contract types them
    assert len({m["message_id"] for m in accepted}) == 2
    assert stores.queue.depth() == 1
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert job["total"] == 2


def test_strict_batch_with_one_bad_recipient_rejects_everything(api: ApiClient, stores: Backends) -> None:
    # Given a strict batch where one recipient is bad
    recipients = [
        {"email": "a@example.com", "variables": {"name": "A"}},
        {"email": "not-an-email", "variables": {"name": "B"}},
    ]
    # When it is posted
    reply = api.post(BATCH, batch_body(recipients, validation="strict"))
    # Then the whole batch is refused, the details say which one, and nothing was enqueued
    error = assert_error(reply, 400, "validation_error")
    assert "strict" in error["message"]
    [rejected] = error["details"]["rejected"]
    assert rejected["index"] == 1
    assert rejected["email"] == "not-an-email"
    assert rejected["code"] == "invalid_recipient"
    assert stores.queue.depth() == 0


def test_strict_batch_with_only_good_recipients_is_accepted(api: ApiClient, stores: Backends) -> None:
    reply = api.post(BATCH, batch_body(validation="strict"))
    assert reply.status == 202, reply.body
    assert reply.body["accepted"] == 3 and reply.body["errors"] == []
    assert stores.queue.depth() == 1


def test_undefined_variable_rejects_only_that_batch_recipient(api: ApiClient) -> None:
    # Given a batch where one recipient lacks a variable the content uses
    recipients = [
        {"email": "a@example.com", "variables": {"name": "A"}},
        {"email": "b@example.com", "variables": {}},
    ]
    # When it is posted
    reply = api.post(BATCH, batch_body(recipients))
    # Then that recipient is rejected with template_error naming the variable
    assert reply.status == 202, reply.body
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 1 and rejected["email"] == "b@example.com"
    assert rejected["code"] == "template_error"
    assert "'name' is undefined" in rejected["message"]
    assert reply.body["accepted"] == 1


def test_undefined_variable_on_send_is_a_template_error(api: ApiClient, stores: Backends) -> None:
    reply = api.post(SEND, send_body(recipient={"email": "a@example.com"}))
    error = assert_error(reply, 400, "template_error")
    assert "'name' is undefined" in error["message"]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize(
    ("part", "content"),
    [
        ("text", {"body": "Hello {{ name "}),
        ("html", {"html": "<p>{% if name %}</p>"}),
        ("subject", {"subject": "Hello {{ name }"}),
    ],
)
def test_jinja_syntax_error_is_a_template_error(
    api: ApiClient, stores: Backends, path: str, part: str, content: dict[str, str]
) -> None:
    body = (send_body() if path == SEND else batch_body()) | content
    reply = api.post(path, body)
    error = assert_error(reply, 400, "template_error")
    assert error["message"].startswith(f"{part}:")
    assert "line 1" in error["message"]
    assert error["details"] == {"part": part}
    assert stores.queue.depth() == 0


def test_template_runtime_error_rejects_the_recipient_not_500(api: ApiClient) -> None:
    recipients = [
        {"email": "a@example.com", "variables": {"n": 1}},
        {"email": "b@example.com", "variables": {"n": 0}},
    ]
    reply = api.post(BATCH, batch_body(recipients, subject="ratio", body="{{ 10 / n }}"))
    assert reply.status == 202, reply.body
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 1 and rejected["code"] == "template_error"
    assert "ZeroDivisionError" in rejected["message"]


def test_all_recipients_invalid_on_lenient_batch_is_a_validation_error(
    api: ApiClient, stores: Backends
) -> None:
    recipients = [{"email": "nope"}, {"email": "also-nope"}]
    reply = api.post(BATCH, batch_body(recipients, body="static", subject="static"))
    error = assert_error(reply, 400, "validation_error")
    assert "no valid recipients" in error["message"]
    assert [r["index"] for r in error["details"]["rejected"]] == [0, 1]
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("second", ["a@example.com", "A@example.com", "a@EXAMPLE.COM"])
def test_duplicate_address_rejects_the_second(api: ApiClient, second: str) -> None:
    # Given the same address twice (case-insensitively)
    recipients = [
        {"email": "a@example.com", "variables": {"name": "A"}},
        {"email": "b@example.com", "variables": {"name": "B"}},
        {"email": second, "variables": {"name": "A again"}},
    ]
    # When the batch is posted
    reply = api.post(BATCH, batch_body(recipients))
    # Then the first is accepted and the second rejected, pointing at the first
    assert reply.status == 202, reply.body
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 2 and rejected["email"] == second
    assert rejected["code"] == "invalid_recipient"
    assert "duplicate" in rejected["message"] and "recipient 0" in rejected["message"]
    assert [m["index"] for m in reply.body["messages"]] == [0, 1]


def test_too_many_recipients_is_a_validation_error(limited_api: ApiClient, stores: Backends) -> None:
    # Given a limit of 5 recipients per request
    recipients = [{"email": f"u{i}@example.com", "variables": {"name": "x"}} for i in range(6)]
    # When 6 are posted
    reply = limited_api.post(BATCH, batch_body(recipients))
    # Then the request is refused, saying what the limit is
    error = assert_error(reply, 400, "validation_error")
    assert "at most 5 recipients" in error["message"] and "got 6" in error["message"]
    assert error["details"] == {"field": "recipients", "max": 5}
    assert stores.queue.depth() == 0


def test_exactly_the_maximum_of_recipients_is_accepted(limited_api: ApiClient) -> None:
    recipients = [{"email": f"u{i}@example.com", "variables": {"name": "x"}} for i in range(5)]
    reply = limited_api.post(BATCH, batch_body(recipients))
    assert reply.status == 202, reply.body
    assert reply.body["accepted"] == 5


def test_empty_recipients_is_a_validation_error(api: ApiClient, stores: Backends) -> None:
    reply = api.post(BATCH, batch_body([]))
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"recipients"}
    assert reply.error["details"][0]["type"] == "too_short"
    assert stores.queue.depth() == 0


# -- size and content type ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_oversized_body_is_payload_too_large(limited_api: ApiClient, stores: Backends, path: str) -> None:
    # Given a limit of 2048 bytes and an otherwise valid 3000-byte body
    body = send_body(body="x") if path == SEND else batch_body(body="x")
    padding = 3000 - len(json.dumps(body))
    body["body"] = "x" * (padding + 1)
    raw = json.dumps(body)
    assert len(raw.encode()) == 3000
    # When it is posted
    reply = limited_api.post(path, raw_body=raw)
    # Then it is 413, saying the size and the limit
    error = assert_error(reply, 413, "payload_too_large")
    assert "3000" in error["message"] and "2048" in error["message"]
    assert stores.queue.depth() == 0


def test_oversized_invalid_body_is_payload_too_large_not_validation_error(limited_api: ApiClient) -> None:
    reply = limited_api.post(SEND, raw_body="[" + "1," * 1500 + "1]")
    assert_error(reply, 413, "payload_too_large")


def test_size_limit_counts_bytes_not_characters(limited_api: ApiClient, stores: Backends) -> None:
    # Given a valid body whose UTF-8 encoding is over the limit but whose character count is not
    body = send_body(body="é" * 1500)
    raw = json.dumps(body, ensure_ascii=False)
    assert len(raw) < 2048 < len(raw.encode())
    # When it is posted
    reply = limited_api.post(SEND, raw_body=raw)
    # Then it is refused as too large
    assert_error(reply, 413, "payload_too_large")
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("path", [SEND, BATCH])
def test_subject_longer_than_998_characters_is_a_validation_error(api: ApiClient, path: str) -> None:
    subject = "s" * 999
    body = send_body(subject=subject) if path == SEND else batch_body(subject=subject)
    reply = api.post(path, body)
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"subject"}
    assert reply.error["details"][0]["type"] == "string_too_long"


def test_subject_of_998_characters_is_accepted(api: ApiClient) -> None:
    reply = api.post(SEND, send_body(subject="s" * 998))
    assert reply.status == 202, reply.body


@pytest.mark.parametrize("path", [SEND, BATCH])
@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        pytest.param(
            "multipart/form-data; boundary=x", marks=pytest.mark.filterwarnings("ignore:Received multipart")
        ),
        "text/plain",
        "application/xml",
    ],
)
def test_non_json_content_type_is_unsupported_media_type(
    api: ApiClient, stores: Backends, path: str, content_type: str
) -> None:
    # Given an otherwise valid JSON body labelled with another content type
    body = send_body() if path == SEND else batch_body()
    # When it is posted
    reply = api.post(path, body, headers={"Content-Type": content_type})
    # Then it is 415, naming the content type it got
    error = assert_error(reply, 415, "unsupported_media_type")
    assert "application/json" in error["message"] and content_type in error["message"]
    assert stores.queue.depth() == 0


def test_form_encoded_body_is_unsupported_media_type(api: ApiClient) -> None:
    reply = api.post(
        SEND,
        raw_body="recipient=user%40example.com&subject=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(reply, 415, "unsupported_media_type")


def test_json_content_type_with_charset_is_accepted(api: ApiClient) -> None:
    reply = api.post(SEND, send_body(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 202, reply.body


# -- routes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/emails/nowhere"),
        ("POST", "/api/v1/emails/sendd"),
        ("GET", "/api/v2/emails/send"),
        ("GET", "/"),
    ],
)
def test_unknown_route_is_not_found(api: ApiClient, method: str, path: str) -> None:
    reply = api.request(method, path)
    error = assert_error(reply, 404, "not_found")
    assert path in error["message"]


def test_unknown_job_is_not_found(api: ApiClient) -> None:
    reply = api.get("/api/v1/emails/jobs/job_doesnotexist")
    error = assert_error(reply, 404, "not_found")
    assert "job_doesnotexist" in error["message"]


# -- job control -------------------------------------------------------------------------------


@pytest.fixture
def job_id(api: ApiClient) -> str:
    """A queued batch job; the queue is not drained, so it stays queued."""
    reply = api.post(BATCH, batch_body())
    assert reply.status == 202, reply.body
    return reply.body["job_id"]


def control(api: ApiClient, job_id: str, action: Any) -> Reply:
    return api.post(f"/api/v1/emails/jobs/{job_id}/control", {"action": action})


def test_pause_a_queued_job(api: ApiClient, job_id: str) -> None:
    reply = control(api, job_id, "pause")
    assert reply.status == 200, reply.body
    assert reply.body["state"] == "paused"
    assert api.get(f"/api/v1/emails/jobs/{job_id}").body["state"] == "paused"


@pytest.mark.parametrize("action", ["restart", "PAUSE", "", None, 1])
def test_unknown_control_action_is_a_validation_error(api: ApiClient, job_id: str, action: Any) -> None:
    reply = control(api, job_id, action)
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"action"}
    assert api.get(f"/api/v1/emails/jobs/{job_id}").body["state"] == "queued"


def test_control_without_action_is_a_validation_error(api: ApiClient, job_id: str) -> None:
    reply = api.post(f"/api/v1/emails/jobs/{job_id}/control", {})
    assert_error(reply, 400, "validation_error")
    assert fields(reply) == {"action"}


def test_resume_a_queued_job_is_a_conflict(api: ApiClient, job_id: str) -> None:
    reply = control(api, job_id, "resume")
    error = assert_error(reply, 409, "conflict")
    assert error["message"] == "cannot resume a job that is queued"
    assert error["details"] == {"state": "queued", "action": "resume"}


def test_resume_a_running_job_is_a_conflict(api: ApiClient, job_id: str) -> None:
    # Given a job that was paused and resumed, so it is running
    assert control(api, job_id, "pause").status == 200
    resumed = control(api, job_id, "resume")
    assert resumed.status == 200, resumed.body
    assert resumed.body["state"] == "running"
    # When it is resumed again
    reply = control(api, job_id, "resume")
    # Then it is a conflict saying why
    error = assert_error(reply, 409, "conflict")
    assert error["message"] == "cannot resume a job that is running"


def test_pause_twice_is_a_conflict(api: ApiClient, job_id: str) -> None:
    assert control(api, job_id, "pause").status == 200
    reply = control(api, job_id, "pause")
    error = assert_error(reply, 409, "conflict")
    assert error["message"] == "cannot pause a job that is paused"
    assert error["details"] == {"state": "paused", "action": "pause"}


def test_stop_cancels_a_queued_job(api: ApiClient, job_id: str) -> None:
    reply = control(api, job_id, "stop")
    assert reply.status == 200, reply.body
    assert reply.body["state"] == "stopped"
    assert reply.body["finished_at"] is not None


@pytest.mark.parametrize("action", ["pause", "resume", "stop"])
def test_any_action_on_a_stopped_job_is_a_conflict(api: ApiClient, job_id: str, action: str) -> None:
    # Given a stopped job
    assert control(api, job_id, "stop").status == 200
    # When it is controlled again
    reply = control(api, job_id, action)
    # Then it is a conflict, and the job stays stopped
    error = assert_error(reply, 409, "conflict")
    assert error["message"] == f"cannot {action} a job that is stopped"
    assert api.get(f"/api/v1/emails/jobs/{job_id}").body["state"] == "stopped"


@pytest.mark.parametrize("action", ["pause", "resume", "stop"])
def test_control_of_an_unknown_job_is_not_found(api: ApiClient, action: str) -> None:
    reply = control(api, "job_doesnotexist", action)
    error = assert_error(reply, 404, "not_found")
    assert "job_doesnotexist" in error["message"]


@pytest.fixture
def small_content_api(monkeypatch: pytest.MonkeyPatch, data_dir: Any, account: Any) -> ApiClient:
    from mailsage.local.functions import load_handler

    monkeypatch.setenv("MAILSAGE_MAX_CONTENT_BYTES", "2048")
    return ApiClient(load_handler("api"), account.key)


@pytest.mark.parametrize("path", [SEND, "/api/v1/templates"])
def test_content_over_the_stored_size_limit_is_payload_too_large(
    small_content_api: ApiClient, stores: Backends, path: str
) -> None:
    # Given content that fits the request limit but not one stored item
    html = "<p>" + "x" * 3000 + "</p>"
    body = send_body(html=html) if path == SEND else {"name": "big", "subject": "s", "html": html}
    # When it is submitted / Then it is refused, saying how large it was
    error = assert_error(small_content_api.post(path, body), 413, "payload_too_large")
    assert "2048" in error["message"]
    assert stores.queue.depth() == 0


# -- bodies the API cannot read, and methods a path does not have (both surfaces) ---------------

TEMPLATES = "/api/v1/templates"


def v2_messages(account: Account) -> str:
    return f"/v2/accounts/{account.id}/messages"


def raw_request(
    handler: Any, method: str, path: str, body: bytes, key: str | None, content_type: str = "application/json"
) -> tuple[int, dict[str, str], Any]:
    """Calls the api handler with a body of arbitrary bytes, base64-encoded as API Gateway does
    for a binary body, starting from the canonical sample event."""
    event = load_event("api_send.json")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = event["resource"] = event["requestContext"]["path"] = path
    headers = {k: v for k, v in event["headers"].items() if k not in ("Idempotency-Key", "Authorization")}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    headers["Content-Type"] = content_type
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    result = handler.lambda_handler(event, LocalContext("mailsage-api"))
    reply_headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        reply_headers[name.lower()] = ", ".join(values)
    return result["statusCode"], reply_headers, json.loads(result["body"])


def assert_v2_error(status: int, body: Any, expected: int) -> str:
    assert status == expected, body
    assert set(body) == {"message"} and body["message"], body
    return str(body["message"])


NOT_UTF8 = b'{"subject": "caf\xe9"}'


@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_a_body_that_is_not_utf8_is_a_400_with_the_envelope(
    api_handler: Any, account: Account, stores: Backends, surface: str
) -> None:
    # Given a body in Latin-1 (not UTF-8), with a valid key
    path = SEND if surface == "v1" else v2_messages(account)
    # When it is posted
    status, _, body = raw_request(api_handler, "POST", path, NOT_UTF8, account.key)
    # Then it is a 400 in the surface's envelope saying so, and nothing was enqueued
    if surface == "v1":
        assert assert_error(Reply(status, body, {}), 400, "validation_error")["message"].endswith("UTF-8")
    else:
        assert assert_v2_error(status, body, 400).endswith("UTF-8")
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_a_body_that_is_not_utf8_without_a_key_is_still_a_401(
    api_handler: Any, account: Account, surface: str
) -> None:
    # Given a non-UTF-8 body and no key / When posted / Then authentication answers first
    path = SEND if surface == "v1" else v2_messages(account)
    status, headers, body = raw_request(api_handler, "POST", path, NOT_UTF8, None)
    if surface == "v1":
        assert_error(Reply(status, body, {}), 401, "unauthorized")
    else:
        assert_v2_error(status, body, 401)
    assert headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("key", ["valid", None])
@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_multipart_without_a_boundary_is_refused_not_a_500(
    api_handler: Any, account: Account, surface: str, key: str | None
) -> None:
    # Given a multipart/form-data body whose Content-Type names no boundary
    path = SEND if surface == "v1" else v2_messages(account)
    # When it is posted
    status, _, body = raw_request(
        api_handler,
        "POST",
        path,
        b"--x\r\n\r\nhello\r\n--x--",
        account.key if key else None,
        "multipart/form-data",
    )
    # Then, with or without a key (the gate checks the content type before the key, as for any
    # body that is not JSON): 415 on v1, 400 on v2 (the contract has no 415)
    if surface == "v1":
        assert_error(Reply(status, body, {}), 415, "unsupported_media_type")
    else:
        assert_v2_error(status, body, 400)


HOSTILE_JSON = {
    "nested 1,000 levels": ('{"subject": ' + "[" * 1000 + "]" * 1000 + "}", "levels deep"),
    "an integer of 5,000 digits": ('{"subject": ' + "9" * 5000 + "}", "too long"),
    "a lone surrogate": ('{"subject": "\\ud800 hi"}', "surrogate"),
    "a lone surrogate in a key": ('{"\\udc00": 1}', "surrogate"),
}


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_json_the_api_refuses_to_build_is_a_400(
    api: ApiClient, account: Account, stores: Backends, surface: str, case: str
) -> None:
    raw, reason = HOSTILE_JSON[case]
    # Given JSON that parses (or nearly) but cannot be handled safely
    path = SEND if surface == "v1" else v2_messages(account)
    # When it is posted
    reply = api.post(path, raw_body=raw)
    # Then it is a 400 in the surface's envelope naming the reason, and nothing was enqueued
    if surface == "v1":
        message = assert_error(reply, 400, "validation_error")["message"]
    else:
        message = assert_v2_error(reply.status, reply.body, 400)
    assert "not valid JSON" in message and reason in message
    assert stores.queue.depth() == 0


def test_json_nested_to_the_limit_is_still_read(api: ApiClient) -> None:
    # Given variables nested 60 levels deep (under the limit of 64)
    deep: Any = "x"
    for _ in range(58):
        deep = {"a": deep}
    # When they are used / Then the request is accepted
    reply = api.post(
        SEND, send_body(recipient={"email": "u@example.com", "variables": {"name": "U", "d": deep}})
    )
    assert reply.status == 202, reply.body


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "HEAD", "PATCH"])
def test_a_method_a_v1_path_does_not_have_is_405_with_allow(api: ApiClient, method: str) -> None:
    # Given a known path / When called with a method it does not have
    reply = api.request(method, TEMPLATES)
    # Then 405 with the methods it has, in the v1 envelope
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "HEAD", "PUT"])
def test_a_method_a_v2_path_does_not_have_is_405_with_allow(
    api: ApiClient, account: Account, method: str
) -> None:
    reply = api.request(method, v2_messages(account))
    assert_v2_error(reply.status, reply.body, 405)
    assert reply.headers["allow"] == "GET, POST"


def test_an_unknown_path_is_still_404(api: ApiClient, account: Account) -> None:
    assert_error(api.request("TRACE", "/api/v1/nothing"), 404, "not_found")
    reply = api.request("PATCH", f"/v2/accounts/{account.id}/nothing")
    assert_v2_error(reply.status, reply.body, 404)


@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_hostile_json_without_a_key_is_still_a_401(api: ApiClient, account: Account, surface: str) -> None:
    # Given JSON nested 1,000 levels and no key / When posted / Then authentication answers first
    path = SEND if surface == "v1" else v2_messages(account)
    reply = api.post(path, raw_body=HOSTILE_JSON["nested 1,000 levels"][0], key=None)
    assert reply.status == 401, reply.body
