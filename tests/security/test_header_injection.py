"""Header injection through RFC 2047 encoded words and control characters, against the real api,
sender, ingest and events handlers, the real SQLite store and the built-in SMTP sink.

An encoded word a caller writes reaches the recipient as those literal characters; a control
character in a name or header value is a 400 at submit; the sink's notifications name only the
message that was sent, so one account cannot move another's message.
It uses test_feedback_events' fixtures (imported, so F811 flags each test that takes one)."""
# ruff: noqa: F811

from __future__ import annotations

import base64
import json
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailsage.adapters.aws import ses_events
from mailsage.domain.feedback import FeedbackService
from mailsage.local.functions import LocalContext, load_handler
from mailsage.local.sink import SmtpSink
from mailsage.ports import Queue
from mailsage.settings import IngestSettings
from mailsage.wiring import Backends, ingest_service
from tests.conftest import Account, ApiClient, Worker, load_event, read_eml
from tests.integration.test_feedback_events import (  # noqa: F401 (fixtures)
    Feedback,
    _tracking,
    feedback,
    message_of,
    smtp_sink,
)

# The payloads: a quoted-printable encoded word that decodes to a Bcc and a header line,
# and a base64 one that decodes to CRLF CRLF and a body of the attacker's.
Q_WORD = "=?utf-8?q?Hi=0D=0ABcc:_victim@example.com=0D=0AX-Injected:_yes?="
B_WORD = (
    "=?utf-8?b?" + base64.b64encode(b"Hi\r\nBcc: victim@example.com\r\n\r\nattacker body").decode() + "?="
)
SENDER = "News <news@acme-mail.com>"
OWN_HEADERS = ["From", "To", "Subject", "Date", "Message-ID"]


def delivered(sink: SmtpSink) -> list[EmailMessage]:
    return [read_eml(p) for p in sink.messages()]


def header_names(msg: EmailMessage) -> list[str]:
    return [k for k in msg if not k.startswith(("X-MailSage-", "Content-", "MIME-"))]


def v2_messages(account: Account) -> str:
    return f"/v2/accounts/{account.id}/messages"


def v2_message(**fields: Any) -> dict[str, Any]:
    return {
        "from": {"email": "hello@example.com", "name": "Example"},
        "recipients": [{"email": "ann@example.com"}],
        "subject": "Hello",
        "text_content": "Hello there",
        **fields,
    }


# -- encoded words reach the recipient as text ------------------------------------------------------
@pytest.mark.parametrize("payload", [Q_WORD, B_WORD])
def test_an_encoded_word_rendered_into_a_subject_is_text_not_headers(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, payload: str
) -> None:
    # Given a v1 send whose subject renders a variable holding an encoded word
    reply = api.post(
        "/api/v1/emails/send",
        v1_send(subject="{{ name }}", body="the real body", variables={"name": payload}),
    )
    assert reply.status == 202, reply.body
    # When it is sent
    worker.drain()
    # Then the recipient's message has our headers only, the subject is the literal text, and the
    # body is ours
    [msg] = delivered(smtp_sink)
    assert header_names(msg) == [*OWN_HEADERS, "Feedback-ID"]
    assert msg["Subject"] == payload
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert msg.get_content().strip() == "the real body"


def test_v2_header_values_file_names_and_names_carry_encoded_words_as_text(
    api: ApiClient, account: Account, worker: Worker, smtp_sink: SmtpSink
) -> None:
    # Given a v2 message with the payload in a custom header, the from and recipient names and an
    # attachment's file name
    body = v2_message(
        **{
            "from": {"email": "hello@example.com", "name": Q_WORD},
            "recipients": [{"email": "ann@example.com", "name": B_WORD}],
            "subject": B_WORD,
            "headers": {"X-Note": Q_WORD},
            "attachments": [{"file_name": Q_WORD, "content_type": "text/plain", "data": "file body"}],
        }
    )
    reply = api.post(v2_messages(account), body)
    assert reply.status == 202, reply.body
    # When it is sent
    worker.drain()
    # Then each field reads back as the literal text and no header was added
    [msg] = delivered(smtp_sink)
    assert header_names(msg) == [*OWN_HEADERS, "X-Note", "Feedback-ID"]
    assert msg["X-Note"] == Q_WORD
    assert msg["Subject"] == B_WORD
    assert msg["From"].addresses[0].display_name == Q_WORD
    assert msg["To"].addresses[0].display_name.startswith("=?utf-8?b?")
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == Q_WORD
    assert attachment.get_content().replace("\r\n", "\n").strip() == "file body"


