"""Pause, resume and stop, honoured between chunks, with the real handlers and SMTP sink."""

from __future__ import annotations

from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import ApiClient, Worker


def submit(api: ApiClient, n: int) -> str:
    reply = api.post(
        "/api/v1/emails/batch",
        {
            "subject": "Hi",
            "body": "Hello {{ n }}",
            "recipients": [{"email": f"u{i}@example.com", "variables": {"n": i}} for i in range(n)],
        },
    )
    assert reply.status == 202, reply.body
    return reply.body["job_id"]


def control(api: ApiClient, job_id: str, action: str) -> dict:
    reply = api.post(f"/api/v1/emails/jobs/{job_id}/control", {"action": action})
    assert reply.status == 200, reply.body
    return reply.body


def test_pause_holds_the_remaining_chunks_and_resume_sends_exactly_the_rest(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    job_id = submit(api, 200)  # four chunks of 50
    worker.invoke(stores.queue.receive(max_messages=1))  # one chunk goes out
    assert control(api, job_id, "pause")["state"] == "paused"

    worker.drain()  # the other chunks arrive while paused and are set aside
    paused = api.get(f"/api/v1/emails/jobs/{job_id}").body
    assert paused["state"] == "paused"
    assert (paused["counts"]["sent"], paused["counts"]["queued"]) == (50, 150)
    assert len(smtp_sink.messages()) == 50

    assert control(api, job_id, "resume")["state"] == "running"
    worker.drain()
    done = api.get(f"/api/v1/emails/jobs/{job_id}").body
    assert done["state"] == "completed"
    assert done["counts"]["sent"] == 200
    assert len(smtp_sink.messages()) == 200


def test_stop_cancels_every_unsent_message(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    job_id = submit(api, 200)
    worker.invoke(stores.queue.receive(max_messages=1))
    stopped = control(api, job_id, "stop")
    assert stopped["state"] == "stopped"
    assert (stopped["counts"]["sent"], stopped["counts"]["cancelled"]) == (50, 150)

    worker.drain()
    assert len(smtp_sink.messages()) == 50
    assert api.get(f"/api/v1/emails/jobs/{job_id}").body["state"] == "stopped"


def test_a_job_paused_before_any_chunk_ran_sends_nothing_until_resumed(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink
) -> None:
    job_id = submit(api, 60)
    control(api, job_id, "pause")
    worker.drain()
    assert smtp_sink.messages() == []
    control(api, job_id, "resume")
    worker.drain()
    assert len(smtp_sink.messages()) == 60
    assert api.get(f"/api/v1/emails/jobs/{job_id}").body["state"] == "completed"
