"""/api/v1/templates: CRUD, pagination, preview, and sending with a stored template."""

from __future__ import annotations

from typing import Any

import pytest

from mailsage.local.sink import SmtpSink
from tests.conftest import ApiClient, Reply, Worker, read_eml

TEMPLATES = "/api/v1/templates"


def template_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "welcome",
        "subject": "Welcome {{ name }}",
        "html": "<p>Hello <b>{{ name }}</b></p>",
        "text": "Hello {{ name }}",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(api: ApiClient, **overrides: Any) -> dict[str, Any]:
    reply = api.post(TEMPLATES, template_body(**overrides))
    assert reply.status == 201, reply.body
    return reply.body


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.error["code"] == code, reply.body
    return reply.error


# -- CRUD --------------------------------------------------------------------------------------


def test_create_returns_201_with_the_template(api: ApiClient) -> None:
    # Given a valid template
    # When it is created
    reply = api.post(TEMPLATES, template_body())
    # Then it is 201 with an id and the stored fields
    assert reply.status == 201, reply.body
    body = reply.body
    assert body["template_id"].startswith("tpl_")
    assert body["name"] == "welcome"
    assert body["subject"] == "Welcome {{ name }}"
    assert body["html"] == "<p>Hello <b>{{ name }}</b></p>"
    assert body["text"] == "Hello {{ name }}"
    assert body["created_at"].endswith("Z") and body["created_at"] == body["updated_at"]


@pytest.mark.parametrize("missing", ["html", "text"])
def test_create_with_only_one_part_is_accepted(api: ApiClient, missing: str) -> None:
    reply = api.post(TEMPLATES, template_body(**{missing: None}))
    assert reply.status == 201, reply.body
    assert reply.body[missing] is None


def test_get_returns_what_was_created(api: ApiClient) -> None:
    created = create(api)
    reply = api.get(f"{TEMPLATES}/{created['template_id']}")
    assert reply.status == 200, reply.body
    assert reply.body == created


def test_get_unknown_template_is_not_found(api: ApiClient) -> None:
    reply = api.get(f"{TEMPLATES}/tpl_missing")
    error = assert_error(reply, 404, "not_found")
    assert "tpl_missing" in error["message"]


def test_list_returns_the_accounts_templates(api: ApiClient) -> None:
    ids = {create(api, name=f"t{i}")["template_id"] for i in range(3)}
    reply = api.get(TEMPLATES)
    assert reply.status == 200, reply.body
    assert {t["template_id"] for t in reply.body["data"]} == ids
    assert reply.body["next_cursor"] is None


def test_list_paginates_with_limit_and_after(api: ApiClient) -> None:
    # Given five templates
    ids = sorted(create(api, name=f"t{i}")["template_id"] for i in range(5))
    # When they are listed two at a time, following next_cursor
    pages: list[list[str]] = []
    cursors: list[str | None] = []
    after: str | None = None
    for _ in range(5):
        path = f"{TEMPLATES}?limit=2" + (f"&after={after}" if after else "")
        reply = api.get(path)
        assert reply.status == 200, reply.body
        pages.append([t["template_id"] for t in reply.body["data"]])
        after = reply.body["next_cursor"]
        cursors.append(after)
        if after is None:
            break
    # Then every template is seen once, in pages of at most two, and the last page has no cursor
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert cursors == [ids[1], ids[3], None]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "after=" + "x" * 129])
def test_list_with_bad_query_is_a_validation_error(api: ApiClient, query: str) -> None:
    reply = api.get(f"{TEMPLATES}?{query}")
    assert_error(reply, 400, "validation_error")
    assert {d["field"] for d in reply.error["details"]} == {query.split("=")[0]}


def test_put_updates_the_template(api: ApiClient) -> None:
    # Given a template
    created = create(api)
    # When it is replaced
    reply = api.put(
        f"{TEMPLATES}/{created['template_id']}",
        template_body(name="renamed", subject="New {{ name }}", html=None, text="New text"),
    )
    # Then the reply and later reads show the new content, with the same id and creation time
    assert reply.status == 200, reply.body
    assert reply.body["template_id"] == created["template_id"]
    assert reply.body["name"] == "renamed"
    assert reply.body["subject"] == "New {{ name }}"
    assert reply.body["html"] is None
    assert reply.body["text"] == "New text"
    assert reply.body["created_at"] == created["created_at"]
    assert reply.body["updated_at"] >= created["updated_at"]
    assert api.get(f"{TEMPLATES}/{created['template_id']}").body == reply.body


