"""Properties of the MIME builder for hostile header text, under every supported interpreter
(`make test-interpreters` runs this file with pyenv's 3.12 and 3.13 too).

For arbitrary Unicode text (RFC 2047 encoded words, every line break and control character, long
lines, non-ASCII) in each caller-controlled header field, the message either is refused with the
documented error (a ValueError naming what the text contains, for exactly the text the submit-time
rule refuses) or parses back, with the email package's default policy and with compat32, with
exactly the intended headers and recipients, the field decoding to the caller's text, and the body
intact.
"""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr, unquote
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailsage.domain.addresses import format_mailbox
from mailsage.domain.header_values import header_text_problem
from mailsage.domain.mime import build_message
from mailsage.domain.rendering import Rendered

BODY = "Body line 1\nBody line 2 =?utf-8?q?not_a_header?=\n"
PDF = b"%PDF-1.4 hostile"
FROM = "MailSage <noreply@mailsage.example>"
TO = "ann@example.com"

# Pieces an attacker strings together: encoded words (q and b) that decode to CR LF and header
# lines, the end of the header block, every character str.splitlines breaks on, other controls,
# quoting specials, non-ASCII of every width, and long runs that must be folded.
BREAKS = ["\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x01", "\x08", "\x1f", "\x7f", "\x9b", "\t"]
PIECES = [
    "=?utf-8?q?Hi=0D=0ABcc:_victim@example.com=0D=0AX-Injected:_yes?=",
    "=?utf-8?b?SGkNCkJjYzogdmljdGltQGV4YW1wbGUuY29tDQoNCmJvZHk=?=",
    "=?utf-8?q?",
    "?=",
    "=0D=0A",
    "=?",
    "=?iso-8859-1?q?caf=E9?=",
    "Bcc: victim@example.com",
    "X-Injected: yes",
    " ",
    "  ",
    '"',
    "\\",
    "<>,;:()@[]",
    "é",
    "春の",
    "😀",
    "x" * 90,
    "word " * 20,
    *BREAKS,
    *CONTROLS,
]
hostile_text = st.one_of(
    st.text(max_size=120),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=12).map("".join),
)
# A display name is written as one encoded word while it fits a line (see mime._with_name).
hostile_name = hostile_text.filter(lambda s: len(s.encode("utf-8", "surrogatepass")) <= 500)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The payloads of the issue, each tried in every field.
CORPUS = [
    "=?utf-8?q?Hi=0D=0ABcc:_victim@example.com=0D=0AX-Injected:_yes?=",
    "=?utf-8?b?SGkNCkJjYzogdmljdGltQGV4YW1wbGUuY29tDQoNCkluamVjdGVkIGJvZHk=?=",
    "=?utf-8?q?x=0D=0AFeedback-ID:_m:j:a:mailsage?=",
    "a Bcc: v@e.com <f@example.com>",
    "=?utf-8?q?caf=C3=A9?=",
]


def build(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "from_addr": FROM,
        "to_email": TO,
        "to_name": "Ann",
        "reply_to": None,
        "message_id": "<m-1@mailsage.local>",
        "headers": None,
        "attachments": None,
    }
    subject = overrides.pop("subject", "Hello")
    args.update(overrides)
    return build_message(Rendered(subject, BODY, None), **args)


def attachment(
    file_name: str = "a.pdf", content_type: str = "application/pdf", **extra: Any
) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "content_type": content_type,
        "data": base64.b64encode(PDF).decode(),
        "disposition": "attachment",
        "content_id": None,
        **extra,
    }


def parsed(data: bytes) -> tuple[Message, Message]:
    """The message read with policy.default and with compat32; well formed in both."""
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.split(b"\r\n\r\n", 1)[0].isascii()
    return message_from_bytes(data, policy=policy.default), message_from_bytes(data, policy=policy.compat32)


def rfc2047(raw: str) -> str:
    """What an RFC 2047 reader makes of a raw (compat32) header value: unfolded, then decoded."""
    return str(make_header(decode_header(re.sub(r"\r\n(?=[ \t])", "", raw))))


def rfc2047_mailbox(raw: str) -> tuple[str, str]:
    """(display name, address) as an RFC 2047 reader makes of a raw mailbox header: exact."""
    name, address = parseaddr(re.sub(r"\r\n(?=[ \t])", "", raw))
    return str(make_header(decode_header(name))), address


def spaces(name: str) -> str:
    """The email package's default policy collapses runs of spaces in a display name, encoded
    words included (RFC 2047 readers keep them: `rfc2047_mailbox`)."""
    return re.sub(r"[ \t]+", " ", name)


def assert_shape(msg: Message, extra: list[str]) -> None:
    """Exactly the intended header fields, one recipient, and the body intact."""
    expected = ["From", "To", "Subject", "Date", "Message-ID", *extra, "MIME-Version", "Content-Type"]
    names = [k for k in msg if k != "Content-Transfer-Encoding"]
    assert names == expected
    assert msg.get_all("To") == [msg["To"]] and msg["Cc"] is None and msg["Bcc"] is None
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    assert text.get_payload(decode=True).decode().replace("\r\n", "\n") == BODY


def refused_as_documented(exc: ValueError, text: str, *, tab: bool = True) -> None:
    problem = header_text_problem(text, tab=tab)
    assert problem is not None, f"refused text the submit rule accepts: {text!r}: {exc}"
    assert problem in str(exc)


