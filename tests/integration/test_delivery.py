"""Sender behaviour: exactly-once under redelivery, retries with backoff, permanent failures and
dead letters. Real sender handler, real SQLite file, real SMTP sink on loopback."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailsage.local.functions import load_handler
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import ApiClient, Worker, free_port, read_eml


def submit(api: ApiClient, emails: list[str]) -> dict:
    reply = api.post(
        "/api/v1/emails/batch",
        {
            "subject": "Hi {{ n }}",
            "body": "Number {{ n }}",
            "recipients": [{"email": e, "variables": {"n": i}} for i, e in enumerate(emails)],
        },
    )
    assert reply.status == 202, reply.body
    return reply.body


def recipients_at_sink(sink: SmtpSink) -> list[str]:
    return sorted(read_eml(p)["To"] for p in sink.messages())


def test_a_chunk_delivered_twice_sends_each_message_once(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    emails = [f"r{i}@example.com" for i in range(40)]
    job = submit(api, emails)
    received = stores.queue.receive(max_messages=10)
    assert len(received) == 1  # 40 recipients fit one chunk

    # The same chunk delivered twice (SQS is at-least-once), the second time after the first finished
    worker.invoke(received)
    worker.invoke(received)

    assert recipients_at_sink(smtp_sink) == sorted(emails)
    status = api.get(f"/api/v1/emails/jobs/{job['job_id']}").body
    assert status["counts"]["sent"] == 40
    assert status["state"] == "completed"


def test_a_chunk_delivered_to_two_workers_at_once_sends_each_message_once(
    api: ApiClient, smtp_sink: SmtpSink, stores: Backends
) -> None:
    emails = [f"c{i}@example.com" for i in range(50)]
    submit(api, emails)
    received = stores.queue.receive(max_messages=10)
    # Two execution environments handle the same chunk concurrently
    workers = [Worker(load_handler("sender"), stores) for _ in range(2)]
    threads = [threading.Thread(target=w.invoke, args=(received,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert recipients_at_sink(smtp_sink) == sorted(emails)


def test_a_recipient_refused_with_550_bounces_only_that_message(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    # The sink refuses local parts starting with "bounce" with 550 5.1.1: a hard bounce
    job = submit(api, ["ok1@example.com", "bounce-me@example.com", "ok2@example.com"])
    worker.drain()
    assert recipients_at_sink(smtp_sink) == ["ok1@example.com", "ok2@example.com"]
    bounced = [m for m in stores.store.chunk_messages(job["job_id"], 0) if m.status == "bounced"]
    assert [(m.email, m.error_code) for m in bounced] == [("bounce-me@example.com", "bounced")]
    assert "550" in (bounced[0].error_message or "")
    status = api.get(f"/api/v1/emails/jobs/{job['job_id']}").body
    assert status["state"] == "completed"
    assert (status["counts"]["sent"], status["counts"]["bounced"], status["counts"]["failed"]) == (2, 1, 0)
    assert status["dead_letters"] == []


def test_transient_refusals_are_retried_then_given_up_as_a_visible_dead_letter(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    # The sink answers 451 to "defer..." every time; MAILSAGE_MAX_ATTEMPTS is 3 in tests
    job = submit(api, ["ok@example.com", "defer-me@example.com"])
    worker.drain()
    assert worker.invocations == 3  # one delivery and two retries of the chunk
    assert recipients_at_sink(smtp_sink) == ["ok@example.com"]  # never re-sent by the retries
    [deferred] = [m for m in stores.store.chunk_messages(job["job_id"], 0) if m.email.startswith("defer")]
    assert deferred.status == "failed"
    assert deferred.error_code == "smtp_error"
    assert deferred.attempts == 3
    assert "gave up after 3 attempts" in (deferred.error_message or "")
    status = api.get(f"/api/v1/emails/jobs/{job['job_id']}").body
    assert status["state"] == "completed"
    assert [d["chunk"] for d in status["dead_letters"]] == [0]
    assert "451" in status["dead_letters"][0]["reason"]


def test_an_unreachable_relay_is_retried_and_mail_goes_out_when_it_returns(
    api: ApiClient, stores: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens here yet
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{port}")
    worker = Worker(load_handler("sender"), stores)
    job = submit(api, ["a@example.com", "b@example.com"])

    failed = worker.invoke(stores.queue.receive(max_messages=10))
    assert len(failed) == 1  # reported as a partial batch failure, so the queue delivers it again
    assert {m.status for m in stores.store.chunk_messages(job["job_id"], 0)} == {"queued"}

    sink = SmtpSink(tmp_path / "late-outbox", port)
    sink.start()
    try:
        worker.drain()
        assert recipients_at_sink(sink) == ["a@example.com", "b@example.com"]
    finally:
        sink.stop()
    assert [m.attempts for m in stores.store.chunk_messages(job["job_id"], 0)] == [2, 2]


def test_messages_held_by_a_dead_worker_are_sent_after_its_lease(
    api: ApiClient, smtp_sink: SmtpSink, stores: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSAGE_CLAIM_LEASE_SECONDS", "0.5")
    worker = Worker(load_handler("sender"), stores)
    job = submit(api, ["x@example.com", "y@example.com"])
    # A worker claimed the messages and died before sending them
    ids = [m.id for m in stores.store.chunk_messages(job["job_id"], 0)]
    assert stores.store.claim_messages(job["job_id"], ids, lease_seconds=0.5) == ids

    failed = worker.invoke(stores.queue.receive(max_messages=10))
    assert len(failed) == 1  # not acknowledged: the chunk returns when the lease has run out
    assert smtp_sink.messages() == []

    worker.drain()
    assert recipients_at_sink(smtp_sink) == ["x@example.com", "y@example.com"]
