"""The AhaSend v2 message surface end to end in-process: create-message through the real api handler,
the real sender handler and a real SMTP sink; listing, lookup and cancel."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mailsage.domain.models import Account as AccountSettings
from mailsage.local.functions import load_handler
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply, Worker, read_eml

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def bare(message_id: str) -> str:
    return message_id.strip("<>").partition("@")[0]


def message(*recipients: str | dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "hello@example.com", "name": "Example"},
        "recipients": [{"email": r} if isinstance(r, str) else r for r in recipients],
        "subject": "Hello",
        "text_content": "Hello there",
    }
    body.update(fields)
    return body


class V2:
    def __init__(self, api: ApiClient, account: Account) -> None:
        self.api = api
        self.messages = f"/v2/accounts/{account.id}/messages"

    def create(self, body: dict[str, Any], status: int = 202) -> list[dict[str, Any]]:
        reply = self.api.post(self.messages, body)
        assert reply.status == status, reply.body
        return reply.body["data"] if status == 202 else [reply.body]  # type: ignore[no-any-return]

    def get(self, message_id: str) -> dict[str, Any]:
        reply = self.api.get(f"{self.messages}/{quote(message_id)}")
        assert reply.status == 200, reply.body
        return reply.body  # type: ignore[no-any-return]

    def list(self, query: str = "") -> dict[str, Any]:
        reply = self.api.get(f"{self.messages}?{query}")
        assert reply.status == 200, reply.body
        return reply.body  # type: ignore[no-any-return]

    def cancel(self, message_id: str) -> Reply:
        return self.api.delete(f"{self.messages}/{quote(message_id)}/cancel")


@pytest.fixture
def v2(api: ApiClient, account: Account) -> V2:
    return V2(api, account)


def received(sink: SmtpSink) -> dict[str, EmailMessage]:
    """The sink's messages by recipient."""
    return {str(m["To"].addresses[0].addr_spec): m for m in map(read_eml, sink.messages())}


def error_400(reply: Reply) -> str:
    assert reply.status == 400, reply.body
    assert set(reply.body) == {"message"}
    return str(reply.body["message"])


# -- content, substitutions, headers ----------------------------------------------------------------


def test_two_recipients_get_their_own_rendered_message(v2: V2, worker: Worker, smtp_sink: SmtpSink) -> None:
    # Given global substitutions overridden per recipient
    body = message(
        {"email": "john@example.com", "name": "John Doe", "substitutions": {"first_name": "John"}},
        {"email": "jane@example.com", "substitutions": {"first_name": "Jane", "plan": "Pro"}},
        subject="Welcome {{ first_name }}",
        text_content="Hi {{ first_name }}, plan {{ plan }} at {{ company }}",
        html_content="<p>Hi <b>{{ first_name }}</b> &amp; {{ company }}</p>",
        substitutions={"company": "Acme <Inc>", "plan": "Free", "first_name": "there"},
        reply_to={"email": "support@example.com", "name": "Support"},
        headers={"X-Campaign": "launch", "message-id": "<mine@example.com>"},
        tags=["welcome"],
    )
    # When it is created and sent
    entries = v2.create(body)
    worker.drain()
    # Then one message per recipient, each with its own substitutions, and the ids in the reply
    assert [(e["recipient"], e["status"], e["error"]) for e in entries] == [
        (
            {"email": "john@example.com", "name": "John Doe", "substitutions": {"first_name": "John"}},
            "queued",
            None,
        ),
        (
            {"email": "jane@example.com", "name": "", "substitutions": {"first_name": "Jane", "plan": "Pro"}},
            "queued",
            None,
        ),
    ]
    mail = received(smtp_sink)
    assert set(mail) == {"john@example.com", "jane@example.com"}
    john, jane = mail["john@example.com"], mail["jane@example.com"]
    assert john["Subject"] == "Welcome John" and jane["Subject"] == "Welcome Jane"
    assert john.get_body(("plain",)).get_content().strip() == "Hi John, plan Free at Acme <Inc>"  # type: ignore[union-attr]
    assert jane.get_body(("plain",)).get_content().strip() == "Hi Jane, plan Pro at Acme <Inc>"  # type: ignore[union-attr]
    assert "Acme &lt;Inc&gt;" in john.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert str(john["To"]) == "John Doe <john@example.com>" and str(jane["To"]) == "jane@example.com"
    assert str(john["From"]) == "Example <hello@example.com>"
    assert str(john["Reply-To"]) == "Support <support@example.com>"
    assert john["X-Campaign"] == "launch"
    # The Message-ID is MailSage's (a given one is ignored), the one the reply announced
    assert john["Message-ID"] == entries[0]["id"] and jane["Message-ID"] == entries[1]["id"]
    assert "mine@example.com" not in john.as_string()