def test_put_unknown_template_is_not_found(api: ApiClient) -> None:
    reply = api.put(f"{TEMPLATES}/tpl_missing", template_body())
    assert_error(reply, 404, "not_found")
    assert api.get(TEMPLATES).body["data"] == []


def test_put_with_syntax_error_is_a_template_error_and_keeps_the_old_version(api: ApiClient) -> None:
    created = create(api)
    reply = api.put(f"{TEMPLATES}/{created['template_id']}", template_body(text="{% for %}"))
    error = assert_error(reply, 400, "template_error")
    assert error["message"].startswith("text:")
    assert api.get(f"{TEMPLATES}/{created['template_id']}").body == created


def test_delete_then_get_is_not_found(api: ApiClient) -> None:
    # Given a template
    created = create(api)
    path = f"{TEMPLATES}/{created['template_id']}"
    # When it is deleted
    reply = api.delete(path)
    # Then it is 204 with no body, and it is gone
    assert reply.status == 204
    assert reply.body is None
    assert_error(api.get(path), 404, "not_found")
    assert api.get(TEMPLATES).body["data"] == []


def test_delete_twice_is_not_found(api: ApiClient) -> None:
    created = create(api)
    path = f"{TEMPLATES}/{created['template_id']}"
    assert api.delete(path).status == 204
    assert_error(api.delete(path), 404, "not_found")


@pytest.mark.parametrize(
    ("part", "overrides"),
    [
        ("subject", {"subject": "Welcome {{ name "}),
        ("html", {"html": "<p>{% if name %}</p>"}),
        ("text", {"text": "Hello {{ name }"}),
    ],
)
def test_create_with_jinja_syntax_error_is_a_template_error(
    api: ApiClient, part: str, overrides: dict[str, str]
) -> None:
    # Given a template whose one part does not compile
    # When it is created
    reply = api.post(TEMPLATES, template_body(**overrides))
    # Then it is refused, naming the part and the line, and nothing is stored
    error = assert_error(reply, 400, "template_error")
    assert error["message"].startswith(f"{part}:") and "line 1" in error["message"]
    assert error["details"] == {"part": part}
    assert api.get(TEMPLATES).body["data"] == []


def test_create_with_neither_html_nor_text_is_a_validation_error(api: ApiClient) -> None:
    reply = api.post(TEMPLATES, template_body(html=None, text=None))
    error = assert_error(reply, 400, "validation_error")
    assert "html" in error["message"] and "text" in error["message"]
    assert api.get(TEMPLATES).body["data"] == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"subject": None}, "subject"),
        ({"subject": "a\r\nBcc: x@example.com"}, "subject"),
        ({"subject": "s" * 999}, "subject"),
        ({"body": "text"}, "body"),
        ({"html": 5}, "html"),
    ],
    ids=["empty-name", "no-name", "no-subject", "crlf-subject", "long-subject", "unknown-field", "html-int"],
)
def test_create_with_bad_fields_is_a_validation_error(
    api: ApiClient, overrides: dict[str, Any], field: str
) -> None:
    body = template_body(**{k: v for k, v in overrides.items() if v is not None})
    for k, v in overrides.items():
        if v is None:
            body.pop(k, None)
    reply = api.post(TEMPLATES, body)
    assert_error(reply, 400, "validation_error")
    assert field in {d["field"] for d in reply.error["details"]}


# -- preview -----------------------------------------------------------------------------------


def test_preview_renders_each_part_and_escapes_html_only(api: ApiClient) -> None:
    # Given a template using a variable in every part
    created = create(api)
    # When it is previewed with a variable holding markup
    reply = api.post(
        f"{TEMPLATES}/{created['template_id']}/preview", {"variables": {"name": "<script>alert(1)</script>"}}
    )
    # Then the subject and text show it verbatim and the html escapes it
    assert reply.status == 200, reply.body
    assert reply.body["subject"] == "Welcome <script>alert(1)</script>"
    assert reply.body["text"] == "Hello <script>alert(1)</script>"
    assert reply.body["html"] == "<p>Hello <b>&lt;script&gt;alert(1)&lt;/script&gt;</b></p>"
    assert "<script>" not in reply.body["html"]


def test_preview_of_a_text_only_template_has_no_html(api: ApiClient) -> None:
    created = create(api, html=None)
    reply = api.post(f"{TEMPLATES}/{created['template_id']}/preview", {"variables": {"name": "Ann"}})
    assert reply.status == 200, reply.body
    assert reply.body == {"subject": "Welcome Ann", "html": None, "text": "Hello Ann"}


