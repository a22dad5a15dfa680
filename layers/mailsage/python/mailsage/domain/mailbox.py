"""A mailbox as stored on a job ('addr' or 'Name <addr>', validated by `addresses.parse_mailbox`),
and the one place its sender domain is read."""

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
