"""MIME structure: every message is parsed back with the `email` package (policy.default) and
checked part by part: content types, order, dispositions, Content-IDs, decoded payloads."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import pytest

from mailsage.domain import mime
from mailsage.domain.addresses import format_mailbox
from mailsage.domain.mime import build_message
from mailsage.domain.rendering import Rendered

# A 1x1 transparent PNG, and bytes that use every value (a binary file).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
BINARY = bytes(range(256)) * 40


def attachment(
    data: bytes,
    file_name: str = "file.bin",
    content_type: str = "application/octet-stream",
    disposition: str = "attachment",
    content_id: str | None = None,
) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "content_type": content_type,
        "data": base64.b64encode(data).decode(),
        "disposition": disposition,
        "content_id": content_id,
    }


def logo(content_id: str = "logo") -> dict[str, Any]:
    return attachment(PNG, "logo.png", "image/png", "inline", content_id)


def build(
    subject: str = "Hello",
    text: str | None = "Hello text",
    html: str | None = None,
    amp: str | None = None,
    *,
    to_name: str | None = "Ann",
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> bytes:
    return build_message(
        Rendered(subject, text, html, amp),
        from_addr="MailSage <noreply@mailsage.example>",
        to_email="ann@example.com",
        to_name=to_name,
        reply_to=reply_to,
        message_id="<0b8e3f0c-1d7a-4c55-9f39-6d1e2c7a9b10@mailsage.local>",
        headers=headers,
        attachments=attachments,
    )


def parse(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def shape(part: EmailMessage) -> Any:
    """The content-type tree: 'text/plain' for a leaf, ('multipart/x', [children]) otherwise."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])  # type: ignore[arg-type]
    return part.get_content_type()


def content(part: Any) -> Any:
    """The decoded content; text with the parser's CRLF line endings as newlines."""
    value = part.get_content()
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.walk() if not p.is_multipart()]  # type: ignore[misc]


def assert_well_formed(data: bytes) -> EmailMessage:
    """CRLF everywhere, no line over RFC 5322's 998 characters, no parse defect anywhere."""
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # every header is ASCII: non-ASCII goes through RFC 2047 / RFC 2231
    msg = parse(data)
    for part in msg.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    return msg


# -- structure ------------------------------------------------------------------------------------
def test_text_only_is_a_single_text_plain_part() -> None:
    msg = assert_well_formed(build(text="Hello Ann,\nsee you.", html=None))
    assert shape(msg) == "text/plain"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert msg.get_content_charset() == "utf-8"
    assert content(msg) == "Hello Ann,\nsee you.\n"


def test_html_only_is_a_single_text_html_part() -> None:
    msg = assert_well_formed(build(text=None, html="<p>Hello <b>Ann</b></p>"))
    assert shape(msg) == "text/html"
    assert content(msg) == "<p>Hello <b>Ann</b></p>\n"


def test_no_content_at_all_is_an_empty_html_part() -> None:
    msg = assert_well_formed(build(text=None, html=None))
    assert shape(msg) == "text/html"
    assert msg.get_content().strip() == ""


def test_text_and_html_are_alternatives_text_first() -> None:
    msg = assert_well_formed(build(text="plain", html="<p>rich</p>"))
    assert shape(msg) == ("multipart/alternative", ["text/plain", "text/html"])
    assert content(msg.get_body(("plain",))) == "plain\n"  # type: ignore[union-attr]
    assert content(msg.get_body(("html",))) == "<p>rich</p>\n"  # type: ignore[union-attr]
    # the alternatives are body parts, not attachments
    assert all(p.get_content_disposition() is None for p in leaves(msg))


def test_amp_goes_between_text_and_html() -> None:
    msg = assert_well_formed(
        build(text="plain", html="<p>rich</p>", amp="<html ⚡4email><body>amp</body></html>")
    )
    assert shape(msg) == ("multipart/alternative", ["text/plain", "text/x-amp-html", "text/html"])
    amp = leaves(msg)[1]
    assert content(amp) == "<html ⚡4email><body>amp</body></html>\n"
    assert amp.get_content_charset() == "utf-8"