def test_a_recipient_that_cannot_be_sent_is_an_error_entry_and_the_others_go_out(
    v2: V2, worker: Worker, smtp_sink: SmtpSink
) -> None:
    body = message(
        {"email": "ok@example.com", "substitutions": {"n": 1}},
        {"email": "not-an-address", "substitutions": {"n": 2}},
        {"email": "missing@example.com"},  # {{ n }} is undefined: a template error
        {"email": "OK@example.com", "substitutions": {"n": 4}},  # the same address again
        subject="Number {{ n }}",
    )
    entries = v2.create(body)
    worker.drain()
    assert [(e["status"], e["id"] is None) for e in entries] == [
        ("queued", False),
        ("error", True),
        ("error", True),
        ("error", True),
    ]
    assert "not a valid email address" in entries[1]["error"]
    assert "'n' is undefined" in entries[2]["error"]
    assert "duplicate" in entries[3]["error"]
    assert set(received(smtp_sink)) == {"ok@example.com"}


def test_when_every_recipient_fails_the_reply_is_still_202_and_nothing_is_queued(
    v2: V2, stores: Backends
) -> None:
    entries = v2.create(message("bad", "worse"))
    assert [e["status"] for e in entries] == ["error", "error"]
    assert stores.queue.depth() == 0
    assert v2.list()["data"] == []


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"From": "x@example.com"}, "From is set by MailSage"),
        ({"to": "x@example.com"}, "set by MailSage"),
        ({"Bcc": "x@example.com"}, "set by MailSage"),
        ({"Date": "today"}, "set by MailSage"),
        ({"MIME-Version": "2.0"}, "set by MailSage"),
        ({"Content-Transfer-Encoding": "8bit"}, "set by MailSage"),
        ({"X-MailSage-Job-ID": "job_x"}, "set by MailSage"),
        ({"X-Note": "a\nb"}, "line break"),
        ({"X-Note": "a\rb"}, "line break"),
        ({"X Note": "x"}, "not a valid header name"),
        ({"X-Note:": "x"}, "not a valid header name"),
    ],
)
def test_headers_mailsage_sets_or_that_could_inject_are_400(
    v2: V2, stores: Backends, headers: dict[str, str], fragment: str
) -> None:
    reply = v2.api.post(v2.messages, message("a@example.com", headers=headers))
    assert fragment in error_400(reply)
    assert stores.queue.depth() == 0


def test_reply_to_and_a_reply_to_header_together_are_400_alone_fine(
    v2: V2, worker: Worker, smtp_sink: SmtpSink
) -> None:
    both = message(
        "a@example.com", reply_to={"email": "r@example.com"}, headers={"reply-to": "h@example.com"}
    )
    assert "not both" in error_400(v2.api.post(v2.messages, both))
    v2.create(message("b@example.com", headers={"Reply-To": "h@example.com"}))
    worker.drain()
    assert str(received(smtp_sink)["b@example.com"]["Reply-To"]) == "h@example.com"


