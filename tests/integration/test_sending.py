"""The real api and sender handlers in-process, a real SQLite file and a real SMTP sink."""

from __future__ import annotations

from tests.conftest import ApiClient, Worker, load_event, read_eml


def batch_body(n: int, **extra: object) -> dict:
    return {
        "subject": "Hello {{ name }}",
        "body": "Dear {{ name }}, your code is {{ code }}.",
        "html": "<p>Dear {{ name }}, your code is <b>{{ code }}</b>.</p>",
        "recipients": [
            {"email": f"user{i}@example.com", "variables": {"name": f"User {i}", "code": i}} for i in range(n)
        ],
        **extra,
    }


def test_send_sample_event_is_accepted_and_delivered(api: ApiClient, worker: Worker, smtp_sink) -> None:
    # Given the canonical send event's body
    body = __import__("json").loads(load_event("api_send.json")["body"])
    # When it is submitted and the queue drained
    reply = api.post("/api/v1/emails/send", body)
    worker.drain()
    # Then it is accepted, sent, and lands in the sink rendered
    assert reply.status == 202, reply.body
    assert reply.body["status"] == "queued"
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert job["state"] == "completed"
    assert job["counts"]["sent"] == 1
    [eml] = smtp_sink.messages()
    msg = read_eml(eml)
    assert msg["Subject"] == "Welcome to Acme Inc!"
    assert msg["To"] == "John <user@example.com>"
    assert msg["X-MailSage-Message-ID"] == reply.body["message_id"]
    assert "Hello <b>John</b>" in msg.get_body(("html",)).get_content()


def test_batch_renders_each_recipient_with_its_own_variables(
    api: ApiClient, worker: Worker, smtp_sink
) -> None:
    reply = api.post("/api/v1/emails/batch", batch_body(120))
    worker.drain()
    assert reply.status == 202
    assert reply.body["accepted"] == 120
    seen = {}
    for eml in smtp_sink.messages():
        msg = read_eml(eml)
        seen[msg["To"]] = msg["Subject"]
    assert seen == {f"user{i}@example.com": f"Hello User {i}" for i in range(120)}
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert job["state"] == "completed"
    assert job["progress"] == {"processed": 120, "total": 120, "percent": 100.0}
    # 120 recipients in chunks of at most 50: three queue messages, not 120
    assert worker.invocations == 1


def test_each_chunk_is_sent_over_one_smtp_connection(api: ApiClient, stores, tmp_path, monkeypatch) -> None:
    from aiosmtpd.controller import Controller

    from mailsage.local.functions import load_handler
    from mailsage.local.sink import OutboxHandler
    from tests.conftest import free_port

    class CountingHandler(OutboxHandler):
        connections = 0

        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
            CountingHandler.connections += 1
            session.host_name = hostname
            return responses

    port = free_port()
    controller = Controller(CountingHandler(tmp_path / "counted"), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{port}")
    try:
        worker = Worker(load_handler("sender"), stores)
        api.post("/api/v1/emails/batch", batch_body(120))  # chunks of 50, 50 and 20
        worker.drain()
    finally:
        controller.stop()
    assert len(list((tmp_path / "counted").glob("*.eml"))) == 120
    assert CountingHandler.connections == 3
