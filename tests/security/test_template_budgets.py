"""Templates cannot take unbounded CPU time or memory: every template of the hostile corpus, at
every place a template is compiled or rendered (create, preview, v1 send, v2 create-message, and the
sender), ends in a `template_error` naming the limit: a 400 where the caller is answered, a failed
message at send time. Never a 500, never a hang (each call has a bounded wait)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailsage.domain.rendering import CompiledContent
from mailsage.errors import TemplateError
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply, Worker
from tests.security.hostile_templates import CORPUS, Hostile

WAIT = 60  # seconds: a bound on liveness (a hostile render stops after well under a second of CPU)
CASES = [pytest.param(h, id=h.name) for h in CORPUS]


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn's result, failing the test (not hanging it) if fn has not finished after `seconds`."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if errors:
        raise errors[0]
    assert out, f"still running after {seconds} s"
    return out[0]


def names_the_limit(message: str, hostile: Hostile) -> bool:
    if not hostile.limits:
        return True
    return any(f"(limit: {limit})" in message for limit in hostile.limits)


def assert_template_error(reply: Reply, hostile: Hostile) -> None:
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.error["code"] == "template_error", reply.body
    assert names_the_limit(reply.error["message"], hostile), reply.error["message"]


# -- the domain: compile and render ---------------------------------------------------------------


@pytest.mark.parametrize("hostile", CASES)
def test_rendering_stops_at_a_named_limit(hostile: Hostile) -> None:
    # Given a hostile template and the variables that make it hostile
    def render() -> TemplateError:
        try:
            CompiledContent("s", None, hostile.html).render(hostile.variables)
        except TemplateError as exc:
            return exc
        raise AssertionError("rendered without error")

    # When it is compiled and rendered
    error = within(WAIT, render)
    # Then a template_error names the limit it ran into
    assert error.code == "template_error"
    assert names_the_limit(error.message, hostile), error.message


def test_a_content_that_keeps_overrunning_stops_being_rendered() -> None:
    # Given a template whose every render runs out of steps
    compiled = CompiledContent(
        "s", None, "{% for i in range(7000) %}{% for j in range(n) %}{% endfor %}{% endfor %}"
    )
    # When it is rendered for many recipients (a batch)
    errors = []
    for _ in range(10):
        with pytest.raises(TemplateError) as caught:
            within(WAIT, lambda: compiled.render({"n": 7000}))
        errors.append(caught.value.message)
    # Then after a few overruns the rest are refused without spending a budget each
    assert "not rendered again" not in errors[0]
    assert all("not rendered again" in e for e in errors[CompiledContent.MAX_OVERRUNS :])
    # And a cheap render of the same content still says why
    assert "(limit: " in errors[-1]


def test_normal_templates_render_as_before() -> None:
    # Given ordinary templates: loops, filters, macros, formatting, arithmetic
    html = (
        "{% macro row(item) %}<li>{{ item.name|title }}: {{ '%.2f'|format(item.price) }}"
        " {{ '{:>6}'.format(item.qty) }} {{ item.tags|join(', ') }}</li>{% endmacro %}"
        "<ul>{% for item in items %}{{ row(item) }}{% endfor %}</ul>"
        "<p>{{ (total * 1.2)|round(2) }} {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ name ~ '!' }}"
        " {{ range(3)|join('-') }} {{ text|wordwrap(20)|indent(2) }} {{ lipsum(1, false, 5, 10)|length > 0 }}</p>"
    )
    variables = {
        "items": [{"name": "tea", "price": 2.5, "qty": 3, "tags": ["a", "b"]}],
        "total": 10,
        "name": "Ann",
        "text": "a fairly long sentence that wraps over a couple of lines",
    }
    # When rendered
    rendered = CompiledContent("Hi {{ name }}", "{{ name|upper }}", html).render(variables)
    # Then every construct works, escaping included
    assert rendered.subject == "Hi Ann" and rendered.text == "ANN"
    assert rendered.html is not None
    assert "<li>Tea: 2.50      3 a, b</li>" in rendered.html
    assert "12.0 1024 ababab Ann! 0-1-2" in rendered.html


def test_a_part_renders_up_to_the_content_limit() -> None:
    # Given a template that writes exactly the limit, and one that writes one byte more
    exact = CompiledContent("s", "{{ s }}", None, max_bytes=2048)
    # Then the first renders and the second is refused, in UTF-8 bytes
    assert exact.render({"s": "x" * 2048}).text == "x" * 2048
    with pytest.raises(TemplateError, match=r"limit: output_size"):
        exact.render({"s": "é" * 1025})


# -- through the real api handler --------------------------------------------------------------


@pytest.mark.parametrize("hostile", CASES)
def test_template_create_then_preview(api: ApiClient, hostile: Hostile) -> None:
    # Given a hostile template
    body = {"name": hostile.name, "subject": "Hi", "html": hostile.html}
    # When it is created
    created = within(WAIT, lambda: api.post("/api/v1/templates", body))
    if hostile.at_compile:
        # Then a constant over a limit (or nesting too deep to parse) is refused at once
        assert_template_error(created, hostile)
        return
    # Then it is stored (it costs nothing until rendered), and its preview is a template_error
    assert created.status == 201, created.body
    template_id = created.body["template_id"]
    preview = within(
        WAIT, lambda: api.post(f"/api/v1/templates/{template_id}/preview", {"variables": hostile.variables})
    )
    assert_template_error(preview, hostile)


@pytest.mark.parametrize("hostile", CASES)
def test_v1_send(api: ApiClient, hostile: Hostile) -> None:
    # Given a send whose HTML is hostile with the recipient's variables
    body = {
        "subject": "Hi",
        "html": hostile.html,
        "recipient": {"email": "r@example.com", "variables": hostile.variables},
    }
    # When it is submitted, Then it is a 400 template_error naming the limit
    assert_template_error(within(WAIT, lambda: api.post("/api/v1/emails/send", body)), hostile)


@pytest.mark.parametrize("hostile", CASES)
def test_v2_create_message(api: ApiClient, account: Account, hostile: Hostile) -> None:
    # Given an AhaSend create-message whose HTML is hostile with the recipient's substitutions
    body = {
        "from": {"email": "hello@example.com"},
        "recipients": [{"email": "r@example.com", "substitutions": hostile.variables}],
        "subject": "Hi",
        "html_content": hostile.html,
    }
    # When it is submitted
    reply = within(WAIT, lambda: api.post(f"/v2/accounts/{account.id}/messages", body))
    if hostile.at_compile:
        # Then content that does not compile is the whole request's error: a 400
        assert reply.status == 400, reply.body
        assert names_the_limit(reply.body["message"], hostile), reply.body
        return
    # Then, as v2 reports a recipient that cannot be sent, an error entry names the limit
    assert reply.status == 202, reply.body
    [entry] = reply.body["data"]
    assert entry["status"] == "error" and entry["id"] is None
    assert names_the_limit(entry["error"], hostile), entry["error"]


@pytest.mark.parametrize("hostile", CASES)
def test_at_send_time_the_message_fails_with_the_limit(
    api: ApiClient, worker: Worker, stores: Backends, account: Account, data_dir: Path, hostile: Hostile
) -> None:
    # Given a job accepted with a stored template, whose content is then hostile (accepted before
    # these limits, or under larger ones): the sender renders it again
    template = api.post("/api/v1/templates", {"name": "t", "subject": "Hi", "html": "<p>{{ 1 }}</p>"})
    job = api.post(
        "/api/v1/emails/send",
        {
            "template_id": template.body["template_id"],
            "recipient": {"email": "r@example.com", "variables": hostile.variables},
        },
    )
    assert job.status == 202, job.body
    with sqlite3.connect(data_dir / "mailsage.db") as db:
        db.execute(
            "UPDATE jobs SET content = json_set(content, '$.html', ?) WHERE id = ?",
            (hostile.html, job.body["job_id"]),
        )
    # When the sender handles the chunk
    within(WAIT, worker.drain)
    # Then the message failed with template_error naming the limit, and the job completed
    [message] = stores.store.chunk_messages(job.body["job_id"], 0)
    assert message.status.value == "failed"
    assert message.error_code == "template_error"
    assert names_the_limit(message.error_message or "", hostile), message.error_message
    assert api.get(f"/api/v1/emails/jobs/{job.body['job_id']}").body["state"] == "completed"


def test_a_large_ordinary_template_fits_the_budget() -> None:
    # Given an invoice of 500 lines, each with lookups, filters, a macro and arithmetic (about a
    # third of the CPU budget on the dev machine: 1,000 lines take two thirds, which a loaded
    # 2-core CI host can push past it)
    html = (
        "{% macro money(x) %}{{ '%.2f'|format(x) }}{% endmacro %}<table>"
        "{% for line in lines %}<tr class=\"{{ loop.cycle('odd', 'even') }}\"><td>{{ loop.index }}</td>"
        "<td>{{ line.name|title|e }}</td><td>{{ line.qty }}</td><td>{{ money(line.price) }}</td>"
        "<td>{{ money(line.qty * line.price) }}</td>{% if line.note %}<td>{{ line.note|truncate(20) }}</td>"
        "{% endif %}</tr>{% endfor %}</table><p>{{ lines|length }} lines,"
        " {{ money(lines|sum(attribute='price')) }}</p>"
    )
    lines = [
        {"name": f"item {i}", "qty": i % 7 + 1, "price": i * 0.5, "note": "n" * (i % 30)} for i in range(500)
    ]
    # When rendered, Then it renders in full
    rendered = within(WAIT, lambda: CompiledContent("s", None, html).render({"lines": lines}))
    assert rendered.html.count("<tr") == 500
    assert "500 lines, 62375.00" in rendered.html