def test_content_is_required_and_the_sender_must_be_an_address(v2: V2) -> None:
    no_content = message("a@example.com")
    del no_content["text_content"]
    assert "text_content or html_content" in error_400(v2.api.post(v2.messages, no_content))
    empty = message("a@example.com", text_content="", html_content="")
    assert "text_content or html_content" in error_400(v2.api.post(v2.messages, empty))
    bad_from = message("a@example.com", **{"from": {"email": "nobody"}})
    assert error_400(v2.api.post(v2.messages, bad_from)).startswith("from.email")
    too_many = message(*[f"u{i}@example.com" for i in range(101)])
    assert "recipients" in error_400(v2.api.post(v2.messages, too_many))


def test_unknown_fields_and_nulls_are_accepted(v2: V2) -> None:
    # An AhaSend client may send fields this surface does not use, and null for optional ones.
    body = message(
        "a@example.com",
        cc=[{"email": "x@example.com"}],
        html_content=None,
        reply_to=None,
        tags=None,
        schedule=None,
    )
    assert [e["status"] for e in v2.create(body)] == ["queued"]


# -- attachments -----------------------------------------------------------------------------------


def test_attachments_and_inline_images_arrive_as_mime_parts(
    v2: V2, worker: Worker, smtp_sink: SmtpSink
) -> None:
    body = message(
        "a@example.com",
        html_content='<p>Logo:</p><img src="cid:logo@example.com">',
        attachments=[
            {
                "base64": True,
                "data": base64.encodebytes(PNG).decode(),
                "content_type": "image/png",
                "file_name": "logo.png",
                "content_id": "<logo@example.com>",
            },
            {"data": "name,plan\nJohn,Pro\n", "content_type": "text/csv", "file_name": "plans.csv"},
            {
                "base64": True,
                "data": base64.b64encode(b"%PDF-1.4").decode(),
                "content_type": "application/pdf",
                "file_name": "terms.pdf",
                "content_id": "no-brackets@example.com",
            },
        ],
    )
    v2.create(body)
    worker.drain()
    mail = received(smtp_sink)["a@example.com"]
    assert mail.get_content_type() == "multipart/mixed"
    parts = {p.get_filename(): p for p in mail.walk() if p.get_filename()}
    assert set(parts) == {"logo.png", "plans.csv", "terms.pdf"}
    logo = parts["logo.png"]
    assert logo.get_content_disposition() == "inline" and logo["Content-ID"] == "<logo@example.com>"
    assert logo.get_payload(decode=True) == PNG
    related = [p for p in mail.walk() if p.get_content_type() == "multipart/related"]
    assert related and logo in list(related[0].iter_parts())  # next to the HTML that shows it
    assert parts["plans.csv"].get_payload(decode=True) == b"name,plan\nJohn,Pro\n"
    # A content_id without angle brackets: a regular attachment (the contract's rule)
    assert parts["terms.pdf"].get_content_disposition() == "attachment"


@pytest.mark.parametrize(
    ("attachment", "fragment"),
    [
        (
            {"base64": True, "data": "not base64!", "content_type": "text/plain", "file_name": "a"},
            "not valid base64",
        ),
        ({"data": "x", "content_type": "text", "file_name": "a"}, "content_type"),
        ({"data": "x", "content_type": "text/plain", "file_name": "a\r\nb"}, "file_name"),
        ({"data": "x", "content_type": "text/plain", "file_name": " "}, "file_name"),
        ({"data": "x", "content_type": "text/plain", "file_name": "a", "content_id": "<>"}, "content_id"),
        (
            {"data": "x", "content_type": "text/plain", "file_name": "a", "content_disposition": "form-data"},
            "content_disposition",
        ),
    ],
)
def test_bad_attachments_are_400(v2: V2, attachment: dict[str, Any], fragment: str) -> None:
    reply = v2.api.post(v2.messages, message("a@example.com", attachments=[attachment]))
    message_text = error_400(reply)
    assert message_text.startswith("attachments[0]") and fragment in message_text