def test_inline_images_wrap_the_html_in_multipart_related() -> None:
    html = '<p>Hi</p><img src="cid:logo"><img src="cid:chart@mailsage">'
    chart = attachment(BINARY, "chart.png", "image/png", "inline", "chart@mailsage")
    msg = assert_well_formed(build(text="Hi", html=html, attachments=[logo(), chart]))

    assert shape(msg) == (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png", "image/png"])],
    )
    related = list(msg.iter_parts())[1]
    assert related.get_param("type") == "text/html"  # RFC 2387: the type of the root part
    root, first, second = related.iter_parts()  # type: ignore[misc]
    assert content(root) == html + "\n"
    for part, cid, name, data in (
        (first, "<logo>", "logo.png", PNG),
        (second, "<chart@mailsage>", "chart.png", BINARY),
    ):
        assert part["Content-ID"] == cid
        assert part.get_content_disposition() == "inline"
        assert part.get_filename() == name
        assert part["Content-Transfer-Encoding"] == "base64"
        assert content(part) == data  # decoded payload: the original bytes
    # The html refers to each inline part by its Content-ID.
    assert {f"<{cid}>" for cid in re.findall(r'src="cid:([^"]+)"', html)} == {"<logo>", "<chart@mailsage>"}


def test_html_with_inline_images_and_no_text_is_multipart_related_at_the_top() -> None:
    msg = assert_well_formed(build(text=None, html='<img src="cid:logo">', attachments=[logo()]))
    assert shape(msg) == ("multipart/related", ["text/html", "image/png"])


def test_content_ids_given_in_angle_brackets_are_not_doubled() -> None:
    msg = assert_well_formed(build(html='<img src="cid:logo">', attachments=[logo("<logo>")]))
    assert leaves(msg)[-1]["Content-ID"] == "<logo>"


def test_attachments_wrap_everything_in_multipart_mixed() -> None:
    report = attachment(BINARY, "report.pdf", "application/pdf")
    msg = assert_well_formed(build(text="see attached", html="<p>see attached</p>", attachments=[report]))
    assert shape(msg) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "application/pdf"],
    )
    pdf = leaves(msg)[-1]
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_filename() == "report.pdf"
    assert pdf.get_param("name") == "report.pdf"  # for clients that read the Content-Type name
    assert pdf["Content-ID"] is None
    assert content(pdf) == BINARY
    assert [a.get_filename() for a in msg.iter_attachments()] == ["report.pdf"]  # type: ignore[attr-defined]


def test_text_only_with_an_attachment() -> None:
    msg = assert_well_formed(
        build(text="x", attachments=[attachment(b"a,b\r\n1,2\r\n", "t.csv", "text/csv")])
    )
    assert shape(msg) == ("multipart/mixed", ["text/plain", "text/csv"])
    csv = leaves(msg)[-1]
    assert csv["Content-Transfer-Encoding"] == "base64"  # the exact bytes, line endings included
    assert csv.get_payload(decode=True) == b"a,b\r\n1,2\r\n"


def test_the_full_structure_inline_images_and_attachments_and_amp() -> None:
    parts = [logo(), attachment(BINARY, "a.bin"), attachment(b"%PDF-1.4", "b.pdf", "application/pdf")]
    msg = assert_well_formed(
        build(text="t", html='<img src="cid:logo">', amp="<html amp4email></html>", attachments=parts)
    )
    assert shape(msg) == (
        "multipart/mixed",
        [
            (
                "multipart/alternative",
                ["text/plain", "text/x-amp-html", ("multipart/related", ["text/html", "image/png"])],
            ),
            "application/octet-stream",
            "application/pdf",
        ],
    )
    assert [p.get_content() for p in leaves(msg)[-3:]] == [PNG, BINARY, b"%PDF-1.4"]


def test_a_content_id_with_attachment_disposition_stays_an_attachment_with_its_content_id() -> None:
    part = attachment(PNG, "logo.png", "image/png", "attachment", "logo")
    msg = assert_well_formed(build(html="<p>x</p>", attachments=[part]))
    assert shape(msg) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "image/png"],
    )
    assert leaves(msg)[-1]["Content-ID"] == "<logo>"
    assert leaves(msg)[-1].get_content_disposition() == "attachment"


def test_an_inline_part_without_html_to_refer_to_it_goes_into_multipart_mixed() -> None:
    msg = assert_well_formed(build(text="no html", html=None, attachments=[logo()]))
    assert shape(msg) == ("multipart/mixed", ["text/plain", "image/png"])
    image = leaves(msg)[-1]
    assert image.get_content_disposition() == "inline"
    assert image["Content-ID"] == "<logo>"


def test_an_inline_part_without_content_id_is_an_inline_part_of_multipart_mixed() -> None:
    msg = assert_well_formed(
        build(html="<p>x</p>", attachments=[attachment(PNG, "a.png", "image/png", "inline")])
    )
    assert shape(msg)[0] == "multipart/mixed"
    assert leaves(msg)[-1].get_content_disposition() == "inline"


