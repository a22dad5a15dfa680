"""Rendered content -> RFC 5322 bytes (MIME per RFC 2045/2046/2387).

The structure, outermost first; a level with one child collapses into that child:

    multipart/mixed                      when there are regular attachments
      multipart/alternative              when there is more than one version of the body
        text/plain                       `rendered.text`
        text/x-amp-html                  `rendered.amp` (between text and html: html is preferred last)
        multipart/related                when the html has inline parts (`content_id`)
          text/html                      `rendered.html` (the root of the related group)
          <inline part>...               Content-ID: <cid>, Content-Disposition: inline
      <attachment>...                    Content-Disposition: attachment, base64

An attachment is *inline* (in multipart/related, next to the HTML that refers to it by `cid:`)
when it has a `content_id`, its disposition is not "attachment", and there is an HTML part;
otherwise it goes into multipart/mixed, with its Content-ID if it has one.

Encodings, the rules of `EmailMessage.set_content`: a text part whose lines are at most 78 bytes
is 7bit (ASCII) or 8bit (UTF-8); longer lines are quoted-printable, or base64 when that is
shorter (mostly non-Latin text); attachments are always base64.

Headers are written here, never by the `email` package's header registry, which decodes RFC 2047
encoded words in what it is given and, on some patch levels, writes what they decode to (CR LF
included) as raw lines. Caller text is text: plain ASCII without '=?' is written as is, folded at
its spaces; anything else (non-ASCII, a literal '=?', spaces at the edges) becomes UTF-8 encoded
words built here, which decode back to exactly that text. Display names are atoms, a quoted
string, or one encoded word; MIME parameters (file names) are quoted strings or RFC 2231. Control
characters are refused (header_values.py); the submit path refuses them first, with a 400.

The assembly is written out here rather than by `EmailMessage`: the common message (no
attachments, ASCII headers) costs a few dozen microseconds instead of a millisecond, which is a
visible share of a sender's time. tests/unit/test_mime.py parses every shape back with the
`email` package.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy as _policies
from email.header import Header
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from mailsage.domain.addresses import envelope_address, mailbox_name, quote_phrase
from mailsage.domain.header_values import header_text_problem
from mailsage.domain.rendering import Rendered

_POLICY = _policies.SMTP
_CRLF = b"\r\n"
_MAX_LINE = 78  # policy.SMTP.max_line_length: the line length that makes a text part 7bit/8bit
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext: printable ASCII except ':'
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")  # a MIME type or subtype (RFC 6838)
_BOUNDARY_TOKEN_WIDTH = len(repr(sys.maxsize - 1))

# Headers this module writes itself: a custom header of the same name is left out (the message's
# identity and structure are not the caller's to change; the API layer rejects most of these).
_OWN_HEADERS = frozenset({"from", "to", "subject", "date", "message-id", "mime-version"})

_Entity = tuple[bytes, bytes]  # (header lines, body): one MIME entity, CRLF line endings


def build_message(
    rendered: Rendered,
    *,
    from_addr: str,
    to_email: str,
    to_name: str | None,
    reply_to: str | None,
    message_id: str,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    date: float | None = None,
    boundaries: random.Random | None = None,
) -> bytes:
    """The message for one recipient. `attachments` are Content.attachments dicts:
    {file_name, content_type, data (base64), disposition "attachment"|"inline", content_id?}.
    `date` (epoch seconds; None: now) and `boundaries` (the source of MIME boundaries; None: the
    module's random numbers) make the bytes reproducible: the same arguments, the same message.

    Raises ValueError for a header name that is not RFC 5322 ftext, or for a line break in any
    header value (custom headers, file names, content ids): header injection is impossible."""
    head = [
        _mailbox("From", from_addr),
        _address("To", to_name, to_email),
        _header("Subject", rendered.subject),
        _header("Date", _date(date)),
        _header("Message-ID", message_id),
    ]
    if reply_to:
        head.append(_mailbox("Reply-To", reply_to))
    for name, value in (headers or {}).items():
        lowered = name.lower()
        if lowered in _OWN_HEADERS or lowered.startswith("content-") or (reply_to and lowered == "reply-to"):
            continue
        head.append(_header(name, value))
    head.append(b"MIME-Version: 1.0\r\n")

    draw = boundaries.randrange if boundaries is not None else None
    part_headers, body = _body(rendered, attachments or [], draw)
    return b"".join(head) + part_headers + _CRLF + body


def _date(at: float | None) -> str:
    """RFC 5322 date-time in UTC, whole seconds ("+0000")."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return format_datetime(moment.replace(microsecond=0))


_Draw = Callable[[int], int] | None  # randrange of the boundaries' source; None: random.randrange


# -- structure ------------------------------------------------------------------------------------
def _body(rendered: Rendered, attachments: list[dict[str, Any]], draw: _Draw) -> _Entity:
    html_present = rendered.html is not None
    inline: list[dict[str, Any]] = []
    regular: list[dict[str, Any]] = []
    for attachment in attachments:
        related = (
            html_present
            and attachment.get("content_id")
            and (attachment.get("disposition") or "inline") != "attachment"
        )
        (inline if related else regular).append(attachment)

    versions: list[_Entity] = []
    if rendered.text is not None:
        versions.append(_text_part(rendered.text, "plain"))
    if rendered.amp is not None:
        versions.append(_text_part(rendered.amp, "x-amp-html"))
    if html_present or not versions:  # no content at all: an empty HTML part, as before
        html = _text_part(rendered.html or "", "html")
        if inline:
            html = _multipart("related", [html, *(_attachment_part(a, "inline") for a in inline)], draw)
        versions.append(html)
    body = versions[0] if len(versions) == 1 else _multipart("alternative", versions, draw)
    if regular:
        body = _multipart("mixed", [body, *(_attachment_part(a, "attachment") for a in regular)], draw)
    return body


def _multipart(subtype: str, parts: list[_Entity], draw: _Draw) -> _Entity:
    """RFC 2046 5.1: each part after `--boundary`, closed by `--boundary--`; the boundary is random
    and checked against the content so that no part can contain it."""
    entities = [headers + _CRLF + body for headers, body in parts]
    while True:
        token = f"{(draw or random.randrange)(sys.maxsize):0{_BOUNDARY_TOKEN_WIDTH}d}"
        boundary = f"==============={token}=="
        marker = boundary.encode("ascii")
        if not any(marker in entity for entity in entities):
            break
    delimiter = b"--" + marker + _CRLF
    body = delimiter + (_CRLF + delimiter).join(entities) + _CRLF + b"--" + marker + b"--" + _CRLF
    params = ' type="text/html";' if subtype == "related" else ""  # RFC 2387: the root's type
    content_type = f'Content-Type: multipart/{subtype};{params}\r\n boundary="{boundary}"\r\n'
    return content_type.encode("ascii"), body


# -- text parts -----------------------------------------------------------------------------------
_TEXT_HEADERS = {
    (subtype, cte): (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
    ).encode("ascii")
    for subtype in ("plain", "html", "x-amp-html")
    for cte in ("7bit", "8bit", "quoted-printable", "base64")
}


def _text_part(text: str, subtype: str) -> _Entity:
    """A UTF-8 text part: line endings become CRLF; the transfer encoding is chosen as
    `email.contentmanager` does it (7bit, 8bit, then the shorter of quoted-printable and base64)."""
    lines = text.encode("utf-8").splitlines()
    data = _CRLF.join(lines) + _CRLF
    if max(map(len, lines), default=0) <= _MAX_LINE and b"\0" not in data:  # RFC 2045: no NUL in 7bit/8bit
        cte = "7bit" if data.isascii() else "8bit"
        body = data
    else:
        sniff = _CRLF.join(lines[:10]) + _CRLF
        if len(binascii.b2a_qp(sniff, istext=True)) > len(binascii.b2a_base64(sniff)):
            cte, body = "base64", _base64_lines(data)
        else:
            # Soft line breaks keep every encoded line within RFC 2045's 76 characters.
            cte, body = "quoted-printable", binascii.b2a_qp(data, istext=True)
    return _TEXT_HEADERS[subtype, cte], body


def _base64_lines(data: bytes) -> bytes:
    """base64 in lines of 76 characters, CRLF-terminated (RFC 2045 6.8)."""
    return base64.encodebytes(data).replace(b"\n", _CRLF)


# -- attachments ----------------------------------------------------------------------------------
def _attachment_part(attachment: dict[str, Any], default_disposition: str) -> _Entity:
    return _encoded_attachment(
        attachment.get("file_name") or None,
        attachment.get("content_type") or "application/octet-stream",
        attachment["data"],
        attachment.get("disposition") or default_disposition,
        attachment.get("content_id") or None,
    )


@lru_cache(maxsize=8)
def _encoded_attachment(
    file_name: str | None, content_type: str, data: str, disposition: str, content_id: str | None
) -> _Entity:
    """One attachment, encoded once for every recipient of a chunk (they share it)."""
    for field, value in (
        ("file_name", file_name),
        ("content_type", content_type),
        ("content_id", content_id),
    ):
        problem = header_text_problem(value, tab=False)
        if problem:
            raise ValueError(f"attachment {field} contains {problem}: {value!r}")
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"attachment disposition must be 'attachment' or 'inline', got {disposition!r}")
    maintype, subtype, params = content_type_parts(content_type)
    names = {} if file_name is None else {"filename": file_name}
    if file_name is not None:
        params["name"] = file_name  # what older clients read
    head = [
        _with_params("Content-Type", f"{maintype}/{subtype}", params),
        b"Content-Transfer-Encoding: base64\r\n",
        _with_params("Content-Disposition", disposition, names),
    ]
    if content_id is not None:
        cid = content_id.strip().removeprefix("<").removesuffix(">")
        if not _MSG_ID.fullmatch(cid) or "=?" in cid:  # parsers decode encoded words even in msg-ids
            raise ValueError(f"attachment content_id must be printable ASCII without '=?': {content_id!r}")
        head.append(f"Content-ID: <{cid}>\r\n".encode("ascii"))
    return b"".join(head), _base64_lines(base64.b64decode(data))