@pytest.mark.parametrize("body", [{}, {"variables": {}}, {"variables": {"other": 1}}])
def test_preview_with_a_missing_variable_is_a_template_error(api: ApiClient, body: dict[str, Any]) -> None:
    created = create(api)
    reply = api.post(f"{TEMPLATES}/{created['template_id']}/preview", body)
    error = assert_error(reply, 400, "template_error")
    assert "'name' is undefined" in error["message"]
    assert error["details"] == {"part": "subject"}


def test_preview_unknown_template_is_not_found(api: ApiClient) -> None:
    reply = api.post(f"{TEMPLATES}/tpl_missing/preview", {"variables": {}})
    assert_error(reply, 404, "not_found")


def test_preview_with_unknown_field_is_a_validation_error(api: ApiClient) -> None:
    created = create(api)
    reply = api.post(f"{TEMPLATES}/{created['template_id']}/preview", {"vars": {"name": "x"}})
    assert_error(reply, 400, "validation_error")
    assert {d["field"] for d in reply.error["details"]} == {"vars"}


def test_preview_cannot_reach_python_internals(api: ApiClient) -> None:
    # Given a template that tries to escape the sandbox
    created = create(api, text="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    # When it is previewed
    reply = api.post(f"{TEMPLATES}/{created['template_id']}/preview", {"variables": {"name": "x"}})
    # Then it is refused as a template error, not rendered and not a 500
    error = assert_error(reply, 400, "template_error")
    assert error["message"].startswith("text:")


# -- sending with a template -------------------------------------------------------------------


def test_send_with_template_id_uses_the_template_and_the_job_keeps_its_copy(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink
) -> None:
    # Given a stored template and a send accepted with it
    created = create(api)
    template_path = f"{TEMPLATES}/{created['template_id']}"
    reply = api.post(
        "/api/v1/emails/send",
        {
            "template_id": created["template_id"],
            "recipient": {"email": "ann@example.com", "name": "Ann", "variables": {"name": "Ann"}},
        },
    )
    assert reply.status == 202, reply.body
    # When the template is edited before the queue is drained
    updated = api.put(
        template_path, template_body(subject="CHANGED {{ name }}", html="<p>CHANGED</p>", text="CHANGED")
    )
    assert updated.status == 200, updated.body
    worker.drain()
    # Then the message is the original template rendered for the recipient
    [eml] = smtp_sink.messages()
    msg = read_eml(eml)
    assert msg["Subject"] == "Welcome Ann"
    assert msg["To"] == "Ann <ann@example.com>"
    assert msg.get_body(("plain",)).get_content().strip() == "Hello Ann"
    assert "<p>Hello <b>Ann</b></p>" in msg.get_body(("html",)).get_content()
    assert "CHANGED" not in eml.read_text()
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert job["state"] == "completed" and job["counts"]["sent"] == 1


def test_template_deleted_after_submission_is_still_sent(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink
) -> None:
    created = create(api)
    reply = api.post(
        "/api/v1/emails/batch",
        {
            "template_id": created["template_id"],
            "recipients": [{"email": f"u{i}@example.com", "variables": {"name": f"U{i}"}} for i in range(3)],
        },
    )
    assert reply.status == 202, reply.body
    assert api.delete(f"{TEMPLATES}/{created['template_id']}").status == 204
    worker.drain()
    subjects = sorted(read_eml(p)["Subject"] for p in smtp_sink.messages())
    assert subjects == ["Welcome U0", "Welcome U1", "Welcome U2"]


def test_subject_given_with_template_id_overrides_the_templates(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink
) -> None:
    created = create(api)
    reply = api.post(
        "/api/v1/emails/send",
        {
            "template_id": created["template_id"],
            "subject": "Override for {{ name }}",
            "recipient": {"email": "ann@example.com", "variables": {"name": "Ann"}},
        },
    )
    assert reply.status == 202, reply.body
    worker.drain()
    [eml] = smtp_sink.messages()
    msg = read_eml(eml)
    assert msg["Subject"] == "Override for Ann"
    assert msg.get_body(("plain",)).get_content().strip() == "Hello Ann"


def test_batch_with_template_id_rejects_recipients_missing_its_variables(api: ApiClient) -> None:
    created = create(api)
    reply = api.post(
        "/api/v1/emails/batch",
        {
            "template_id": created["template_id"],
            "recipients": [
                {"email": "a@example.com", "variables": {"name": "A"}},
                {"email": "b@example.com"},
            ],
        },
    )
    assert reply.status == 202, reply.body
    [rejected] = reply.body["errors"]
    assert rejected["index"] == 1 and rejected["code"] == "template_error"
    assert "'name' is undefined" in rejected["message"]