# -- Subject ----------------------------------------------------------------------------------------
@PROPERTY
@given(hostile_text)
@example(CORPUS[0])
@example(CORPUS[1])
@example(" leading and trailing  ")
def test_subject(text: str) -> None:
    # Given a subject an attacker wrote (literal or rendered)
    # When the message is built
    try:
        data = build(subject=text)
    except ValueError as exc:
        # Then either it is refused as the submit-time rule refuses it
        refused_as_documented(exc, text)
        return
    # Or it reads back as exactly that text, in the one Subject, and nothing else moved
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, [])
    assert default["Subject"] == text
    assert rfc2047(compat["Subject"]) == text


# -- custom headers -------------------------------------------------------------------------------
@PROPERTY
@given(hostile_text)
@example(CORPUS[0])
def test_custom_header_value(text: str) -> None:
    try:
        data = build(headers={"X-Campaign": text})
    except ValueError as exc:
        refused_as_documented(exc, text)
        return
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, ["X-Campaign"])
    assert default["X-Campaign"] == text
    assert rfc2047(compat["X-Campaign"]) == text


# -- display names --------------------------------------------------------------------------------
@PROPERTY
@given(hostile_name)
@example(CORPUS[0])
@example(CORPUS[3])
@example('a "quoted" \\ name')
def test_to_name(text: str) -> None:
    try:
        data = build(to_name=text)
    except ValueError as exc:
        refused_as_documented(exc, text, tab=False)
        return
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, [])
    (to,) = default["To"].addresses
    assert (spaces(to.display_name), to.addr_spec) == (spaces(text), TO)
    assert rfc2047_mailbox(compat["To"]) == (text, TO)


@PROPERTY
@given(hostile_name)
@example(CORPUS[0])
@example(CORPUS[3])
def test_from_and_reply_to_names(text: str) -> None:
    # Given names stored as the submit path stores them (addresses.format_mailbox)
    try:
        data = build(
            from_addr=format_mailbox(text, "noreply@mailsage.example"),
            reply_to=format_mailbox(text, "help@mailsage.example"),
        )
    except ValueError as exc:
        refused_as_documented(exc, text, tab=False)
        return
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, ["Reply-To"])
    for field, address in (("From", "noreply@mailsage.example"), ("Reply-To", "help@mailsage.example")):
        (mailbox,) = default[field].addresses
        assert (spaces(mailbox.display_name), mailbox.addr_spec) == (spaces(text), address)
        assert rfc2047_mailbox(compat[field]) == (text, address)


# -- attachment headers ---------------------------------------------------------------------------
def attachment_shape(msg: Message) -> Message:
    assert msg.get_content_type() == "multipart/mixed"
    first, part = msg.get_payload()  # type: ignore[misc]
    assert first.get_content_type() == "text/plain"
    assert part.get_payload(decode=True) == PDF
    return part


@PROPERTY
@given(hostile_text)
@example(CORPUS[0])
@example(CORPUS[1])
def test_attachment_file_name(text: str) -> None:
    try:
        data = build(attachments=[attachment(file_name=text)])
    except ValueError as exc:
        refused_as_documented(exc, text, tab=False)
        return
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, [])
        part = attachment_shape(msg)
        assert list(part) == ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"]
        if not text:  # no name: none is written
            assert part.get_filename() is None and part.get_param("name") is None
        else:  # (get_filename strips spaces and a pair of quotes around the name)
            assert part.get_filename() in (text.strip(), unquote(text).strip())
    if text:
        part = attachment_shape(default)
        assert part["Content-Disposition"].params["filename"] == text
        assert part["Content-Type"].params["name"] == text


@PROPERTY
@given(hostile_text)
@example(CORPUS[0])
def test_attachment_content_type_parameter(text: str) -> None:
    # Given a parameter that the caller's content type carries RFC 2231-encoded
    content_type = f"application/pdf; x-note*=utf-8''{quote(text, safe='')}"
    try:
        data = build(attachments=[attachment(content_type=content_type)])
    except ValueError as exc:
        refused_as_documented(exc, text, tab=False)
        return
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, [])
    part = attachment_shape(default)
    if part.get_content_type() == "application/pdf":
        assert part["Content-Type"].params["x-note"] == text
    else:  # a content type the email package finds defective is sent as octet-stream, no parameters
        assert part.get_content_type() == "application/octet-stream" and part.get_param("x-note") is None


@PROPERTY
@given(hostile_text)
@example(CORPUS[0])
@example("logo@example.com")
def test_attachment_content_id(text: str) -> None:
    try:
        data = build(attachments=[attachment(content_id=text)])
    except ValueError as exc:
        assert "content_id" in str(exc)
        return
    default, compat = parsed(data)
    for msg in (default, compat):
        assert_shape(msg, [])
        part = attachment_shape(msg)
        expected = text.strip().removeprefix("<").removesuffix(">")
        if text:
            assert part["Content-ID"] == f"<{expected}>"
    assert "=?" not in text


@pytest.mark.parametrize("payload", CORPUS)
def test_the_issue_payloads_never_add_a_header_in_any_field(payload: str) -> None:
    # Given each payload of the issue in every caller-controlled field at once
    fields: dict[str, Any] = {
        "subject": payload,
        "to_name": payload,
        "from_addr": format_mailbox(payload, "noreply@mailsage.example"),
        "reply_to": format_mailbox(payload, "help@mailsage.example"),
        "headers": {"X-Campaign": payload},
        "attachments": [attachment(file_name=payload)],
    }
    # When the message is built
    data = build(**fields)
    # Then no header line but ours exists, and each field reads back as the literal text
    default, compat = parsed(data)
    for msg in (default, compat):
        assert [k for k in msg] == [
            "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "X-Campaign", "MIME-Version", "Content-Type",
        ]  # fmt: skip
    assert default["Subject"] == payload
    assert default["X-Campaign"] == payload
    assert default["To"].addresses[0].display_name == payload
    assert default["From"].addresses[0].display_name == payload
    assert attachment_shape(default).get_filename() == payload