def content_type_parts(value: str) -> tuple[str, str, dict[str, str]]:
    """(maintype, subtype, params) of an attachment's content type. Anything that is not a leaf
    type (multipart/*, and message/*, which RFC 2046 forbids to base64) is sent as
    application/octet-stream. Raises ValueError for a parameter that cannot be written as text
    (a control character, once its RFC 2231 or RFC 2047 encoding is decoded)."""
    header = _POLICY.header_factory("Content-Type", value)
    maintype, subtype = header.maintype, header.subtype  # type: ignore[attr-defined]
    valid = not header.defects and _TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)
    if not valid or maintype in ("multipart", "message"):
        return "application", "octet-stream", {}
    params = {k: str(v) for k, v in header.params.items() if k not in ("name", "boundary")}  # type: ignore[attr-defined]
    for key, text in params.items():
        problem = header_text_problem(text, tab=False)
        if not _TOKEN.fullmatch(key) or problem:
            raise ValueError(f"content type parameter {key!r}: {problem or 'not a valid name'}")
    return maintype, subtype, params


def _with_params(name: str, value: str, params: dict[str, str]) -> bytes:
    """`name: value; key="text"...`, each parameter written here (see _param), folded between
    parameters."""
    lines, line = [], f"{name}: {value}"
    for key, text in params.items():
        for piece in _param(key, text):
            if len(line) + 2 + len(piece) > _MAX_LINE:
                lines.append(line + ";")
                line = " " + piece
            else:
                line += "; " + piece
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


