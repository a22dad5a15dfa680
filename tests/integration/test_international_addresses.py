"""Recipients outside ASCII: an internationalized domain goes out in its ASCII form; a non-ASCII
local part, which only SMTPUTF8 carries (SES and MailSage's relays do not), is refused when the
request arrives (an error naming the character) instead of being accepted and failing at send.
Before, an internationalized domain was accepted and then failed its chunk at every attempt (its
envelope recipient was not ASCII)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ApiClient, Worker, read_eml

SEND = "/api/v1/emails/send"
BATCH = "/api/v1/emails/batch"
CONTENT: dict[str, Any] = {"subject": "Hello", "body": "Hi."}


def test_a_non_ascii_local_part_is_refused_on_send(api: ApiClient) -> None:
    reply = api.post(SEND, {"recipient": {"email": "jörg@example.com"}, **CONTENT})
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "invalid_recipient"
    assert "before the @-sign" in reply.error["message"] and "'ö'" in reply.error["message"]


def test_a_batch_goes_out_without_a_non_ascii_local_part_and_says_why(
    api: ApiClient, worker: Worker, smtp_sink: Any
) -> None:
    recipients = [{"email": "ann@example.com"}, {"email": "jörg@example.com"}, {"email": "bob@example.com"}]
    reply = api.post(BATCH, {"recipients": recipients, **CONTENT})
    assert reply.status == 202, reply.body
    [rejected] = reply.body["errors"]
    assert (rejected["index"], rejected["code"]) == (1, "invalid_recipient")
    worker.drain()
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert job["state"] == "completed" and job["counts"]["failed"] == 0, job
    assert sorted(str(read_eml(p)["To"]) for p in smtp_sink.messages()) == [
        "ann@example.com",
        "bob@example.com",
    ]


@pytest.mark.parametrize(
    ("address", "sent_to"),
    [
        ("joe@bücher.de", "joe@xn--bcher-kva.de"),
        # IDNA 2008, as the address check reads it: Python's own 'idna' codec (IDNA 2003) would
        # send this to strasse.de, another domain.
        ("ann@straße.de", "ann@xn--strae-oqa.de"),
    ],
)
def test_an_internationalized_domain_is_sent_in_its_ascii_form(
    api: ApiClient, worker: Worker, smtp_sink: Any, address: str, sent_to: str
) -> None:
    reply = api.post(SEND, {"recipient": {"email": address}, **CONTENT})
    assert reply.status == 202, reply.body
    worker.drain()  # the envelope's RCPT too: smtplib refuses a non-ASCII one
    [eml] = smtp_sink.messages()
    assert str(read_eml(eml)["To"]) == sent_to


def test_v2_lists_a_non_ascii_local_part_as_an_error_and_sends_the_rest(
    api_handler: Any, account: Any
) -> None:
    v2 = ApiClient(api_handler, account.key)
    body = {
        "from": {"email": "hello@example.com"},
        "recipients": [{"email": "jörg@example.com"}, {"email": "ann@example.com"}],
        "subject": "Hello",
        "text_content": "Hi.",
    }
    reply = v2.post(f"/v2/accounts/{account.id}/messages", body)
    assert reply.status == 202, reply.body
    assert [entry["status"] for entry in reply.body["data"]] == ["error", "queued"], reply.body
    assert "before the @-sign" in reply.body["data"][0]["error"]


def test_a_non_ascii_local_part_accepted_before_this_check_fails_alone(
    api: ApiClient, worker: Worker, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job accepted by an older version may hold one: that message fails, its chunk-mates go."""
    from mailsage.domain import addresses, submission

    monkeypatch.setattr(submission, "normalize_email", lambda a, sendable=False: addresses.normalize_email(a))
    recipients = [{"email": "ann@example.com"}, {"email": "jörg@example.com"}, {"email": "bob@example.com"}]
    reply = api.post(BATCH, {"recipients": recipients, **CONTENT})
    assert reply.status == 202 and reply.body["accepted"] == 3, reply.body
    worker.drain()
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert job["state"] == "completed" and job["counts"]["failed"] == 1, job
    assert sorted(str(read_eml(p)["To"]) for p in smtp_sink.messages()) == [
        "ann@example.com",
        "bob@example.com",
    ]
