"""What a message's GET shows is what was sent: the real api handler, the real sender handler and
the SMTP sink (which keeps every message byte for byte), with tracking and unsubscribe links on."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mailsage.domain.models import Suppression
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Worker

PUBLIC_URL = "https://mail.example.test"


@pytest.fixture
def tracked(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both functions know the public URL (before either handler is loaded): links are tracked."""
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", PUBLIC_URL)
    yield


def sent_by_recipient(sink: SmtpSink) -> dict[str, bytes]:
    found = {}
    for path in sink.messages():
        data = path.read_bytes()
        found[str(message_from_bytes(data, policy=policy.default)["To"].addresses[0].addr_spec)] = data
    return found


def test_a_messages_content_is_the_message_that_was_sent(
    tracked: None, api: ApiClient, account: Account, worker: Worker, smtp_sink: SmtpSink
) -> None:
    # Given a v2 message to two recipients (bulk: List-Unsubscribe) with opens and clicks tracked,
    # a link, a custom header, substitutions, an inline image and an attachment
    body: dict[str, Any] = {
        "from": {"email": "hello@example.com", "name": "Example"},
        "recipients": [
            {"email": "ann@example.com", "name": "Ann", "substitutions": {"n": "1"}},
            {"email": "bob@example.com", "name": "Bob", "substitutions": {"n": "2"}},
        ],
        "subject": "Hello {{ n }}",
        "text_content": "Number {{ n }}",
        "html_content": '<html><body><p>Number {{ n }}</p><a href="https://example.com/x">x</a>'
        '<img src="cid:logo@example.com"></body></html>',
        "headers": {"X-Campaign": "spring"},
        "tracking": {"open": True, "click": True},
        "attachments": [
            {
                "data": base64.b64encode(b"PNG").decode(),
                "base64": True,
                "content_type": "image/png",
                "file_name": "logo.png",
                "content_id": "<logo@example.com>",
            },
            {"data": "a,b\n1,2\n", "content_type": "text/csv", "file_name": "data.csv"},
        ],
    }
    reply = api.post(f"/v2/accounts/{account.id}/messages", body)
    assert reply.status == 202, reply.body
    ids = {e["recipient"]["email"]: e["id"] for e in reply.body["data"]}

    # When the sender sends them, and each is looked up afterwards
    worker.drain()
    sent = sent_by_recipient(smtp_sink)
    shown = {
        email: api.get(f"/v2/accounts/{account.id}/messages/{quote(message_id)}").body["content"]
        for email, message_id in ids.items()
    }

    # Then each lookup shows exactly the bytes the relay received
    assert set(sent) == {"ann@example.com", "bob@example.com"}
    for email, data in sent.items():
        assert shown[email] == data.decode("utf-8", errors="replace"), email
        # ... which carry what only the sender used to add
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nFeedback-ID: " in head and b"\r\nList-Unsubscribe: <" + PUBLIC_URL.encode() in head
        html = message_from_bytes(data, policy=policy.default).get_body(("html",))
        assert f"{PUBLIC_URL}/t/o/" in html.get_content()  # type: ignore[union-attr]
        assert f"{PUBLIC_URL}/t/c/" in html.get_content()  # type: ignore[union-attr]
    assert sent["ann@example.com"] != sent["bob@example.com"]


def test_recipients_suppressed_after_acceptance_all_end_suppressed(
    api: ApiClient, account: Account, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    # Given a batch of four, two of whom are suppressed after it was accepted
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    reply = api.post(
        "/api/v1/emails/batch",
        {"subject": "Hi", "body": "x", "recipients": [{"email": e} for e in emails]},
    )
    assert reply.status == 202, reply.body
    for email in ("b@example.com", "d@example.com"):
        stores.store.put_suppression(
            Suppression(f"sup_{email}", account.id, email, None, "bounce", time.time(), time.time() + 3600)
        )

    # When the chunk is delivered
    worker.drain()

    # Then the others are sent, both suppressed ones end suppressed, and the job completes
    statuses = {m.email: m.status for m in stores.store.chunk_messages(reply.body["job_id"], 0)}
    assert statuses == {
        "a@example.com": "sent",
        "b@example.com": "suppressed",
        "c@example.com": "sent",
        "d@example.com": "suppressed",
    }
    assert sorted(sent_by_recipient(smtp_sink)) == ["a@example.com", "c@example.com"]
    assert api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body["state"] == "completed"