def test_content_type_parameters_are_kept_and_non_leaf_types_become_octet_stream() -> None:
    parts = [
        attachment(b"x", "a.csv", "text/csv; charset=utf-8"),
        attachment(b"x", "b.eml", "message/rfc822"),  # RFC 2046: never base64
        attachment(b"x", "c", "multipart/mixed"),
        attachment(b"x", "d", "not a type"),
    ]
    msg = assert_well_formed(build(attachments=parts))
    csv, *others = leaves(msg)[1:]
    assert csv.get_content_type() == "text/csv" and csv.get_param("charset") == "utf-8"
    assert [p.get_content_type() for p in others] == ["application/octet-stream"] * 3
    assert [p.get_payload(decode=True) for p in others] == [b"x"] * 3


def test_base64_lines_are_76_characters() -> None:
    data = build(attachments=[attachment(BINARY)])
    encoded = str(leaves(parse(data))[-1].get_payload())
    lines = encoded.splitlines()
    assert {len(line) for line in lines[:-1]} == {76}
    assert len(lines[-1]) <= 76


def test_an_empty_attachment() -> None:
    msg = assert_well_formed(build(attachments=[attachment(b"", "empty.txt", "text/plain")]))
    assert leaves(msg)[-1].get_payload(decode=True) == b""


# -- encodings ------------------------------------------------------------------------------------
def test_short_non_ascii_lines_are_8bit_utf8() -> None:
    msg = assert_well_formed(build(text="Grüße, Ann — 你好"))
    assert msg["Content-Transfer-Encoding"] == "8bit"
    assert content(msg) == "Grüße, Ann — 你好\n"


def test_long_lines_are_quoted_printable_within_76_characters() -> None:
    html = "<p>" + "word " * 300 + "=ü</p>\n<p>second line   </p>"
    data = build(text=None, html=html)
    msg = assert_well_formed(data)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert content(msg) == html + "\n"  # trailing spaces survive (encoded)


def test_long_non_latin_lines_are_base64() -> None:
    text = "Привет, мир. " * 40
    msg = assert_well_formed(build(text=text))
    assert msg["Content-Transfer-Encoding"] == "base64"
    assert content(msg) == text + "\n"


def test_line_endings_become_crlf_whatever_the_template_used() -> None:
    data = build(text="a\nb\r\nc\rd")
    assert data.endswith(b"\r\n\r\na\r\nb\r\nc\r\nd\r\n")
    assert content(parse(data)) == "a\nb\nc\nd\n"


