"""The packed chunk-state layout, the one every chunk state is written in today.

A chunk state holds the mutable state of up to 50 messages as parallel values indexed by the
message's position in its chunk: statuses as one-letter codes (`s`), attempts (`a`), the last change
(`c`) as whole microseconds since the job's creation (`t0`, stored in the state), and the error code
/ message (`ec` / `em`) as maps holding only the positions that have one. A state of 50 messages is
~0.65 KB instead of ~1.3 KB (legacy_layout.py), so that each transition costs 1 write unit.
A message sent on its first attempt whose first delivery report moved it on holds that report in
the state: its attempts value is then negative, the send's stamp minus the report's (so the send's
time stays known with no log write; see Messages.update_delivery_status), and reads as 1 attempt.
Reads unpack it into the plain view every reader uses (lists of full status names, epoch seconds,
None for no error), the same view a legacy state reads as."""

from __future__ import annotations

import math
import re
from typing import Protocol

from mailsage.adapters.aws.dynamodb.keys import Item
from mailsage.domain.models import MessageStatus

PACKED_MARK = "t0"
POSITION_NAME = re.compile(r"#p\d+")
STATUS_CODES = {
    MessageStatus.QUEUED: "q",
    MessageStatus.SCHEDULED: "h",  # held
    MessageStatus.SENDING: "s",
    MessageStatus.SENT: "t",  # transmitted
    MessageStatus.DELIVERED: "d",
    MessageStatus.DEFERRED: "r",  # retried
    MessageStatus.BOUNCED: "b",
    MessageStatus.COMPLAINED: "c",
    MessageStatus.FAILED: "f",
    MessageStatus.SUPPRESSED: "x",
    MessageStatus.CANCELLED: "k",  # killed
    MessageStatus.EXPIRED: "e",
}
STATUS_OF_CODE = {code: status.value for status, code in STATUS_CODES.items()}
MICROS = 1_000_000
HELD_TRIES = 1  # the attempts of a message whose state holds its first report (see above)


def unpack_state(item: Item) -> None:
    t0, size = float(item[PACKED_MARK]), len(item["s"])
    codes, errors = item.get("ec") or {}, item.get("em") or {}
    tries = [int(n) for n in item["a"]]
    item |= {
        "packed": True,
        "statuses": [STATUS_OF_CODE[code] for code in item["s"]],
        "attempts": [HELD_TRIES if n < 0 else n for n in tries],
        "changed_at": [t0 + int(micros) / MICROS for micros in item["c"]],
        "error_codes": [codes.get(str(p)) for p in range(size)],
        "error_messages": [errors.get(str(p)) for p in range(size)],
        # when a message whose first delivery report the state holds was sent (else None)
        "folded_sent_at": [
            t0 + (int(micros) + n) / MICROS if n < 0 else None
            for micros, n in zip(item["c"], tries, strict=True)
        ],
    }


class Layout(Protocol):
    """How a chunk state is written: expressions and values for one position."""

    def status(self, p: int) -> str: ...

    def changed(self, p: int) -> str: ...

    def tries(self, p: int) -> str: ...

    def code(self, status: str) -> str: ...

    def stamp(self, when: float, t0: float) -> int | float:
        """`when` as stored."""

    def time(self, when: float, t0: float) -> float:
        """`when` as it reads back once stored."""

    def error(self, which: str, p: int, value: str | None, placeholder: str) -> tuple[str | None, str | None]:
        """(a SET clause, a REMOVE clause) that store `value` as the error code ("code") or message
        ("message") at `p`; None unsets it."""


class PackedLayout:
    __slots__ = ()

    def status(self, p: int) -> str:
        return f"#s[{p}]"

    def changed(self, p: int) -> str:
        return f"#c[{p}]"

    def tries(self, p: int) -> str:
        return f"#a[{p}]"

    def code(self, status: str) -> str:
        return STATUS_CODES[MessageStatus(status)]

    def stamp(self, when: float, t0: float) -> int | float:
        """Microseconds since t0 rounded up (so that what is read back is never earlier than `when`)."""
        return math.ceil((when - t0) * MICROS)

    def time(self, when: float, t0: float) -> float:
        return t0 + self.stamp(when, t0) / MICROS

    def error(self, which: str, p: int, value: str | None, placeholder: str) -> tuple[str | None, str | None]:
        """An unset error is absent from its map."""
        path = f"{'#ec' if which == 'code' else '#em'}.#p{p}"
        return (f"{path} = {placeholder}", None) if value is not None else (None, path)


PACKED: Layout = PackedLayout()

# The expression names of the packed layout; its error maps are keyed by position, through #p{n}
# (see codec.expression_names).
PACKED_NAMES = {"#s": "s", "#a": "a", "#c": "c", "#ec": "ec", "#em": "em"}