def test_the_attachment_size_limit_is_a_setting(
    data_dir: Path, account: Account, monkeypatch: pytest.MonkeyPatch, stores: Backends
) -> None:
    monkeypatch.setenv("MAILSAGE_MAX_ATTACHMENT_BYTES", "2048")
    v2 = V2(ApiClient(load_handler("api"), account.key), account)
    # The limit counts decoded bytes, all attachments together
    exactly = [
        {
            "base64": True,
            "data": base64.b64encode(bytes(1024)).decode(),
            "content_type": "application/octet-stream",
            "file_name": f"{i}.bin",
        }
        for i in range(2)
    ]
    assert [e["status"] for e in v2.create(message("a@example.com", attachments=exactly))] == ["queued"]
    over = [*exactly, {"data": "x", "content_type": "text/plain", "file_name": "one-more.txt"}]
    assert "the limit is 2048 bytes" in error_400(
        v2.api.post(v2.messages, message("a@example.com", attachments=over))
    )
    assert stores.queue.depth() == 1


# -- sender domains and accounts -----------------------------------------------------------------------


def test_the_sender_domain_must_be_one_of_the_account(v2: V2, stores: Backends, account: Account) -> None:
    stores.store.put_account(AccountSettings(account.id, sender_domains=["Example.com", "mail.example.org"]))
    assert v2.create(message("a@example.com"))[0]["status"] == "queued"
    assert (
        v2.create(message("a@example.com", **{"from": {"email": "x@MAIL.example.org"}}))[0]["status"]
        == "queued"
    )
    reply = v2.api.post(v2.messages, message("a@example.com", **{"from": {"email": "x@sub.example.com"}}))
    assert reply.status == 403 and "sub.example.com is not a sender domain" in reply.body["message"]
    stores.store.put_account(AccountSettings(account.id, sender_domains=[]))
    assert v2.api.post(v2.messages, message("a@example.com")).status == 403


def test_a_key_works_only_on_its_own_account_path(
    v2: V2, api_handler: Any, new_account: Any, account: Account
) -> None:
    [entry] = v2.create(message("a@example.com"))
    intruder = ApiClient(api_handler, new_account().key)
    for method, path in (
        ("POST", v2.messages),
        ("GET", v2.messages),
        ("GET", f"{v2.messages}/{bare(entry['id'])}"),
        ("DELETE", f"{v2.messages}/{bare(entry['id'])}/cancel"),
    ):
        reply = intruder.request(method, path, message("b@example.com") if method == "POST" else None)
        assert reply.status == 403, (method, path, reply.body)
        assert reply.body == {"message": f"this API key does not belong to account {account.id!r}"}
    # The same account id spelled in upper case is the same account
    assert v2.api.get(v2.messages.replace(account.id, account.id.upper())).status == 200
    # No key at all: 401 with the v2 envelope
    reply = v2.api.get(v2.messages, key=None)
    assert (
        reply.status == 401
        and set(reply.body) == {"message"}
        and reply.headers["www-authenticate"] == "Bearer"
    )


# -- sandbox ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status"),
    [
        ("deliver", "Sandbox Delivered"),
        ("bounce", "Sandbox Bounced"),
        ("defer", "Sandbox Deferred"),
        ("fail", "Sandbox Failed"),
        ("suppress", "Sandbox Suppressed"),
        (None, "Sandbox Delivered"),
    ],
)
def test_sandbox_messages_end_in_the_outcome_asked_and_never_reach_smtp(
    v2: V2, worker: Worker, smtp_sink: SmtpSink, result: str | None, status: str
) -> None:
    fields: dict[str, Any] = {"sandbox": True}
    if result:
        fields["sandbox_result"] = result
    [entry] = v2.create(message("sandbox@example.com", **fields))
    worker.drain()
    assert v2.get(entry["id"])["status"] == status
    assert [m["status"] for m in v2.list(f"status={quote(status)}")["data"]] == [status]
    assert smtp_sink.messages() == []


def test_a_sandbox_result_without_sandbox_sends_for_real(v2: V2, worker: Worker, smtp_sink: SmtpSink) -> None:
    [entry] = v2.create(message("real@example.com", sandbox_result="bounce"))
    worker.drain()
    assert v2.get(entry["id"])["status"] == "Sent"
    assert set(received(smtp_sink)) == {"real@example.com"}


