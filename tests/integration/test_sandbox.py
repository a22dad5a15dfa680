"""Sandbox messages go through the whole pipeline (submission, queue, the real sender handler,
MIME building) to the sandbox transport, end in the outcome asked for, and never reach SMTP.

Submitted through the domain (`SubmissionService`), as the v1 and v2 surfaces both do."""

from __future__ import annotations

import base64
import time

import pytest

from mailsage.domain.models import JOB_FINAL, MessageStatus, Suppression, new_id
from mailsage.domain.submission import JobRequest, RecipientInput, SubmissionService
from mailsage.local.sink import SmtpSink
from mailsage.settings import ApiSettings
from mailsage.wiring import Backends, api_services
from tests.conftest import Account, ApiClient, Worker, read_eml

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()

OUTCOMES = [
    ("deliver", MessageStatus.DELIVERED),
    ("bounce", MessageStatus.BOUNCED),
    ("defer", MessageStatus.DEFERRED),
    ("fail", MessageStatus.FAILED),
    ("suppress", MessageStatus.SUPPRESSED),
]


@pytest.fixture
def submission(stores: Backends) -> SubmissionService:
    return api_services(ApiSettings()).submission


def request(sandbox_result: str | None, emails: list[str], **kw: object) -> JobRequest:
    return JobRequest(
        kind="batch",
        recipients=[RecipientInput(e, f"User {i}", {"n": i}) for i, e in enumerate(emails)],
        subject="Hi {{ n }}",
        text="Number {{ n }}",
        html='<p>Number {{ n }}</p><img src="cid:logo">',
        attachments=[
            {
                "file_name": "logo.png",
                "content_type": "image/png",
                "data": PNG,
                "disposition": "inline",
                "content_id": "logo",
            }
        ],
        headers={"X-Campaign": "sandbox"},
        sandbox_result=sandbox_result,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("outcome", "status"), OUTCOMES)
def test_each_sandbox_result_ends_in_its_status_and_nothing_reaches_smtp(
    outcome: str,
    status: MessageStatus,
    submission: SubmissionService,
    account: Account,
    worker: Worker,
    smtp_sink: SmtpSink,
    stores: Backends,
) -> None:
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    accepted = submission.submit(account.id, request(outcome, emails))
    assert [m.status for m in accepted.messages] == [MessageStatus.QUEUED] * 3

    worker.drain()

    messages = stores.store.chunk_messages(accepted.job.id, 0)
    assert [(m.email, m.status) for m in messages] == [(e, status) for e in emails]
    for message in messages:
        assert message.attempts == 1  # the outcome is final at once: a sandbox "defer" is not retried
        assert message.events and "sandbox" in (message.events[-1].get("log") or "")
        assert stores.store.get_message(account.id, message.id).status == status  # type: ignore[union-attr]
    job = stores.store.get_job(account.id, accepted.job.id)
    assert job is not None and job.state in JOB_FINAL
    assert job.counts == {status.value: 3}
    assert job.dead_letters == []
    assert smtp_sink.messages() == []


def test_the_sandbox_wins_over_an_explicit_smtp_provider(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    accepted = submission.submit(account.id, request("deliver", ["ann@example.com"], provider="default"))
    worker.drain()
    assert stores.store.chunk_messages(accepted.job.id, 0)[0].status == MessageStatus.DELIVERED
    assert smtp_sink.messages() == []


def test_sandbox_and_real_jobs_side_by_side_only_the_real_one_reaches_the_sink(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    sandboxed = submission.submit(account.id, request("deliver", ["sandbox@example.com"]))
    real = submission.submit(account.id, request(None, ["real@example.com"]))
    worker.drain()

    assert stores.store.chunk_messages(sandboxed.job.id, 0)[0].status == MessageStatus.DELIVERED
    assert stores.store.chunk_messages(real.job.id, 0)[0].status == MessageStatus.SENT
    received = [read_eml(p) for p in smtp_sink.messages()]
    assert [m["To"] for m in received] == ["User 0 <real@example.com>"]
    # The real message went through the same MIME path the sandbox one did.
    assert received[0].get_content_type() == "multipart/alternative"
    assert received[0]["X-Campaign"] == "sandbox"


def test_a_sandbox_recipient_on_the_suppression_list_is_suppressed_without_a_send(
    submission: SubmissionService, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    now = time.time()
    stores.store.put_suppression(
        Suppression(new_id("sup"), account.id, "bob@example.com", None, "bounce", now, now + 3600)
    )
    accepted = submission.submit(account.id, request("deliver", ["ann@example.com", "bob@example.com"]))
    worker.drain()
    statuses = {m.email: stores.store.get_message(account.id, m.id).status for m in accepted.messages}  # type: ignore[union-attr]
    assert statuses == {
        "ann@example.com": MessageStatus.DELIVERED,
        "bob@example.com": MessageStatus.SUPPRESSED,
    }
    assert smtp_sink.messages() == []


# -- the same through the AhaSend v2 HTTP surface ------------------------------------------------
V2_STATUS = {
    "deliver": "Sandbox Delivered",
    "bounce": "Sandbox Bounced",
    "defer": "Sandbox Deferred",
    "fail": "Sandbox Failed",
    "suppress": "Sandbox Suppressed",
}


@pytest.mark.parametrize("outcome", list(V2_STATUS))
def test_v2_sandbox_results_end_in_their_sandbox_status_and_nothing_reaches_smtp(
    outcome: str, api: ApiClient, account: Account, worker: Worker, smtp_sink: SmtpSink
) -> None:
    reply = api.post(
        f"/v2/accounts/{account.id}/messages",
        {
            "from": {"email": "noreply@mailsage.example", "name": "MailSage"},
            "recipients": [
                {"email": "ann@example.com", "substitutions": {"n": 1}},
                {"email": "bob@example.com", "substitutions": {"n": 2}},
            ],
            "subject": "Hi {{ n }}",
            "text_content": "Number {{ n }}",
            "html_content": '<p>Number {{ n }}</p><img src="cid:logo@mailsage">',
            "attachments": [
                {
                    "base64": True,
                    "data": PNG,
                    "content_type": "image/png",
                    "file_name": "logo.png",
                    "content_id": "<logo@mailsage>",
                }
            ],
            "sandbox": True,
            "sandbox_result": outcome,
        },
    )
    assert reply.status == 202, reply.body
    ids = [entry["id"] for entry in reply.body["data"]]
    assert [entry["status"] for entry in reply.body["data"]] == ["queued", "queued"]

    worker.drain()

    for message_id in ids:
        shown = api.get(f"/v2/accounts/{account.id}/messages/{message_id.strip('<>').split('@')[0]}")
        assert shown.status == 200, shown.body
        assert shown.body["status"] == V2_STATUS[outcome]
    listed = api.get(f"/v2/accounts/{account.id}/messages?status={V2_STATUS[outcome].replace(' ', '%20')}")
    assert listed.status == 200, listed.body
    assert len(listed.body["data"]) == 2
    assert smtp_sink.messages() == []
