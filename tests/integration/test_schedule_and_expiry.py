"""Scheduled sending, cancellation and expiry, through the domain (`SubmissionService`), the real
sender handler, the SMTP sink, and the local scheduler's semantics: what `_scheduler_loop` in
mailsage/local/runtime.py does with the SQLite scheduler (due -> onto the send queue -> delete)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from mailsage.domain.models import JOB_FINAL, JobState, MessageStatus
from mailsage.domain.submission import JobRequest, RecipientInput, SubmissionService
from mailsage.local.sink import SmtpSink
from mailsage.settings import ApiSettings
from mailsage.wiring import Backends, api_services
from tests.conftest import Account, Worker, read_eml

HOUR = 3600.0


@pytest.fixture
def submission(stores: Backends) -> SubmissionService:
    return api_services(ApiSettings()).submission


def fire_due(stores: Backends, now: float) -> list[str]:
    """One pass of the local runtime's scheduler loop at `now`: every due schedule goes onto the
    send queue, then is deleted. Returns the names fired."""
    assert stores.scheduler is not None
    fired = []
    for name, payload in stores.scheduler.due(now):
        stores.queue.send([payload], [f"schedule:{name}"])
        stores.scheduler.delete(name)
        fired.append(name)
    return fired


def request(emails: list[str], **kw: object) -> JobRequest:
    return JobRequest(
        kind="batch",
        recipients=[RecipientInput(e, None, {"n": i}) for i, e in enumerate(emails)],
        subject="Hi {{ n }}",
        text="Number {{ n }}",
        **kw,  # type: ignore[arg-type]
    )


def at_sink(sink: SmtpSink) -> list[str]:
    return sorted(read_eml(p)["To"] for p in sink.messages())


def statuses(stores: Backends, account: Account, message_ids: list[str]) -> list[MessageStatus]:
    found = [stores.store.get_message(account.id, m) for m in message_ids]
    return [m.status for m in found if m is not None]


# -- schedule -------------------------------------------------------------------------------------
def test_a_scheduled_job_sends_nothing_before_its_time_and_everything_after(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    first_attempt = time.time() + HOUR
    accepted = submission.submit(account.id, request(emails, first_attempt_at=first_attempt))
    ids = [m.id for m in accepted.messages]

    # Before its time: scheduled, nothing on the send queue, nothing due, nothing sent.
    assert accepted.job.state == JobState.SCHEDULED
    assert statuses(stores, account, ids) == [MessageStatus.SCHEDULED] * 3
    assert stores.queue.depth() == 0
    assert fire_due(stores, time.time()) == []
    assert fire_due(stores, first_attempt - 1) == []
    worker.drain()
    assert at_sink(smtp_sink) == []
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state == JobState.SCHEDULED

    # At its time the scheduler fires once, and the job goes out.
    assert fire_due(stores, first_attempt) == [accepted.job.id]
    worker.drain()
    assert at_sink(smtp_sink) == emails
    assert statuses(stores, account, ids) == [MessageStatus.SENT] * 3
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state == JobState.COMPLETED
    assert fire_due(stores, first_attempt + HOUR) == []  # the schedule is gone


def test_a_start_fired_twice_sends_each_message_once(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    # The scheduler crashed between putting the start on the queue and deleting the schedule.
    first_attempt = time.time() + HOUR
    accepted = submission.submit(
        account.id, request(["a@example.com", "b@example.com"], first_attempt_at=first_attempt)
    )
    assert stores.scheduler is not None
    [(name, payload)] = stores.scheduler.due(first_attempt)
    stores.queue.send([payload], [f"schedule:{name}"])
    worker.drain()
    fire_due(stores, first_attempt)
    worker.drain()
    assert at_sink(smtp_sink) == ["a@example.com", "b@example.com"]
    assert statuses(stores, account, [m.id for m in accepted.messages]) == [MessageStatus.SENT] * 2


def test_a_first_attempt_in_the_past_is_sent_at_once(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    accepted = submission.submit(account.id, request(["a@example.com"], first_attempt_at=time.time() - 60))
    assert accepted.job.state == JobState.QUEUED
    assert fire_due(stores, time.time()) == []
    worker.drain()
    assert at_sink(smtp_sink) == ["a@example.com"]


# -- cancel ---------------------------------------------------------------------------------------
def test_a_cancelled_scheduled_message_never_goes_out_while_the_others_do(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    first_attempt = time.time() + HOUR
    accepted = submission.submit(account.id, request(emails, first_attempt_at=first_attempt))
    a, b, c = (m.id for m in accepted.messages)

    assert stores.store.cancel_message(account.id, b) is True
    assert stores.store.cancel_message(account.id, b) is False  # already cancelled
    fire_due(stores, first_attempt)
    worker.drain()

    assert at_sink(smtp_sink) == ["a@example.com", "c@example.com"]
    assert statuses(stores, account, [a, b, c]) == [
        MessageStatus.SENT,
        MessageStatus.CANCELLED,
        MessageStatus.SENT,
    ]
    cancelled = stores.store.get_message(account.id, b)
    assert cancelled is not None and cancelled.events[-1]["status"] == "cancelled"
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state == JobState.COMPLETED
    assert job.counts == {"sent": 2, "cancelled": 1}
    # Once sent, a message can no longer be cancelled.
    assert stores.store.cancel_message(account.id, a) is False


def test_only_scheduled_messages_can_be_cancelled_and_only_by_their_account(
    submission: SubmissionService,
    account: Account,
    new_account: Callable[[], Account],
    worker: Worker,
    smtp_sink: SmtpSink,
    stores: Backends,
) -> None:
    scheduled = submission.submit(account.id, request(["a@example.com"], first_attempt_at=time.time() + HOUR))
    immediate = submission.submit(account.id, request(["b@example.com"]))
    other = new_account()

    assert stores.store.cancel_message(other.id, scheduled.messages[0].id) is False  # another tenant
    assert stores.store.cancel_message(account.id, immediate.messages[0].id) is False  # not scheduled
    worker.drain()
    assert at_sink(smtp_sink) == ["b@example.com"]
    assert statuses(stores, account, [scheduled.messages[0].id]) == [MessageStatus.SCHEDULED]


def test_a_scheduled_job_whose_every_message_was_cancelled_sends_nothing(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    first_attempt = time.time() + HOUR
    accepted = submission.submit(
        account.id, request(["a@example.com", "b@example.com"], first_attempt_at=first_attempt)
    )
    for message in accepted.messages:
        assert stores.store.cancel_message(account.id, message.id)
    fire_due(stores, first_attempt)
    worker.drain()
    assert at_sink(smtp_sink) == []
    assert statuses(stores, account, [m.id for m in accepted.messages]) == [MessageStatus.CANCELLED] * 2


def test_a_scheduled_job_whose_every_message_was_cancelled_completes_when_it_fires(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    first_attempt = time.time() + HOUR
    accepted = submission.submit(account.id, request(["a@example.com"], first_attempt_at=first_attempt))
    assert stores.store.cancel_message(account.id, accepted.messages[0].id)
    fire_due(stores, first_attempt)
    worker.drain()
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state in JOB_FINAL


# -- expiry ---------------------------------------------------------------------------------------
def wait_until(moment: float) -> None:
    while time.time() <= moment:
        time.sleep(max(0.01, moment - time.time() + 0.01))


def test_a_job_past_its_expiry_before_it_was_sent_expires_and_sends_nothing(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    emails = ["a@example.com", "b@example.com"]
    expires = time.time() + 0.3
    accepted = submission.submit(account.id, request(emails, expires_at=expires))
    assert stores.queue.depth() == 1  # queued in time...
    wait_until(expires)  # ...but no sender got to it before it expired

    worker.drain()

    assert at_sink(smtp_sink) == []
    assert statuses(stores, account, [m.id for m in accepted.messages]) == [MessageStatus.EXPIRED] * 2
    message = stores.store.get_message(account.id, accepted.messages[0].id)
    assert message is not None and message.sent_at is None and message.events[-1]["status"] == "expired"
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state == JobState.EXPIRED
    assert job.counts == {"expired": 2}


def test_chunks_sent_before_the_expiry_go_out_and_the_rest_expire_never_late(
    monkeypatch: pytest.MonkeyPatch,
    account: Account,
    worker: Worker,
    smtp_sink: SmtpSink,
    stores: Backends,
) -> None:
    monkeypatch.setenv("MAILSAGE_CHUNK_SIZE", "1")  # one message per chunk
    submission = api_services(ApiSettings()).submission
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    expires = time.time() + 1.0
    accepted = submission.submit(account.id, request(emails, expires_at=expires))
    assert stores.queue.depth() == 3

    first = stores.queue.receive(max_messages=1)  # the first chunk goes out in time
    worker.invoke(first)
    assert time.time() < expires, "the first chunk took too long for this test to mean anything"
    wait_until(expires)
    worker.drain()

    sent = at_sink(smtp_sink)
    assert len(sent) == 1
    by_email = dict(zip(emails, statuses(stores, account, [m.id for m in accepted.messages]), strict=True))
    assert by_email[sent[0]] == MessageStatus.SENT
    assert sorted(by_email.values()) == sorted(
        [MessageStatus.SENT, MessageStatus.EXPIRED, MessageStatus.EXPIRED]
    )


def test_a_scheduled_job_whose_expiry_passes_before_the_schedule_fires_expires(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    now = time.time()
    first_attempt, expires = now + 0.3, now + 0.6
    accepted = submission.submit(
        account.id,
        request(["a@example.com", "b@example.com"], first_attempt_at=first_attempt, expires_at=expires),
    )
    assert accepted.job.state == JobState.SCHEDULED

    wait_until(expires)  # the scheduler is late: its first pass after the expiry
    assert fire_due(stores, time.time()) == [accepted.job.id]
    worker.drain()

    assert at_sink(smtp_sink) == []
    assert statuses(stores, account, [m.id for m in accepted.messages]) == [MessageStatus.EXPIRED] * 2
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state == JobState.EXPIRED
    assert job.counts == {"expired": 2}


def test_a_scheduled_job_fired_before_its_expiry_is_sent(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    first_attempt = time.time() + HOUR
    accepted = submission.submit(
        account.id,
        request(["a@example.com"], first_attempt_at=first_attempt, expires_at=first_attempt + HOUR),
    )
    fire_due(stores, first_attempt)
    worker.drain()
    assert at_sink(smtp_sink) == ["a@example.com"]
    assert statuses(stores, account, [m.id for m in accepted.messages]) == [MessageStatus.SENT]