# -- schedule, cancel, retention ---------------------------------------------------------------------


def test_a_scheduled_message_waits_and_can_be_cancelled_before_its_first_attempt(
    v2: V2, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    first, until = time.time() + 3600, time.time() + 2 * 86400
    schedule = {"first_attempt": rfc3339(first), "expires": rfc3339(until)}
    entries = v2.create(message("keep@example.com", "drop@example.com", schedule=schedule))
    assert [(e["status"], e["schedule"]) for e in entries] == [("scheduled", schedule)] * 2
    worker.drain()
    assert smtp_sink.messages() == []  # not before its time
    keep, drop = entries
    assert v2.get(keep["id"])["status"] == "Scheduled"

    # Cancel by the Message-ID (raw, URL-encoded or bare all work)
    reply = v2.cancel(drop["id"])
    assert reply.status == 200 and reply.body == {
        "message": "the message was cancelled before its first attempt"
    }
    assert v2.get(bare(drop["id"]))["status"] == "Cancelled"
    again = v2.cancel(bare(drop["id"]))
    assert again.status == 400 and "the message is Cancelled" in again.body["message"]

    # At its time the kept one goes out, the cancelled one never
    assert stores.scheduler is not None
    for name, payload in stores.scheduler.due(first + 1):
        stores.queue.send([payload])
        stores.scheduler.delete(name)
    worker.drain()
    assert set(received(smtp_sink)) == {"keep@example.com"}
    assert v2.get(keep["id"])["status"] == "Sent"
    assert v2.cancel(keep["id"]).status == 400


def test_cancelling_every_message_of_a_schedule_removes_the_schedule(v2: V2, stores: Backends) -> None:
    [entry] = v2.create(message("a@example.com", schedule={"first_attempt": rfc3339(time.time() + 600)}))
    assert stores.scheduler is not None and stores.scheduler.due(time.time() + 700)
    assert v2.cancel(entry["id"]).status == 200
    assert stores.scheduler.due(time.time() + 700) == []


def test_an_expires_only_schedule_sends_now(v2: V2, worker: Worker, smtp_sink: SmtpSink) -> None:
    [entry] = v2.create(message("a@example.com", schedule={"expires": rfc3339(time.time() + 3600)}))
    assert entry["status"] == "queued" and set(entry["schedule"]) == {"expires"}
    worker.drain()
    assert set(received(smtp_sink)) == {"a@example.com"}


def test_retention_data_zero_drops_the_content_once_sent(v2: V2, worker: Worker, smtp_sink: SmtpSink) -> None:
    [gone] = v2.create(message("gone@example.com", retention={"metadata": 1, "data": 0}))
    [kept] = v2.create(message("kept@example.com", retention={"metadata": 30, "data": 7}))
    [default] = v2.create(message("default@example.com"))
    before = v2.get(gone["id"])
    assert "Hello there" in before["content"]  # not sent yet: the data is still there
    worker.drain()
    after = v2.get(gone["id"])
    assert "content" not in after and "content_parsed" not in after
    assert after["retain_until"] == after["sent_at"]
    kept_view = v2.get(kept["id"])
    assert kept_view["content_parsed"]["parts"][0]["content"].strip() == "Hello there"
    sent_at = datetime.fromisoformat(kept_view["sent_at"]).timestamp()
    assert datetime.fromisoformat(kept_view["retain_until"]).timestamp() == pytest.approx(sent_at + 7 * 86400)
    assert v2.get(default["id"])["retain_until"] == "9999-12-31T23:59:59Z"


# -- listing and lookup --------------------------------------------------------------------------------


def test_a_message_is_found_by_its_message_id_in_any_form(
    v2: V2, worker: Worker, smtp_sink: SmtpSink
) -> None:
    [entry] = v2.create(message("a@example.com", tags=["x"]))
    worker.drain()
    message_id = entry["id"]
    for form in (
        message_id,
        bare(message_id),
        quote(message_id, safe=""),
        f"<{bare(message_id)}@other.host>",
    ):
        got = v2.api.get(f"{v2.messages}/{form}")
        assert got.status == 200 and got.body["id"] == bare(message_id), form
    got = v2.get(message_id)
    assert got["message_id"] == message_id and got["status"] == "Sent" and got["num_attempts"] == 1
    assert [a["status"] for a in got["delivery_attempts"]] == ["sent"]
    assert got["tags"] == ["x"] and got["sender"] == "hello@example.com" and got["direction"] == "outbound"
    assert got["domain_id"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "example.com"))
    assert got["content"].startswith("From: Example <hello@example.com>")
    missing = v2.api.get(f"{v2.messages}/{uuid.uuid4()}")
    assert missing.status == 404 and set(missing.body) == {"message"}


