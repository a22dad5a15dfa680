"""End to end: `mailsage serve` over HTTP, its worker, and its built-in SMTP sink."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import LocalServer, out

pytestmark = pytest.mark.e2e


def recipients(n: int) -> list[dict]:
    return [
        {"email": f"user{i}@example.com", "variables": {"name": f"User {i}", "code": f"C{i:04d}"}}
        for i in range(n)
    ]


def submit(server: LocalServer, body: dict) -> dict:
    reply = server.call("POST", "/api/v1/emails/batch", body)
    assert reply.status_code == 202, reply.text
    return reply.json()


def test_a_500_recipient_templated_batch_lands_in_the_sink_rendered_per_recipient(
    server: LocalServer,
) -> None:
    template = server.call(
        "POST",
        "/api/v1/templates",
        {
            "name": "welcome",
            "subject": "Welcome, {{ name }}",
            "text": "Hello {{ name }}, your code is {{ code }}.",
            "html": "<p>Hello {{ name }}, your code is <b>{{ code }}</b>.</p>",
        },
    )
    assert template.status_code == 201, template.text

    accepted = submit(
        server,
        {
            "template_id": template.json()["template_id"],
            "recipients": recipients(500),
            "campaign_id": "spring",
        },
    )
    assert accepted["accepted"] == 500
    job = server.wait_for(accepted["job_id"], {"completed"})

    assert out(job) == 500
    assert job["campaign_id"] == "spring"
    mail = server.received()
    assert len(mail) == 500
    by_recipient = {m["To"]: m for m in mail}
    assert len(by_recipient) == 500
    for i in range(500):
        m = by_recipient[f"user{i}@example.com"]
        assert m["Subject"] == f"Welcome, User {i}"
        assert f"your code is C{i:04d}." in m.get_body(("plain",)).get_content()
        assert f"<b>C{i:04d}</b>" in m.get_body(("html",)).get_content()


def test_pause_then_resume_sends_every_message_exactly_once(server: LocalServer) -> None:
    accepted = submit(
        server, {"subject": "Hi {{ name }}", "body": "{{ code }}", "recipients": recipients(1000)}
    )
    paused = server.call("POST", f"/api/v1/emails/jobs/{accepted['job_id']}/control", {"action": "pause"})
    assert paused.status_code == 200, paused.text

    job = server.wait_settled(accepted["job_id"])
    assert job["state"] == "paused"
    assert out(job) < 1000  # the pause stopped the job part-way
    assert len(server.outbox()) == out(job)
    time.sleep(1.0)
    assert len(server.outbox()) == out(job)  # nothing more goes out while paused

    resumed = server.call("POST", f"/api/v1/emails/jobs/{accepted['job_id']}/control", {"action": "resume"})
    assert resumed.status_code == 200, resumed.text
    job = server.wait_for(accepted["job_id"], {"completed"})
    assert out(job) == 1000
    assert sorted(m["To"] for m in server.received()) == sorted(r["email"] for r in recipients(1000))


def test_stop_cancels_what_was_not_sent(server: LocalServer) -> None:
    accepted = submit(server, {"subject": "Hi", "body": "{{ code }}", "recipients": recipients(1000)})
    stopped = server.call("POST", f"/api/v1/emails/jobs/{accepted['job_id']}/control", {"action": "stop"})
    assert stopped.status_code == 200, stopped.text

    job = server.wait_settled(accepted["job_id"])
    assert job["state"] == "stopped"
    assert job["counts"]["cancelled"] > 0
    assert out(job) + job["counts"]["cancelled"] == 1000
    assert len(server.outbox()) == out(job)
    again = server.call("POST", f"/api/v1/emails/jobs/{accepted['job_id']}/control", {"action": "resume"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_jobs_accepted_before_a_restart_are_completed_after_it(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    # Given a server that accepts work but has no sender worker running
    first = LocalServer(tmp_path / "data", server_env, workers=0).start()
    try:
        accepted = submit(first, {"subject": "Hi", "body": "{{ code }}", "recipients": recipients(1000)})
        assert first.job(accepted["job_id"])["state"] == "queued"
    finally:
        first.stop()
    assert first.outbox() == []

    # When the server restarts on the same data directory
    second = LocalServer(tmp_path / "data", server_env).start()
    try:
        job = second.wait_for(accepted["job_id"], {"completed"})
    finally:
        second.stop()

    # Then the job accepted before the restart completes, every message exactly once
    assert out(job) == 1000
    assert sorted(m["To"] for m in second.received()) == sorted(r["email"] for r in recipients(1000))


def test_serve_prints_a_working_key_when_none_is_given(tmp_path: Path, server_env: dict[str, str]) -> None:
    del server_env["MAILSAGE_DEV_API_KEY"]
    del server_env["MAILSAGE_DEV_ACCOUNT_ID"]
    srv = LocalServer(tmp_path / "data", server_env).start()
    try:
        assert "account id:" in srv.banner
        assert srv.key.startswith("ms_")
        reply = srv.call(
            "POST",
            "/api/v1/emails/send",
            {"recipient": {"email": "a@example.com"}, "subject": "s", "body": "b"},
        )
        assert reply.status_code == 202, reply.text
    finally:
        srv.stop()


def test_an_oversized_body_is_refused_before_it_is_read(server: LocalServer) -> None:
    reply = requests.post(
        server.url + "/api/v1/emails/send",
        data=b"x" * (5 * 1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
