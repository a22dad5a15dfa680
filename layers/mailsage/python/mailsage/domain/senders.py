"""The sender rule: an account with `sender_domains` sends only from those domains, on every way in
(v1 send and batch, v2 create-message, the ingest queue), whatever gives the From (the request, a
template, the deployment's default)."""

from __future__ import annotations

from email.utils import parseaddr
from functools import lru_cache

from mailsage.domain.mailbox import Mailbox
from mailsage.domain.models import Account
from mailsage.errors import Forbidden, ValidationFailed


@lru_cache(maxsize=1024)
def ascii_domain(domain: str) -> str:
    """The domain as DNS compares it: lower case, IDNA A-labels, no trailing dot. `münchen.de`,
    `MÜNCHEN.de` and `xn--mnchen-3ya.de` are one domain; `sub.example.com` is not `example.com`."""
    from email_validator import EmailNotValidError, validate_email

    bare = domain.strip().removesuffix(".")
    try:  # the same IDNA rules that validated the address
        return validate_email(f"postmaster@{bare}", check_deliverability=False).ascii_domain.lower()
    except EmailNotValidError:
        return bare.lower()  # not a domain: it can only match itself, exactly as written


def ascii_mailbox(value: str, field: str = "from") -> str:
    """`value` ('addr' or 'Name <addr>') with its address's domain as IDNA A-labels, the form DNS,
    SES and SMTP relays without SMTPUTF8 take in a From. A non-ASCII local part has no such form:
    400. Anything not parseable is returned unchanged for the address check to report."""
    addr = parseaddr(value)[1]
    if not addr or addr.isascii() or "@" not in addr:
        return value
    mailbox = Mailbox(addr)
    local, domain = mailbox.local_part, mailbox.domain
    if not local.isascii():
        raise ValidationFailed(
            f"{field}: the local part must be ASCII (internationalized addresses are not supported)",
            {"field": field},
        )
    head, found, tail = value.rpartition(addr)
    return f"{head}{local}@{ascii_domain(domain)}{tail}" if found else value


def check_sender(account: Account | None, from_addr: str, field: str = "from") -> None:
    """Raise `Forbidden` (403) unless the address in `from_addr` ('addr' or 'Name <addr>', already
    validated) is at one of the account's sender domains. An account without `sender_domains` may
    send from any domain; an empty list allows none. Subdomains must be listed on their own."""
    allowed = account.sender_domains if account is not None else None
    if allowed is None:
        return
    domain = Mailbox.parse(from_addr).domain
    if ascii_domain(domain) not in {ascii_domain(d) for d in allowed}:
        raise Forbidden(
            f"{field}: {domain} is not a sender domain of this account",
            {"field": field, "domain": domain},
        )