def test_filters(v2: V2, worker: Worker, smtp_sink: SmtpSink) -> None:
    v2.create(message("a@example.com", subject="Invoice 1", tags=["billing", "urgent"]))
    v2.create(
        message(
            "b@example.com", subject="Newsletter", tags=["news"], **{"from": {"email": "news@example.org"}}
        )
    )
    v2.create(
        message("c@example.com", subject="Invoice 2", tags=["billing"], sandbox=True, sandbox_result="bounce")
    )
    worker.drain()

    def recipients(query: str) -> list[str]:
        return sorted(m["recipient"] for m in v2.list(query)["data"])

    assert recipients("") == ["a@example.com", "b@example.com", "c@example.com"]
    assert recipients("tags=billing") == ["a@example.com", "c@example.com"]
    assert recipients("tags=billing,urgent") == ["a@example.com"]
    assert recipients("sender=news@example.org") == ["b@example.com"]
    assert recipients("sender=ews@example.org") == []  # the address, not a substring of it
    assert recipients("recipient=B@example.com") == ["b@example.com"]
    assert recipients("subject=invoice") == ["a@example.com", "c@example.com"]
    assert recipients("status=Sent") == ["a@example.com", "b@example.com"]
    assert recipients("status=Bounced") == []  # a sandbox bounce is "Sandbox Bounced"
    assert recipients(f"status={quote('Sandbox Bounced')},Sent") == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert recipients("status=Received") == []
    now = time.time()
    assert len(recipients(f"from_time={quote(rfc3339(now - 60))}&to_time={quote(rfc3339(now + 60))}")) == 3
    assert recipients(f"from_time={quote(rfc3339(now + 60))}") == []


def test_pages_walk_forwards_and_back(v2: V2) -> None:
    for i in range(7):
        v2.create(message(f"u{i}@example.com"))
    newest_first = [f"u{i}@example.com" for i in reversed(range(7))]

    pages, query = [], "limit=3"
    while True:
        page = v2.list(query)
        pages.append(page)
        if not page["pagination"]["has_more"]:
            break
        query = f"limit=3&after={page['pagination']['next_cursor']}"
    assert [[m["recipient"] for m in p["data"]] for p in pages] == [
        newest_first[:3],
        newest_first[3:6],
        newest_first[6:],
    ]
    assert "previous_cursor" not in pages[0]["pagination"]
    assert "next_cursor" not in pages[2]["pagination"]

    back = v2.list(f"limit=3&before={pages[2]['pagination']['previous_cursor']}")
    assert [m["recipient"] for m in back["data"]] == newest_first[3:6]
    assert back["pagination"]["has_more"] is True
    first = v2.list(f"limit=3&before={back['pagination']['previous_cursor']}")
    assert [m["recipient"] for m in first["data"]] == newest_first[:3]
    assert "previous_cursor" not in first["pagination"]
    # The legacy `cursor` parameter is `after`
    legacy = v2.list(f"limit=3&cursor={pages[0]['pagination']['next_cursor']}")
    assert legacy["data"] == pages[1]["data"]
