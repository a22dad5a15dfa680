"""End to end through `mailsage serve` with the AhaSend v2 surface: create-message over HTTP, the
server's workers and scheduler loop, and its built-in SMTP sink (every message kept as .eml)."""

from __future__ import annotations

import base64
import math
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.conftest import read_eml, wait_until
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

# A 1x1 PNG (the contract's example attachment).
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)
SENDER = {"email": "noreply@mailsage.example", "name": "MailSage"}


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def account_id(server: LocalServer) -> str:
    return server.env["MAILSAGE_DEV_ACCOUNT_ID"]


def create(server: LocalServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    reply = server.call("POST", f"/v2/accounts/{account_id(server)}/messages", body)
    assert reply.status_code == 202, reply.text
    payload = reply.json()
    assert payload["object"] == "list"
    return payload["data"]  # type: ignore[no-any-return]


def bare(message_id: str) -> str:
    return message_id.strip("<>").split("@", 1)[0]


def cancel(server: LocalServer, message_id: str) -> requests.Response:
    """`message_id` as the create reply gave it (`<uuid@host>`, URL-encoded here) or the bare UUID:
    the contract accepts both."""
    return server.call(
        "DELETE", f"/v2/accounts/{account_id(server)}/messages/{quote(message_id, safe='')}/cancel"
    )


def status_of(server: LocalServer, message_id: str) -> str:
    reply = server.call("GET", f"/v2/accounts/{account_id(server)}/messages/{bare(message_id)}")
    assert reply.status_code == 200, reply.text
    return str(reply.json()["status"])


def wait_for_outbox(server: LocalServer, count: int, timeout: float = 60) -> list[Path]:
    if wait_until(lambda: len(server.outbox()) >= count, timeout):
        return server.outbox()
    raise AssertionError(f"{count} messages expected at the sink, found {len(server.outbox())}")


def arrived_at(path: Path) -> float:
    """When the sink received the message: it names each file after time.time_ns()."""
    return int(path.name.split("-", 1)[0]) / 1e9


def recipients_of(paths: list[Path]) -> list[str]:
    return sorted(read_eml(p)["To"].addresses[0].addr_spec for p in paths)


def text_of(part: Any) -> str:
    return str(part.get_content()).replace("\r\n", "\n")


def test_two_recipients_with_substitutions_and_an_inline_image_arrive_as_two_mime_messages(
    server: LocalServer,
) -> None:
    entries = create(
        server,
        {
            "from": SENDER,
            "recipients": [
                {
                    "email": "ann@example.com",
                    "name": "Ann",
                    "substitutions": {"first_name": "Ann", "code": "A-1"},
                },
                {
                    "email": "bob@example.com",
                    "name": "Bob",
                    "substitutions": {"first_name": "Bob", "code": "B-2"},
                },
            ],
            "subject": "Hello {{ first_name }} from {{ company }}",
            "text_content": "Hi {{ first_name }}, your code is {{ code }}.",
            "html_content": '<p>Hi {{ first_name }}, your code is <b>{{ code }}</b>.</p><img src="cid:logo@mailsage">',
            "substitutions": {"company": "Acme", "code": "GLOBAL"},  # per-recipient values win
            "attachments": [
                {
                    "base64": True,
                    "data": PNG_B64,
                    "content_type": "image/png",
                    "file_name": "logo.png",
                    "content_id": "<logo@mailsage>",
                }
            ],
        },
    )
    assert [(e["recipient"]["email"], e["status"], e["error"]) for e in entries] == [
        ("ann@example.com", "queued", None),
        ("bob@example.com", "queued", None),
    ]

    paths = wait_for_outbox(server, 2)
    time.sleep(0.5)
    assert len(server.outbox()) == 2  # one message per recipient, nothing more
    by_recipient: dict[str, EmailMessage] = {}
    for path in paths:
        msg = read_eml(path)
        [address] = msg["To"].addresses  # each message is addressed to its recipient alone
        by_recipient[address.addr_spec] = msg

    ids = {e["recipient"]["email"]: e["id"] for e in entries}
    for email, name, code in (("ann@example.com", "Ann", "A-1"), ("bob@example.com", "Bob", "B-2")):
        msg = by_recipient[email]
        assert msg["To"].addresses[0].display_name == name
        assert msg["From"].addresses[0].addr_spec == SENDER["email"]
        assert msg["Subject"] == f"Hello {name} from Acme"
        assert bare(ids[email]) in msg["Message-ID"]
        for part in msg.walk():
            assert not part.defects, part.defects

        # text + (html with its image): multipart/alternative > [text/plain, multipart/related]
        assert msg.get_content_type() == "multipart/alternative"
        plain, related = msg.iter_parts()  # type: ignore[misc]
        assert plain.get_content_type() == "text/plain"
        assert text_of(plain) == f"Hi {name}, your code is {code}.\n"
        assert related.get_content_type() == "multipart/related"
        html, image = related.iter_parts()
        assert html.get_content_type() == "text/html"
        assert f"Hi {name}, your code is <b>{code}</b>." in text_of(html)
        assert 'src="cid:logo@mailsage"' in text_of(html)
        assert image.get_content_type() == "image/png"
        assert image["Content-ID"] == "<logo@mailsage>"
        assert image.get_content_disposition() == "inline"
        assert image.get_filename() == "logo.png"
        assert image.get_content() == PNG


def test_a_scheduled_message_is_held_until_its_time_and_a_cancelled_one_never_arrives(
    server: LocalServer,
) -> None:
    first_attempt = math.ceil(time.time()) + 4
    entries = create(
        server,
        {
            "from": SENDER,
            "recipients": [{"email": "held@example.com"}, {"email": "cancelled@example.com"}],
            "subject": "Later",
            "text_content": "This waited for its time.",
            "schedule": {"first_attempt": rfc3339(first_attempt)},
        },
    )
    assert [e["status"] for e in entries] == ["scheduled", "scheduled"]
    assert all(e["schedule"]["first_attempt"] for e in entries)
    held, cancelled = entries

    reply = cancel(server, cancelled["id"])
    assert reply.status_code == 200, reply.text
    again = cancel(server, bare(cancelled["id"]))
    assert 400 <= again.status_code < 500, again.text  # no longer scheduled: nothing to cancel

    # Held: nothing at the sink before the first attempt.
    while time.time() < first_attempt - 0.3:
        assert server.outbox() == [], "a scheduled message arrived before its first attempt"
        time.sleep(0.2)

    [path] = wait_for_outbox(server, 1, timeout=first_attempt - time.time() + 20)
    assert arrived_at(path) >= first_attempt
    assert recipients_of([path]) == ["held@example.com"]
    assert bare(held["id"]) in read_eml(path)["Message-ID"]

    # The cancelled one never arrives: several scheduler passes and worker polls later, still one.
    time.sleep(2.0)
    assert recipients_of(server.outbox()) == ["held@example.com"]
    assert status_of(server, cancelled["id"]) == "Cancelled"


def test_messages_not_sent_before_they_expire_never_arrive(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    # A server with no sender worker accepts the messages: nothing can send them before they expire
    # (as when the senders are down or far behind).
    first = LocalServer(tmp_path / "data", server_env, workers=0).start()
    try:
        start = math.ceil(time.time())
        [queued] = create(
            first,
            {
                "from": SENDER,
                "recipients": [{"email": "expires-queued@example.com"}],
                "subject": "Too late",
                "text_content": "expires while queued",
                "schedule": {"expires": rfc3339(start + 2)},
            },
        )
        [scheduled] = create(
            first,
            {
                "from": SENDER,
                "recipients": [{"email": "expires-scheduled@example.com"}],
                "subject": "Too late",
                "text_content": "fires, then expires before a sender takes it",
                "schedule": {"first_attempt": rfc3339(start + 1), "expires": rfc3339(start + 2)},
            },
        )
        create(
            first,
            {
                "from": SENDER,
                "recipients": [{"email": "control@example.com"}],
                "subject": "In time",
                "text_content": "no expiry",
            },
        )
        while time.time() < start + 2.5:  # past both expiries (and the scheduled one has fired)
            time.sleep(0.1)
    finally:
        first.stop()
    assert first.outbox() == []

    # When the server comes back with its workers, only the message without an expiry goes out.
    second = LocalServer(tmp_path / "data", server_env).start()
    try:
        wait_for_outbox(second, 1)
        time.sleep(2.0)
        assert recipients_of(second.outbox()) == ["control@example.com"]
        assert status_of(second, queued["id"]) == "Expired"
        assert status_of(second, scheduled["id"]) == "Expired"
    finally:
        second.stop()
