"""Address and header-value checks shared by every surface."""

from __future__ import annotations

import base64
import re
from email.utils import parseaddr

from mailsage.domain.header_values import header_text_problem
from mailsage.errors import InvalidRecipient, ValidationFailed

# Quoted strings and comments may hold ':' ';' ',' without making a group or a list.
_QUOTED_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|\((?:[^()\\]|\\.)*\)')


def has_line_break(value: str | None) -> bool:
    return value is not None and ("\r" in value or "\n" in value)


def normalize_email(address: str, *, sendable: bool = False) -> str:
    """The canonical form of a recipient address, or `InvalidRecipient` saying what is wrong.
    `sendable`: also refuse a non-ASCII local part, which only SMTPUTF8 carries (SES and
    MailSage's relays do not): accepted, it could only fail at send. An IDN domain is fine."""
    from email_validator import EmailNotValidError, validate_email

    problem = header_text_problem(address, tab=False)
    if problem:
        raise InvalidRecipient(f"the address contains {problem}")
    if "=?" in address:
        # Valid atext, but header parsers decode it as an RFC 2047 encoded word.
        raise InvalidRecipient(f"{address!r} is not accepted: '=?' starts an encoded word in mail headers")
    try:
        return validate_email(address, check_deliverability=False, allow_smtputf8=not sendable).normalized
    except EmailNotValidError as exc:
        raise InvalidRecipient(f"{address!r} is not a valid email address: {exc}") from exc


def envelope_address(address: str) -> str:
    """`address` as the SMTP envelope, SES's destination and the To header carry it: an
    internationalized domain as IDNA 2008 A-labels, as the address check computed them (Python's
    own 'idna' codec is IDNA 2003, which sends straße.de to strasse.de, another domain). A
    non-ASCII local part has no such form: ValueError."""
    if address.isascii():
        return address
    from email_validator import EmailNotValidError, validate_email

    try:
        ascii_email = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid address: {address!r}: {exc}") from exc
    if ascii_email is None:
        raise ValueError(f"a non-ASCII local part needs SMTPUTF8: {address!r}")
    return ascii_email


def check_display_name(name: str | None) -> None:
    problem = header_text_problem(name, tab=False)
    if problem:
        raise InvalidRecipient(f"the name contains {problem}")


def format_mailbox(name: str | None, address: str) -> str:
    """'Name <addr>' as stored on a job: a name that is not plain ASCII, or that holds '=?', becomes
    one RFC 2047 encoded word, so that reading it back (`mailbox_name`) gives exactly `name`."""
    if not name:
        return address
    if name.isascii() and name.isprintable() and "=?" not in name:
        return f"{quote_phrase(name)} <{address}>"
    return f"=?utf-8?b?{base64.b64encode(name.encode()).decode()}?= <{address}>"


# RFC 5322 atoms separated by single spaces: a display name that needs no quoting.
_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def quote_phrase(name: str) -> str:
    """A plain-ASCII display name as written: as is when it is atoms, otherwise a quoted string
    (keeps specials and every space, which a parser would fold away outside quotes)."""
    if _PHRASE.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_name(name: str) -> str:
    """The text of a display name as `parseaddr` returns it: its encoded words decoded."""
    if "=?" not in name:
        return name
    from email.errors import HeaderParseError
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(name)))
    except (HeaderParseError, LookupError, UnicodeDecodeError) as exc:
        raise ValueError(f"the name {name!r} is not a valid RFC 2047 encoded word: {exc}") from None


def parse_mailbox(value: str, field: str) -> str:
    """Validate 'addr' or 'Name <addr>' for From/Reply-To and return it in canonical form
    (`format_mailbox`). An RFC 2047 encoded word in the name is read as one (this field is
    RFC 5322 syntax); what it decodes to is checked like any other name."""
    problem = header_text_problem(value)
    if problem:
        raise ValidationFailed(f"{field} contains {problem}", {"field": field})
    if any(c in _QUOTED_OR_COMMENT.sub("", value) for c in ":;,"):
        # parseaddr reads "a Bcc: v@e.com <f@example.com>" as a group and returns v@e.com.
        raise ValidationFailed(
            f"{field} must be one address ('addr' or 'Name <addr>'), not a group or a list: {value!r}",
            {"field": field},
        )
    name, addr = parseaddr(value)
    if not addr:
        raise ValidationFailed(f"{field} is not a valid address: {value!r}", {"field": field})
    from mailsage.domain.senders import ascii_mailbox

    try:  # an IDN domain as A-labels: what relays take, and what a From header can carry
        addr = ascii_mailbox(normalize_email(addr), field)
        name = mailbox_name(name)
    except (InvalidRecipient, ValueError) as exc:
        message = exc.message if isinstance(exc, InvalidRecipient) else str(exc)
        raise ValidationFailed(f"{field}: {message}", {"field": field}) from exc
    problem = header_text_problem(name, tab=False)
    if problem:
        raise ValidationFailed(f"{field}: the name contains {problem}", {"field": field})
    return format_mailbox(name, addr)