_PARAM_CHUNK = 60
# Printable ASCII but '"' and '\', short enough for a line of its own (RFC 5322: 998).
_PLAIN_PARAM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{0,900}")


def _param(key: str, text: str) -> list[str]:
    """A MIME parameter: a quoted string when `text` is plain ASCII without '=?' (parsers decode
    encoded words even in quoted strings), quotes or backslashes (readers unquote file names
    twice); otherwise RFC 2231 UTF-8 percent-encoding, in numbered continuations that fit a line."""
    if _PLAIN_PARAM.fullmatch(text) and "=?" not in text:
        return [f'{key}="{text}"']
    encoded = quote(text, safe="")
    chunks, start = [], 0
    while start < len(encoded):
        end = min(start + _PARAM_CHUNK, len(encoded))
        escape = encoded.rfind("%", end - 2, end)  # never split a %XX
        if end < len(encoded) and escape != -1:
            end = escape
        chunks.append(encoded[start:end])
        start = end
    if len(chunks) <= 1:
        return [f"{key}*=utf-8''{encoded}"]
    first, *rest = chunks
    return [f"{key}*0*=utf-8''{first}", *(f"{key}*{n}*={chunk}" for n, chunk in enumerate(rest, 1))]


_MSG_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII but '<' and '>'


# -- headers --------------------------------------------------------------------------------------
# Written here, not by the email package's header registry: it decodes encoded words in a value
# and, on some patch levels (CPython 3.11.7, 3.12.1: gh-121650), writes a decoded CR LF raw.
def _header(name: str, value: str) -> bytes:
    """One unstructured header line (Subject, a custom header), folded; a short plain-ASCII value
    (the usual case) is written as is without parsing it."""
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"not a valid header name: {name!r}")
    if (
        len(name) + len(value) <= _MAX_LINE - 2
        and value.isascii()
        and value.isprintable()
        and value
        and value[0] != " "
        and value[-1] != " "
        and "  " not in value
        and "=?" not in value
    ):
        return f"{name}: {value}\r\n".encode("ascii")
    problem = header_text_problem(value)
    if problem:
        raise ValueError(f"header {name} contains {problem}")
    if not value.isascii() or "=?" in value or value != value.strip(" \t"):
        return _encoded_words(name, value)  # (a parser drops spaces at the edges; a word keeps them)
    if value.isprintable() and " " not in value and len(name) + len(value) <= _MAX_HEADER_LINE - 2:
        # One long token (a URL, a Feedback-ID) has nowhere to fold. The email package would move
        # it to a continuation line (read back with a leading space) or, longer, turn it into RFC
        # 2047 encoded words, which breaks List-Unsubscribe URLs for mailbox providers that do not
        # decode them; RFC 5322 allows the line as is, up to 998 characters.
        return f"{name}: {value}\r\n".encode("ascii")
    return _fold(name, value)