def test_a_nul_character_is_not_sent_as_7bit() -> None:
    msg = assert_well_formed(build(text="a\x00b"))
    assert msg["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert content(msg) == "a\x00b\n"


def test_the_boundary_never_occurs_in_the_content(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first boundary drawn is in the text: another one is drawn.
    draws = iter([42, 42, 7])
    monkeypatch.setattr(mime.random, "randrange", lambda _: next(draws))
    text = "--===============0000000000000000042==\nnot a boundary"
    data = build(text=text, html="<p>x</p>")
    msg = assert_well_formed(data)
    assert msg.get_param("boundary") == "===============0000000000000000007=="
    assert content(msg.get_body(("plain",))) == text + "\n"  # type: ignore[union-attr]


def test_nested_multiparts_have_distinct_boundaries() -> None:
    msg = parse(build(html='<img src="cid:logo">', attachments=[logo(), attachment(b"x")]))
    boundaries = [p.get_boundary() for p in msg.walk() if p.is_multipart()]
    assert len(boundaries) == 3 and len(set(boundaries)) == 3


# -- headers --------------------------------------------------------------------------------------
def test_envelope_headers() -> None:
    msg = assert_well_formed(build(reply_to="Support <help@mailsage.example>"))
    assert msg["From"] == "MailSage <noreply@mailsage.example>"
    assert msg["To"] == "Ann <ann@example.com>"
    assert msg["Reply-To"] == "Support <help@mailsage.example>"
    assert msg["Message-ID"] == "<0b8e3f0c-1d7a-4c55-9f39-6d1e2c7a9b10@mailsage.local>"
    assert msg["Date"].datetime.utcoffset().total_seconds() == 0
    assert re.search(rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n", build())


def test_non_ascii_subject_name_and_file_name_round_trip() -> None:
    subject = "Grüße aus Köln — 春の知らせ " * 3
    file_name = "Résumé – Zoë Ñúñez 春.pdf"
    data = build(
        subject, to_name="Zoë Ñúñez, Jr.", attachments=[attachment(b"%PDF", file_name, "application/pdf")]
    )
    msg = assert_well_formed(data)
    assert msg["Subject"] == subject
    assert msg["To"].addresses[0].display_name == "Zoë Ñúñez, Jr."
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert leaves(msg)[-1].get_filename() == file_name
    raw = data.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?utf-8?" in raw  # RFC 2047
    assert b"filename*" in data and b"utf-8''" in data  # RFC 2231
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78  # folded


def test_custom_headers_are_added_as_given() -> None:
    headers = {
        "X-Campaign": "spring-2026",
        "List-Unsubscribe": "<mailto:unsubscribe@mailsage.example>, <https://mailsage.example/u?id=1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Note": "Grüße",
        "Reply-To": "replies@mailsage.example",
    }
    msg = assert_well_formed(build(headers=headers))
    for name, value in headers.items():
        assert msg[name].strip() == value  # (a value folded at once parses back with a leading space)


def test_custom_headers_cannot_replace_the_message_identity_or_structure() -> None:
    headers = {
        "From": "evil@attacker.example",
        "to": "other@attacker.example",
        "Subject": "spoofed",
        "Message-ID": "<x@y>",
        "Date": "Thu, 01 Jan 1970 00:00:00 +0000",
        "MIME-Version": "2.0",
        "Content-Type": "text/html",
        "Content-Transfer-Encoding": "binary",
        "Reply-To": "other@attacker.example",
    }
    msg = assert_well_formed(build(reply_to="help@mailsage.example", headers=headers))
    for name in headers:
        assert len(msg.get_all(name) or []) == 1, name
    assert msg["From"] == "MailSage <noreply@mailsage.example>"
    assert msg["Subject"] == "Hello"
    assert msg["Reply-To"] == "help@mailsage.example"
    assert msg.get_content_type() == "text/plain"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nBcc: victim@example.com"},
        {"X-Evil": "a\nBcc: victim@example.com"},
        {"X-Evil": "a\rb"},
        {"X-Evil": "a\x00b"},
        {"X-Evil\r\nBcc": "victim@example.com"},
        {"X-Evil: x": "y"},
        {"X Evil": "y"},
        {"": "y"},
        {"X-Ünicode": "y"},
    ],
)
def test_header_injection_is_impossible(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        build(headers=headers)


@pytest.mark.parametrize(
    "part",
    [
        attachment(b"x", "a\r\nContent-Type: text/html"),
        {**logo(), "content_id": "logo>\r\nX-Evil: 1"},
        attachment(b"x", "a.bin", "image/png\r\nX-Evil: 1"),
        {**logo(), "disposition": "inline\r\nX-Evil: 1"},
    ],
)
def test_attachment_fields_cannot_inject_headers(part: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build(html='<img src="cid:logo">', attachments=[part])


def test_a_line_break_in_a_subject_or_name_is_refused() -> None:
    with pytest.raises(ValueError):
        build("Hi\r\nBcc: victim@example.com")
    with pytest.raises(ValueError):
        build(to_name="Ann\nBcc: victim@example.com")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", 'Hello (world) <b> "q" ; , : @ \\ end'),
        ("Subject", "a  b"),
        ("Subject", "tab\there"),
        ("Subject", ""),
        ("Message-ID", "<a3f1c2b7-3f4a-4b8e-9c1d-2a3b4c5d6e7f@mailsage.local>"),
        ("Date", "Mon, 23 Nov 2026 09:33:55 +0000"),
        ("List-Unsubscribe", "<mailto:u@example.com>, <https://example.com/u?a=1&b=2>"),
        ("X-Long", " ".join(["token"] * 30)),
    ],
)
def test_plain_ascii_headers_read_back_as_the_email_package_reads_its_own(name: str, value: str) -> None:
    # Given a plain ASCII value, When written, Then it reads back as the email package's own
    # output does, exactly the value, within 78-character lines
    data = mime._header(name, value)
    theirs = policy.SMTP.fold_binary(name, policy.SMTP.header_factory(name, value))
    assert str(parse(data + b"\r\n")[name]) == str(parse(theirs + b"\r\n")[name])
    assert re.sub(r"\r\n(?=[ \t])", "", data.decode()) == f"{name}: {value}\r\n"
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


@pytest.mark.parametrize(
    ("mailbox", "name", "address"),
    [
        ("MailSage <noreply@mailsage.example>", "MailSage", "noreply@mailsage.example"),
        ('"Doe, John" <john@example.com>', "Doe, John", "john@example.com"),
        ("john@example.com", "", "john@example.com"),
        (format_mailbox("  two  spaces ", "s@example.com"), "  two  spaces ", "s@example.com"),
        (formataddr(('a "quoted" name', "q@example.com")), 'a "quoted" name', "q@example.com"),
        (formataddr(("Zoë", "zoe@example.com")), "Zoë", "zoe@example.com"),
        (formataddr(("Zoë " * 40, "zoe@example.com")), "Zoë " * 40, "zoe@example.com"),
    ],
)
def test_mailboxes_read_back_as_the_same_name_and_address(mailbox: str, name: str, address: str) -> None:
    # Given a stored From (a display name that may be an encoded word MailSage wrote)
    # When it is written as a header
    data = mime._mailbox("From", mailbox)
    # Then it reads as the same name and address, and no line is over RFC 5322's limit
    (parsed,) = parse(data + b"\r\n")["From"].addresses
    assert (parsed.display_name, parsed.addr_spec) == (name, address)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_non_ascii_text_is_encoded_words_that_decode_to_the_same_text() -> None:
    data = mime._header("Subject", "Grüße " * 20)
    assert data.startswith(b"Subject: =?utf-8?")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert parse(data + b"\r\n")["Subject"] == "Grüße " * 20


def test_a_long_unbreakable_token_is_written_as_is_not_as_encoded_words() -> None:
    url = "<https://mail.example.test/u/" + "A" * 300 + ".B>"
    data = build("x" * 76, headers={"List-Unsubscribe": url, "X-Token": "t-" * 60})
    msg = assert_well_formed(data)
    assert f"List-Unsubscribe: {url}\r\n".encode() in data  # mailbox providers read it raw
    assert b"=?utf-8?" not in data.split(b"\r\n\r\n", 1)[0]
    assert msg["List-Unsubscribe"] == url
    assert msg["Subject"] == "x" * 76


# -- compatibility with the EmailMessage output of before -----------------------------------------
def reference(rendered: Rendered, to_name: str | None, headers: dict[str, str]) -> bytes:
    """How build_message built messages before attachments (EmailMessage.set_content)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "MailSage <noreply@mailsage.example>"
    msg["To"] = formataddr((to_name, "ann@example.com")) if to_name else "ann@example.com"
    msg["Subject"] = rendered.subject
    msg["Message-ID"] = "<0b8e3f0c-1d7a-4c55-9f39-6d1e2c7a9b10@mailsage.local>"
    for key, value in headers.items():
        msg[key] = value
    if rendered.text is not None:
        msg.set_content(rendered.text)
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html")
    else:
        msg.set_content(rendered.html or "", subtype="html")
    return msg.as_bytes()


@pytest.mark.parametrize(
    "rendered",
    [
        Rendered("Hi", "plain", None),
        Rendered("Hi", None, "<p>rich</p>"),
        Rendered("Grüße", "Grüße\n", "<p>Grüße</p>"),
        Rendered("Hi", "a" * 200, "<p>" + "b " * 500 + "</p>"),
        Rendered("Hi", "Привет " * 50, None),
        Rendered("Hi", "", ""),
    ],
)
@pytest.mark.parametrize("to_name", [None, "Ann", "Zoë"])
def test_messages_without_attachments_parse_like_the_email_message_output(
    rendered: Rendered, to_name: str | None
) -> None:
    headers = {"X-MailSage-Job-ID": "job_1", "X-MailSage-Message-ID": "m1"}
    ours = assert_well_formed(
        build(rendered.subject, rendered.text, rendered.html, to_name=to_name, headers=headers)
    )
    theirs = parse(reference(rendered, to_name, headers))
    assert shape(ours) == shape(theirs)
    for name in ("From", "To", "Subject", "Message-ID", "MIME-Version", *headers):
        assert ours[name] == theirs[name], name
    for mine, old in zip(leaves(ours), leaves(theirs), strict=True):
        assert mine.get_content_type() == old.get_content_type()
        assert mine.get_content_charset() == old.get_content_charset()
        assert mine.get_content() == old.get_content()
        if old["Content-Transfer-Encoding"] in ("7bit", "8bit"):  # the same encoding rules
            assert mine["Content-Transfer-Encoding"] == old["Content-Transfer-Encoding"]
        else:
            assert mine["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
