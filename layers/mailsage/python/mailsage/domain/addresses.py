"""Address and header-value checks shared by every surface."""

from __future__ import annotations

from email.utils import formataddr, parseaddr

from mailsage.errors import InvalidRecipient, ValidationFailed


def has_line_break(value: str | None) -> bool:
    return value is not None and ("\r" in value or "\n" in value)


def normalize_email(address: str) -> str:
    """The canonical form of a recipient address, or `InvalidRecipient` saying what is wrong."""
    from email_validator import EmailNotValidError, validate_email

    if has_line_break(address):
        raise InvalidRecipient("the address contains a line break")
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidRecipient(f"{address!r} is not a valid email address: {exc}") from exc


def check_display_name(name: str | None) -> None:
    if has_line_break(name):
        raise InvalidRecipient("the name contains a line break")


def parse_mailbox(value: str, field: str) -> str:
    """Validate 'addr' or 'Name <addr>' for From/Reply-To and return it in canonical form."""
    if has_line_break(value):
        raise ValidationFailed(f"{field} contains a line break", {"field": field})
    name, addr = parseaddr(value)
    if not addr:
        raise ValidationFailed(f"{field} is not a valid address: {value!r}", {"field": field})
    from mailsage.domain.senders import ascii_mailbox

    try:  # an IDN domain as A-labels: what relays take, and what formataddr can write
        addr = ascii_mailbox(normalize_email(addr), field)
    except InvalidRecipient as exc:
        raise ValidationFailed(f"{field}: {exc.message}", {"field": field}) from exc
    return formataddr((name, addr)) if name else addr