_MAX_HEADER_LINE = 998  # RFC 5322's hard limit, without CRLF


_WORDS = re.compile(r"[ \t]*[^ \t]+")  # each word with the whitespace before it


@lru_cache(maxsize=1024)
def _fold(name: str, value: str) -> bytes:
    """Plain ASCII folded before the whitespace between words, so that unfolding (removing the
    CRLFs) gives back exactly `value`; encoded words when a word does not fit a line. Cached: a
    subject that is the same for every recipient is folded once."""
    first, *rest = _WORDS.findall(value)
    lines, line = [], f"{name}: {first}"
    for word in rest:
        if len(line) + len(word) > _MAX_LINE:
            lines.append(line)
            line = word  # starts with whitespace: a continuation line
        else:
            line += word
    lines.append(line)
    if max(map(len, lines)) > _MAX_HEADER_LINE:
        return _encoded_words(name, value)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@lru_cache(maxsize=1024)
def _encoded_words(name: str, value: str) -> bytes:
    """`value` as UTF-8 RFC 2047 encoded words, folded within 78 characters; whitespace and any
    literal '=?' are inside the words, so decoding gives back exactly `value`."""
    words = Header(value, "utf-8", header_name=name, maxlinelen=_MAX_LINE).encode(linesep="\r\n")
    return f"{name}: {words}\r\n".encode("ascii")


@lru_cache(maxsize=256)
def _mailbox(name: str, mailbox: str) -> bytes:
    """From / Reply-To from a stored 'Name <addr>' (addresses.format_mailbox). Cached: the same
    for every recipient of a job."""
    display, address = parseaddr(mailbox)
    if not address:
        raise ValueError(f"{name} is not an address: {mailbox!r}")
    return _address(name, mailbox_name(display), address)


@lru_cache(maxsize=256)
def _address(name: str, display: str | None, address: str) -> bytes:
    """'display <address>', the display name written here: a quoted string when it is plain
    ASCII, otherwise encoded words. An address is validated at submit; one that a parser would
    read as something else is refused here too."""
    problem = header_text_problem(address, tab=False)
    if problem or "=?" in address or any(c in address for c in " <>,;"):
        raise ValueError(f"{name}: not a valid address: {address!r}")
    problem = header_text_problem(display, tab=False)
    if problem:
        raise ValueError(f"{name}: the name contains {problem}")
    if not address.isascii():
        # An internationalized domain goes in its ASCII form; a non-ASCII local part would need
        # SMTPUTF8, which MailSage does not use.
        try:
            address = envelope_address(address)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    if not display:
        return _header(name, address)
    return _with_name(name, display, address)


def _with_name(name: str, display: str, address: str) -> bytes:
    if display.isascii() and display.isprintable() and "=?" not in display:
        line = f"{name}: {quote_phrase(display)} <{address}>"
        if len(line) <= _MAX_HEADER_LINE:
            return f"{line}\r\n".encode("ascii")
    # One encoded word while the line allows it: the email package's address parser (every
    # version) keeps the folding space between two encoded words of a name, which RFC 2047 says to
    # drop, so a name split into words reads back with stray spaces there.
    words = f"=?utf-8?b?{base64.b64encode(display.encode()).decode()}?="
    if len(name) + len(words) + 2 > _MAX_HEADER_LINE:
        words = Header(display, "utf-8", header_name=name, maxlinelen=_MAX_LINE).encode(linesep="\r\n")
    last = words.rpartition("\r\n")[2]
    space = "\r\n " if len(last) + len(address) + 3 > _MAX_LINE else " "
    return f"{name}: {words}{space}<{address}>\r\n".encode("ascii")