def test_an_encoded_word_in_a_content_id_is_refused_at_submit(api: ApiClient, account: Account) -> None:
    # Given a content id that the email package would decode as an encoded word
    attachment = {"file_name": "a.png", "content_type": "image/png", "data": "x", "content_id": f"<{Q_WORD}>"}
    # When it is submitted, Then it is a 400 naming the field
    reply = api.post(v2_messages(account), v2_message(attachments=[attachment]))
    assert reply.status == 400
    assert "content_id" in json.dumps(reply.body)


# -- control characters are a 400 at submit -------------------------------------------------------
CONTROLS = ["\x00", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\x85", "\u2028", "\u2029"]


def v1_send(to: str = "ann@example.com", name: str | None = None, **fields: Any) -> dict[str, Any]:
    recipient = {"email": to, "name": name, "variables": fields.pop("variables", {})}
    return {"recipient": recipient, "subject": "Hi", "body": "body", "from": SENDER, **fields}


@pytest.mark.parametrize("char", CONTROLS)
@pytest.mark.parametrize(
    ("path", "make"),
    [
        ("/api/v1/emails/send", lambda c: v1_send(subject=f"Hi{c}there")),
        ("/api/v1/emails/send", lambda c: v1_send(name=f"Ann{c}")),
        ("/api/v1/emails/send", lambda c: v1_send(**{"from": f"News{c} <news@acme-mail.com>"})),
        ("/api/v1/emails/send", lambda c: v1_send(reply_to=f"Help{c} <help@acme-mail.com>")),
        ("/api/v1/emails/send", lambda c: v1_send(subject="{{ s }}", variables={"s": f"a{c}b"})),
        (
            "/api/v1/emails/batch",
            lambda c: {"recipients": [{"email": "a@example.com"}], "subject": f"x{c}", "body": "b"},
        ),
        ("/api/v1/templates", lambda c: {"name": "t", "subject": f"Hi{c}", "text": "body"}),
        ("v2", lambda c: v2_message(**{"from": {"email": "hello@example.com", "name": f"Ex{c}"}})),
        ("v2", lambda c: v2_message(subject=f"Hello{c}")),
        ("v2", lambda c: v2_message(headers={"X-Note": f"a{c}b"})),
        (
            "v2",
            lambda c: v2_message(
                attachments=[{"file_name": f"a{c}.txt", "content_type": "text/plain", "data": "x"}]
            ),
        ),
        ("v2", lambda c: v2_message(recipients=[{"email": "ann@example.com", "name": f"Ann{c}"}])),
    ],
)
def test_a_control_character_in_a_header_field_is_a_400_at_submit(
    api: ApiClient, account: Account, stores: Backends, path: str, make: Any, char: str
) -> None:
    # Given a request with a control or line-separator character in a name or header value
    # When it is submitted
    reply = api.post(v2_messages(account) if path == "v2" else path, make(char))
    # Then it is refused with a 400 and nothing is queued
    assert reply.status == 400, reply.body
    assert stores.queue.depth() == 0


@pytest.mark.parametrize("value", ["a Bcc: v@e.com <f@example.com>", "f@example.com, v@e.com", "x: v@e.com;"])
def test_a_from_that_parses_as_a_group_or_a_list_is_a_400(api: ApiClient, value: str) -> None:
    # Given a From that parseaddr reads as a group ("a Bcc:"), or a list
    # When it is submitted, Then it is a 400 naming the field
    reply = api.post("/api/v1/emails/send", v1_send(**{"from": value}))
    assert reply.status == 400
    assert "from" in json.dumps(reply.body)


def test_ingest_refuses_a_group_from_and_a_control_character_with_the_reason(
    data_dir: Path, account: Account, stores: Backends
) -> None:
    # Given ingest records with a group From and with a NEL in the subject
    handler = load_handler("ingest")
    dead_letters: Queue = ingest_service(IngestSettings()).dead_letters
    for changes in ({"from": "a Bcc: v@e.com <f@example.com>"}, {"subject": "Hi\x85there"}):
        event = load_event("sqs_ingest_batch.json")
        body = json.loads(event["Records"][0]["body"])
        body.update({"account_id": account.id, **changes})
        event["Records"][0]["body"] = json.dumps(body)
        # When each is ingested
        handler.lambda_handler(event, LocalContext("mailsage-ingest"))
    # Then both are dead letters with the reason, and nothing is sent
    dead = [d.body for d in dead_letters.receive(max_messages=10)]
    assert len(dead) == 2, dead
    assert "from must be one address" in dead[0]["reason"]
    assert "U+0085" in json.dumps(dead[1]["details"]), dead[1]
    assert stores.queue.depth() == 0


# -- the sink names only the message that was sent ------------------------------------------------
def test_one_account_cannot_forge_a_complaint_on_another_accounts_message(
    api_handler: Any,
    new_account: Any,
    worker: Worker,
    feedback: Feedback,
    smtp_sink: SmtpSink,
    stores: Backends,
) -> None:
    a, b = new_account(), new_account()
    api_a, api_b = ApiClient(api_handler, a.key), ApiClient(api_handler, b.key)
    # Given B's message, delivered, and its real Feedback-ID (which A can read as a recipient)
    sent_b = api_b.post("/api/v1/emails/send", v1_send(to="reader@example.com"))
    assert sent_b.status == 202, sent_b.body
    worker.drain()
    feedback.apply()
    [b_mail] = delivered(smtp_sink)
    b_feedback_id = b_mail["Feedback-ID"]
    b_message = message_of(stores, b, sent_b.body["job_id"], "reader@example.com")
    assert b_message.status.value == "delivered"
    assert b_message.id not in b_feedback_id and b.id not in b_feedback_id  # opaque

    # When A sends to a complaining address, smuggling B's Feedback-ID by an encoded word in the
    # subject and a custom header, and also hands the sink a message carrying B's header directly
    smuggled = "=?utf-8?q?x=0D=0AFeedback-ID:_" + b_feedback_id.replace(":", "=3A") + "?="
    sent_a = api_a.post(
        "/api/v1/emails/send",
        v1_send(to="complain-1@example.com", subject="{{ s }}", variables={"s": smuggled}),
    )
    assert sent_a.status == 202, sent_a.body
    v2_a = api_a.post(
        v2_messages(a),
        v2_message(recipients=[{"email": "complain-2@example.com"}], headers={"X-Note": smuggled}),
    )
    assert v2_a.status == 202, v2_a.body
    worker.drain()
    forged = (
        f"From: x@example.com\r\nTo: complain-3@example.com\r\nFeedback-ID: {b_feedback_id}\r\n\r\nhi\r\n"
    )
    with smtplib.SMTP("127.0.0.1", smtp_sink.port) as client:
        client.sendmail("x@example.com", ["complain-3@example.com"], forged)
    feedback.apply()

    # Then B's message is still delivered and B suppressed nobody; A's complaints are A's own
    assert message_of(stores, b, sent_b.body["job_id"], "reader@example.com").status.value == "delivered"
    assert (
        stores.store.suppressed(
            b.id,
            ["complain-1@example.com", "complain-2@example.com", "complain-3@example.com"],
            "acme-mail.com",
            1e12,
        )
        == set()
    )
    assert message_of(stores, a, sent_a.body["job_id"], "complain-1@example.com").status.value == "complained"


def test_a_notification_naming_another_account_moves_nothing(
    api_handler: Any, new_account: Any, worker: Worker, feedback: Feedback, stores: Backends
) -> None:
    a, b = new_account(), new_account()
    # Given B's delivered message
    sent = ApiClient(api_handler, b.key).post("/api/v1/emails/send", v1_send(to="reader@example.com"))
    worker.drain()
    feedback.apply()
    message = message_of(stores, b, sent.body["job_id"], "reader@example.com")
    # When the events function gets a complaint that names B's message under A's account
    body = json.loads(load_event("ses_complaint.json")["Records"][0]["body"])
    body["mail"]["tags"].update(
        {"account_id": [a.id], "job_id": [message.job_id], "message_id": [message.id]}
    )
    body["complaint"]["complainedRecipients"] = [{"emailAddress": "reader@example.com"}]
    feedback.apply([body])
    # Then B's message is unchanged and neither account suppressed the address
    report = ses_events.to_report(body)
    assert report is not None
    outcome = FeedbackService(stores.store).apply(report)
    assert (outcome.status, outcome.reason) == (None, "no such message in this account")
    assert message_of(stores, b, sent.body["job_id"], "reader@example.com").status.value == "delivered"
    for account in (a, b):
        assert stores.store.suppressed(account.id, ["reader@example.com"], "acme-mail.com", 1e12) == set()
