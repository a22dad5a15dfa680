"""The local inbox page over HTTP, without a browser: against a real `mailsage serve` (its JSON
endpoint, the delete's CSRF defence, hostile HTML that is never part of the page itself) and, for
the peer address a real server cannot fake on loopback, against the inbox's own request handler."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from mailsage.local.inbox import Inbox
from mailsage.settings import CommonSettings
from tests.conftest import wait_until
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

SENDER = "MailSage <noreply@mailsage.example>"
HOSTILE_HTML = (
    '<p id="greet">Hi Ann</p>'
    "<script>document.getElementById('greet').textContent = 'pwned'</script>"
    '<img src="x" onerror="alert(1)">'
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)


def send(server: LocalServer, to: str, subject: str, **content: Any) -> dict[str, Any]:
    """One v1 send, waited for until the sink has it (so sends arrive in the order made)."""
    before = len(server.outbox())
    body = {"recipient": {"email": to}, "subject": subject, "body": f"Text of {subject}", **content}
    reply = server.call("POST", "/api/v1/emails/send", body)
    assert reply.status_code == 202, reply.text
    assert wait_until(lambda: len(server.outbox()) > before, 60), "the sink never received it"
    return reply.json()  # type: ignore[no-any-return]


def inbox_json(server: LocalServer, query: str = "") -> dict[str, Any]:
    reply = requests.get(f"{server.url}/inbox/messages.json", params={"q": query}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def page(server: LocalServer, path: str = "/inbox") -> requests.Response:
    reply = requests.get(server.url + path, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply


def token_of(server: LocalServer) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page(server).text)
    assert found, "the inbox page has no delete token"
    return found.group(1)


def test_the_json_lists_the_sinks_mail_newest_first_with_job_campaign_and_status(
    server: LocalServer,
) -> None:
    # Given three messages sent one after the other, one of them in a campaign
    sent = [
        send(server, "ann@example.com", "First"),
        send(server, "bob@example.com", "Second", campaign_id="spring-sale"),
        send(server, "cat@example.com", "Third"),
    ]

    # When the inbox is asked, without any API key, once the sink has reported the deliveries
    def delivered() -> bool:
        return all(m["status"] == "delivered" for m in inbox_json(server)["messages"])

    assert wait_until(delivered, 60)
    listed = inbox_json(server)

    # Then it lists them newest first, each with its job, campaign and status from the store
    assert listed["total"] == 3
    rows = listed["messages"]
    assert [m["subject"] for m in rows] == ["Third", "Second", "First"]
    assert [m["to"] for m in rows] == ["cat@example.com", "bob@example.com", "ann@example.com"]
    assert [m["job_id"] for m in rows] == [s["job_id"] for s in reversed(sent)]
    assert [m["campaign_id"] for m in rows] == ["", "spring-sale", ""]
    assert all(m["from"] == SENDER for m in rows)


def test_search_narrows_by_recipient_and_by_subject(server: LocalServer) -> None:
    # Given messages to different people with different subjects (one sent MIME-encoded)
    send(server, "ann@example.com", "Your invoice")
    send(server, "bob@example.com", "Welcome aboard")
    send(server, "cat@example.com", "Grüße aus Köln ✓")

    # When searching by a recipient, by a word of a subject, and by something none holds
    by_recipient = inbox_json(server, "BOB@example")
    by_subject = inbox_json(server, "invoice")
    by_encoded_subject = inbox_json(server, "köln")
    nothing = inbox_json(server, "no-such-thing")
    server_rendered = page(server, "/inbox?q=invoice").text

    # Then each lists only what matches, subjects decoded
    assert [m["to"] for m in by_recipient["messages"]] == ["bob@example.com"]
    assert [m["subject"] for m in by_subject["messages"]] == ["Your invoice"]
    assert [m["subject"] for m in by_encoded_subject["messages"]] == ["Grüße aus Köln ✓"]
    assert nothing == {"messages": [], "total": 0, "query": "no-such-thing"}
    # and the page itself (before its script runs) lists the same
    assert "Your invoice" in server_rendered and "Welcome aboard" not in server_rendered


def test_hostile_html_is_served_only_framed_under_a_sandboxing_csp(server: LocalServer) -> None:
    # Given a message whose subject and HTML are hostile
    send(server, "ann@example.com", "<script>alert(2)</script>", html=HOSTILE_HTML)
    [row] = inbox_json(server)["messages"]

    # When the list page and the message's page are loaded
    listing = page(server).text
    message = page(server, f"/inbox/messages/{row['id']}")

    # Then neither page holds the message's markup: only its escaped text
    for html in (listing, message.text):
        assert "<script>alert" not in html and "<script>document" not in html
        assert "<img" not in html  # the page has no image of its own: this would be the message's
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in listing
    assert "&lt;script&gt;document.getElementById" in message.text  # the source tab, as text
    # and the page itself runs only its own script, and cannot be framed
    assert "script-src 'self'" in message.headers["Content-Security-Policy"]
    assert message.headers["X-Frame-Options"] == "DENY"
    # and the HTML is framed, sandboxed without scripts
    iframe = re.search(r"<iframe[^>]*>", message.text)
    assert iframe and 'sandbox=""' in iframe.group(0)
    assert f'src="/inbox/messages/{row["id"]}/html"' in iframe.group(0)

    # When the framed HTML itself is fetched
    framed = page(server, f"/inbox/messages/{row['id']}/html")

    # Then it comes as it was sent, under a CSP that sandboxes it and allows no script or remote image
    assert framed.text.rstrip("\r\n") == HOSTILE_HTML
    csp = [d.strip() for d in framed.headers["Content-Security-Policy"].split(";")]
    assert "sandbox" in csp and "default-src 'none'" in csp and "img-src data:" in csp
    assert not any(d.startswith("script-src") for d in csp)
    assert framed.headers["X-Content-Type-Options"] == "nosniff"


def test_an_attachment_and_the_source_are_downloads_not_pages(server: LocalServer) -> None:
    # Given a v2 message with an HTML attachment (which a browser would render if let)
    account = server.env["MAILSAGE_DEV_ACCOUNT_ID"]
    body = {
        "from": {"email": "noreply@mailsage.example"},
        "recipients": [{"email": "ann@example.com"}],
        "subject": "With files",
        "text_content": "See attached.",
        "attachments": [
            {
                "data": base64.b64encode(PNG).decode(),
                "base64": True,
                "content_type": "image/png",
                "file_name": "logo.png",
            },
            {"data": "<script>alert(3)</script>", "content_type": "text/html", "file_name": "../evil.html"},
        ],
    }
    reply = server.call("POST", f"/v2/accounts/{account}/messages", body)
    assert reply.status_code == 202, reply.text
    assert wait_until(lambda: len(server.outbox()) == 1, 60)
    [row] = inbox_json(server)["messages"]

    # When its page and downloads are fetched
    shown = page(server, f"/inbox/messages/{row['id']}").text
    logo = page(server, f"/inbox/messages/{row['id']}/attachments/0")
    evil = page(server, f"/inbox/messages/{row['id']}/attachments/1")
    source = page(server, f"/inbox/messages/{row['id']}/source")

    # Then the page names both, and each download is the exact bytes as an opaque attachment
    assert "logo.png" in shown and "evil.html" in shown
    assert logo.content == PNG
    assert evil.content == b"<script>alert(3)</script>"
    for download in (logo, evil, source):
        assert download.headers["Content-Type"] == "application/octet-stream"
        assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "/" not in evil.headers["Content-Disposition"]
    assert source.content == server.outbox()[0].read_bytes()
    assert (
        requests.get(f"{server.url}/inbox/messages/{row['id']}/attachments/2", timeout=30).status_code == 404
    )


def test_delete_all_needs_the_pages_token_from_the_pages_own_origin(server: LocalServer) -> None:
    # Given two messages and the inbox page's token
    send(server, "ann@example.com", "One")
    send(server, "bob@example.com", "Two")
    token = token_of(server)
    url = f"{server.url}/inbox/delete"

    # When another site's page posts the form: without the token, with a wrong one, or with the
    # right one but from its own origin (as a browser says it)
    forged = [
        requests.post(url, data={}, timeout=30),
        requests.post(url, data={"token": "guessed"}, timeout=30),
        requests.post(url, data={"token": token}, headers={"Origin": "http://evil.example"}, timeout=30),
        requests.post(url, data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=30),
    ]

    # Then each is refused and nothing is deleted
    assert [r.status_code for r in forged] == [403, 403, 403, 403]
    assert len(server.outbox()) == 2

    # When the page's own form posts its token from the page's origin
    deleted = requests.post(
        url, data={"token": token}, headers={"Origin": server.url}, allow_redirects=False, timeout=30
    )

    # Then every message is gone, and the browser is sent back to the (empty) inbox
    assert deleted.status_code == 303 and deleted.headers["Location"] == "/inbox"
    assert server.outbox() == []
    assert inbox_json(server) == {"messages": [], "total": 0, "query": ""}


def test_a_page_that_rebinds_its_own_name_to_loopback_is_refused(server: LocalServer) -> None:
    # Given mail in the inbox
    send(server, "ann@example.com", "Private")

    # When a request reaches the server from loopback but names another host (DNS rebinding)
    foreign = [
        requests.get(server.url + path, headers={"Host": f"evil.example:{server.port}"}, timeout=30)
        for path in ("/inbox", "/inbox/messages.json", "/inbox/assets/inbox.js")
    ]
    malformed = requests.get(server.url + "/inbox", headers={"Host": "[::1"}, timeout=30)
    as_localhost = requests.get(
        server.url + "/inbox/messages.json", headers={"Host": f"localhost:{server.port}"}, timeout=30
    )

    # Then it is refused; the loopback names are answered
    assert [r.status_code for r in foreign] == [403, 403, 403]
    assert malformed.status_code == 403  # a Host that does not even parse is no loopback name
    assert all("Private" not in r.text for r in foreign)
    assert as_localhost.status_code == 200 and as_localhost.json()["total"] == 1


@pytest.mark.parametrize(
    ("client", "status"),
    [
        ("127.0.0.1", 200),
        ("127.8.9.10", 200),
        ("::1", 200),
        ("::ffff:127.0.0.1", 200),
        ("192.168.1.20", 403),
        ("10.0.0.7", 403),
        ("::ffff:10.0.0.7", 403),
        ("2001:db8::1", 403),
        ("", 403),
    ],
)
def test_only_a_loopback_client_is_answered(tmp_path: Path, client: str, status: int) -> None:
    # Given the inbox of a server that listens on every address (the peer address is the test)
    inbox = Inbox(CommonSettings(data_dir=tmp_path))

    # When a client asks for the page from `client`
    reply = inbox.answer("GET", "/inbox", {"Host": "127.0.0.1:8026"}, b"", client)

    # Then only a loopback peer gets it
    assert reply.status == status
    assert (b"MailSage inbox" in reply.body) is (status == 200)


@pytest.mark.parametrize(
    "path",
    [
        "/inbox/messages/../../mailsage.db",
        "/inbox/messages/%2e%2e%2fmailsage.db",
        "/inbox/messages/1-deadbeef/../../dev-account.json",
        "/inbox/assets/../inbox.py",
        "/inbox/assets/list.html",
    ],
)
def test_no_path_reaches_beyond_the_outbox_and_the_assets(tmp_path: Path, path: str) -> None:
    # Given a data directory with its secrets next to the outbox
    (tmp_path / "outbox").mkdir()
    (tmp_path / "dev-account.json").write_text('{"key": "secret"}')
    inbox = Inbox(CommonSettings(data_dir=tmp_path))

    # When a path tries to step out
    reply = inbox.answer("GET", path, {"Host": "127.0.0.1:8026"}, b"", "127.0.0.1")

    # Then nothing but "not found" comes back
    assert reply.status == 404
    assert b"secret" not in reply.body and b"import" not in reply.body


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/inbox/delete", "POST"),
        ("PUT", "/inbox", "GET"),
        ("POST", "/inbox", "GET"),
        ("HEAD", "/inbox", "GET"),
    ],
)
def test_a_method_a_page_does_not_take_is_405_with_what_it_takes(
    tmp_path: Path, method: str, path: str, allowed: str
) -> None:
    # Given the inbox, and a request with a method the page does not take
    inbox = Inbox(CommonSettings(data_dir=tmp_path))

    # When it is answered
    reply = inbox.answer(method, path, {"Host": "localhost:8026"}, b"", "127.0.0.1")

    # Then 405 says which method the page takes
    assert reply.status == 405
    assert ("Allow", allowed) in reply.headers
