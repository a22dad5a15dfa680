"""Click tracking against hostile HTML: link rewriting is linear in the size of the HTML, gives the
same output as before on every input, and a click only ever redirects to an http(s) URL without
control characters. Tracking and unsubscribe tokens name no account, message or address in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import random
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mailsage.domain.tracking import Signer, TrackedLinks, is_safe_redirect
from tests.conftest import Account, ApiClient, Worker, read_eml

KEY = b"k" * 32
LINKS = TrackedLinks(Signer(KEY), "https://t.example")
# The pattern links were rewritten with before: right on every input, but quadratic on `<a <a <a`.
OLD_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


def old_rewrite(body: str, skip: str | None = None) -> str:
    def tracked(match: re.Match[str]) -> str:
        url = html.unescape(match.group(3))
        if url == skip or not is_safe_redirect(url):
            return match.group(0)
        new = LINKS.click_url("acc", "msg", url)
        return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

    return OLD_HREF.sub(tracked, body)


def rewrite(body: str, skip: str | None = None) -> str:
    return LINKS.rewrite_html(body, "acc", "msg", opens=False, clicks=True, skip=skip)


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn's result, failing the test (not hanging it) if fn has not finished after `seconds`."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still running after {seconds} s"
    return out[0]


NORMAL_HTML = [
    '<html><body><p>Hi <a href="https://example.com/a?x=1&amp;y=2">A</a></p></body></html>',
    "<a href='http://example.com/'>single quotes</a> and <A HREF=\"HTTPS://EXAMPLE.COM/UP\">caps</A>",
    '<a class="btn" target="_blank" href = "https://example.com/x#frag" rel="noopener">x</a>',
    '<a href="mailto:someone@example.com">mail</a> <a href="#top">top</a> <a href="/relative">r</a>',
    '<a name="anchor">no href</a><a href="https://example.com/1">1</a><a href="https://example.com/2">2</a>',
    '<abbr title="x">not a link</abbr> <area href="https://example.com/map"> <a\nhref="https://e.com/nl">nl</a>',
    '<a data-href="https://example.com/data" href="https://example.com/real">both</a>',
    '<a href="https://example.com/é?q=ü">unicode</a> <a href="https://example.com/a b">space</a>',
    '<table><tr><td><a href="https://example.com/t" style="color:#fff">cell</a></td></tr></table>',
    '<a href="">empty</a><a href="https://">bare scheme</a><a href=https://unquoted.example/>u</a>',
    '<a title="a > b" href="https://example.com/after-gt">gt in attribute</a>',
    '<a title="it\'s" href="https://example.com/q">quote in title</a>',
    '<a href="https://example.com/keep">skip me</a><a href="https://example.com/other">other</a>',
    "<p>no links at all</p>" * 50,
]


@pytest.mark.parametrize("body", NORMAL_HTML)
def test_normal_html_is_rewritten_exactly_as_before(body: str) -> None:
    # Given normal HTML; When links are rewritten; Then the output is the old output
    assert rewrite(body) == old_rewrite(body)
    assert rewrite(body, skip="https://example.com/keep") == old_rewrite(
        body, skip="https://example.com/keep"
    )


def test_random_tag_soup_is_rewritten_exactly_as_before() -> None:
    # Given thousands of random strings made of the pieces the pattern cares about
    pieces = [
        "<a",
        "<A",
        " ",
        "\n",
        "href",
        "HREF",
        "=",
        '"',
        "'",
        ">",
        "<",
        "https://",
        "http://",
        "x",
        "b",
        "&amp;",
    ]
    rng = random.Random(13)
    for _ in range(3000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        # Then the new pattern agrees with the old one on each
        assert rewrite(body) == old_rewrite(body), body


@pytest.mark.parametrize(
    "unit",
    ["<a ", "<a href=", '<a href="', "<a\n<a title='", "<A HREF = x", "<a href='https://x\""],
)
def test_300_kb_of_unclosed_tags_is_rewritten_promptly(unit: str) -> None:
    # Given 300 KB of an unclosed tag repeated (the content limit)
    body = unit * (300_000 // len(unit))
    # When links are rewritten (bounded wait: quadratic work would take minutes)
    out = within(60, lambda: rewrite(body))
    # Then nothing changed: no tag has a complete http(s) href
    assert out == body


def test_300_kb_of_half_links_is_rewritten_promptly_and_as_before() -> None:
    # Given 300 KB of `<a href="https://`: each value runs to the next tag's opening quote
    unit = '<a href="https://'
    body = unit * (300_000 // len(unit))
    # When links are rewritten
    out = within(60, lambda: rewrite(body))
    # Then every other tag became one tracked link, as the old pattern does on a small sample
    assert out.count("https://t.example/t/c/") == len(body) // len(unit) // 2
    assert rewrite(unit * 40) == old_rewrite(unit * 40)


def test_300_kb_of_tags_without_a_closing_bracket_all_get_tracked() -> None:
    # Given 10,000 links whose tags never close
    body = '<a href="https://example.com/x"' * 10_000
    # When links are rewritten
    out = within(60, lambda: rewrite(body))
    # Then every one of them is tracked, as before
    assert out.count("https://t.example/t/c/") == 10_000
    assert "example.com" not in out


@pytest.mark.parametrize(
    "href",
    [
        "https://example.com/&#13;&#10;Set-Cookie: x=1",
        "https://example.com/\r\nSet-Cookie: x=1",
        "https://example.com/&#x0a;x",
        "https://example.com/&#9;tab",
        "https://example.com/\x00nul",
        "https://example.com/\x85nel",
        "https://example.com/\x7fdel",
        "https://example.com/\x1bx",
    ],
)
def test_links_with_control_characters_are_left_untouched(href: str) -> None:
    # Given a link whose URL, once HTML-unescaped, holds a control character
    body = f'<p><a href="{href}">x</a> <a href="https://example.com/ok">ok</a></p>'
    # When links are rewritten
    out = rewrite(body)
    # Then that link is as written, and the other one is tracked
    assert f'href="{href}"' in out
    assert "https://example.com/ok" not in out and out.count("/t/c/") == 1


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com/a?b=1", True),
        ("HTTP://EXAMPLE.COM/", True),
        ("https://example.com/é", True),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("//example.com/", False),
        ("https://example.com/\r\nSet-Cookie: x=1", False),
        ("https://example.com/\x00", False),
        ("https://example.com/\x85", False),
    ],
)
def test_only_http_urls_without_control_characters_are_redirect_targets(url: str, safe: bool) -> None:
    assert is_safe_redirect(url) is safe


# --- through the real handlers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", "https://mail.example.test")


CRLF_HREF = "https://example.com/&#13;&#10;Set-Cookie: x=1"


def send_tracked(api: ApiClient, worker: Worker, html_body: str) -> str:
    reply = api.post(
        "/api/v1/emails/batch",
        {
            "recipients": [{"email": "reader@example.com"}],
            "subject": "Hello",
            "html": html_body,
            "from": "News <news@acme-mail.com>",
            "tracking": {"open": True, "click": True},
        },
    )
    assert reply.status == 202, reply.body
    worker.drain()
    return reply.body["job_id"]


def received_html(smtp_sink: Any) -> tuple[str, Any]:
    [eml] = smtp_sink.messages()
    message = read_eml(eml)
    return message.get_body(("html",)).get_content(), message


def legacy_token(data_dir: Path, fields: list[str]) -> str:
    """A token in the first format (readable JSON + truncated HMAC), as mail sent before carries."""
    key = (data_dir / "signing.key").read_text().strip().encode()
    payload = json.dumps(fields, separators=(",", ":")).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    b64 = base64.urlsafe_b64encode
    return f"{b64(payload).rstrip(b'=').decode()}.{b64(mac).rstrip(b'=').decode()}"


def test_a_crlf_link_is_sent_untouched_and_other_links_are_tracked(
    api: ApiClient, worker: Worker, smtp_sink: Any
) -> None:
    # Given HTML with the header-splitting link and a normal one, sent with click tracking
    send_tracked(api, worker, f'<p><a href="{CRLF_HREF}">bad</a><a href="https://example.com/ok">ok</a></p>')
    # When the message arrives
    body, _ = received_html(smtp_sink)
    # Then the bad link was not made a redirect, and the good one was
    assert f'href="{CRLF_HREF}"' in body
    [tracked] = re.findall(r'href="(https://mail\.example\.test/t/c/[^"]+)"', body)
    reply = api.get(urlsplit(tracked).path, key=None)
    assert reply.status == 302 and reply.headers["location"] == "https://example.com/ok"


def test_tokens_name_no_account_message_or_address(
    api: ApiClient, worker: Worker, smtp_sink: Any, account: Account
) -> None:
    # Given a tracked bulk message
    job_id = send_tracked(api, worker, '<p><a href="https://example.com/ok">ok</a></p>')
    # When its pixel, link and unsubscribe URLs are read
    body, message = received_html(smtp_sink)
    urls = re.findall(r'(?:href|src)="(https://mail\.example\.test/[^"]+)"', body)
    urls.append(message["List-Unsubscribe"].strip("<>"))
    assert len(urls) == 3
    tokens = [url.rsplit("/", 1)[1] for url in urls]
    # Then no token shows the account, the job or the address, even base64-decoded
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        for secret in (account.id, "reader@example.com", "example.com/ok"):
            assert secret not in token and secret.encode() not in raw
        assert job_id not in token
    # And every one of them still works
    assert api.get(urlsplit(urls[0]).path, key=None).status in (200, 302)


def test_a_legacy_click_token_still_redirects(
    api: ApiClient, worker: Worker, smtp_sink: Any, account: Account, data_dir: Path
) -> None:
    # Given a message and a click token in the first format, for a normal URL
    send_tracked(api, worker, "<p>hi</p>")
    token = legacy_token(data_dir, ["c", account.id, "msg_unknown", "https://example.com/old"])
    # When it is followed
    reply = api.get(f"/t/c/{token}", key=None)
    # Then it redirects, as it did
    assert reply.status == 302 and reply.headers["location"] == "https://example.com/old"


@pytest.mark.parametrize("url", ["https://example.com/\r\nSet-Cookie: x=1", "javascript:alert(1)"])
def test_a_signed_token_for_an_unsafe_url_is_refused(
    api: ApiClient, worker: Worker, smtp_sink: Any, account: Account, data_dir: Path, url: str
) -> None:
    # Given validly signed tokens, old format and new, whose URL is not a safe redirect
    send_tracked(api, worker, "<p>hi</p>")
    legacy = legacy_token(data_dir, ["c", account.id, "msg_x", url])
    sealed = Signer((data_dir / "signing.key").read_text().strip().encode()).sign(
        ["c", account.id, "msg_x", url]
    )
    for token in (legacy, sealed):
        # When followed
        reply = api.get(f"/t/c/{token}", key=None)
        # Then refused as an unknown link, with no redirect and no injected header
        assert reply.status == 404
        assert "location" not in {k.lower() for k in reply.headers}
        assert "set-cookie" not in {k.lower() for k in reply.headers}


def test_a_non_ascii_target_is_redirected_percent_encoded(
    api: ApiClient, worker: Worker, smtp_sink: Any
) -> None:
    # Given a tracked link to a URL with non-ASCII characters
    send_tracked(api, worker, '<a href="https://example.com/é?q=ü">x</a>')
    body, _ = received_html(smtp_sink)
    [tracked] = re.findall(r'href="(https://mail\.example\.test/t/c/[^"]+)"', body)
    # When followed, Then the Location header is ASCII (UTF-8 percent-encoded)
    reply = api.get(urlsplit(tracked).path, key=None)
    assert reply.status == 302 and reply.headers["location"] == "https://example.com/%C3%A9?q=%C3%BC"
