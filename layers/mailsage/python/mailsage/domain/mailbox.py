"""A mailbox as stored on a job ('addr' or 'Name <addr>', validated by `addresses.parse_mailbox`),
the one place its sender domain is read, and the Message-ID built from it."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str
    name: str = ""

    @classmethod
    def parse(cls, value: str) -> Mailbox:
        """Read a stored mailbox; an unparseable value gives an empty address."""
        name, address = parseaddr(value or "")
        return cls(address, name)

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        """The domain, lower-cased ('' when there is none): domains compare case-insensitively."""
        return self.address.rpartition("@")[2].lower()


def sender_domain(value: str) -> str | None:
    """The lower-cased domain of a stored From ('addr' or 'Name <addr>'), None when it has none."""
    return Mailbox.parse(value).domain or None


# Only for a From without a domain, which validation never lets through.
FALLBACK_MESSAGE_ID_DOMAIN = "mailsage.local"


def message_id_header(message_id: str, from_addr: str, domain: str | None = None) -> str:
    """The Message-ID of a message, `<id@host>`: the host is `domain` (the deployment's setting)
    or else the sender's own domain, one the sender controls (RFC 5322 3.6.4), so ids stay unique
    and the header matches the From as mailbox providers expect. Lookups read only the id part,
    so ids shown with another host (an older deployment's) still find the message."""
    return f"<{message_id}@{domain or sender_domain(from_addr) or FALLBACK_MESSAGE_ID_DOMAIN}>"
