"""AhaSend's words for MailSage's values, on the v2 surface only: message status names (and the
status filter of a listing), RFC 3339 date-times, comma-separated query lists. The domain works on
MessageStatus, epoch seconds and tuples; this module translates at the edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from mailsage.domain.messages import NotCancellable, StatusFilter
from mailsage.domain.models import MessageStatus
from mailsage.errors import ValidationFailed

# -- status names -------------------------------------------------------------------------------

S = MessageStatus
STATUS_NAMES: dict[MessageStatus, str] = {
    S.QUEUED: "Queued",
    S.SCHEDULED: "Scheduled",
    S.SENDING: "Processing",
    S.SENT: "Sent",
    S.DELIVERED: "Delivered",
    S.DEFERRED: "Deferred",
    S.BOUNCED: "Bounced",
    S.COMPLAINED: "Complained",
    S.FAILED: "Failed",
    S.SUPPRESSED: "Suppressed",
    S.CANCELLED: "Cancelled",
    S.EXPIRED: "Expired",
}
# Outcomes a sandbox message reports as "Sandbox <name>" (the contract's five).
SANDBOX_OUTCOMES = frozenset({S.DELIVERED, S.DEFERRED, S.BOUNCED, S.FAILED, S.SUPPRESSED})


def status_name(status: MessageStatus, sandbox: bool) -> str:
    name = STATUS_NAMES[status]
    return f"Sandbox {name}" if sandbox and status in SANDBOX_OUTCOMES else name


def _status_filters() -> dict[str, StatusFilter]:
    names: dict[str, StatusFilter] = {}
    for status, name in STATUS_NAMES.items():
        if status in SANDBOX_OUTCOMES:
            names[name.lower()] = StatusFilter(frozenset({status}), False)
            names[f"sandbox {name.lower()}"] = StatusFilter(frozenset({status}), True)
        else:
            names[name.lower()] = StatusFilter(frozenset({status}), None)
    names["canceled"] = names["cancelled"]
    # AhaSend's "Received": accepted, not yet handed to a provider.
    names["received"] = StatusFilter(frozenset({S.QUEUED, S.SCHEDULED, S.SENDING}), None)
    return names


_STATUS_FILTERS = _status_filters()


def parse_status_filter(value: str) -> tuple[StatusFilter, ...]:
    """`status=Bounced,Sandbox Delivered` -> filters; unknown names are a 400 listing the known ones."""
    filters = []
    for raw in value.split(","):
        name = " ".join(raw.split()).lower()
        if not name:
            continue
        found = _STATUS_FILTERS.get(name)
        if found is None:
            known = ", ".join(
                [
                    "Received",
                    *STATUS_NAMES.values(),
                    *(f"Sandbox {STATUS_NAMES[s]}" for s in SANDBOX_OUTCOMES),
                ]
            )
            raise ValidationFailed(
                f"status: unknown status {raw.strip()!r}; known: {known}", {"field": "status"}
            )
        filters.append(found)
    return tuple(filters)


def not_cancellable(refused: NotCancellable) -> ValidationFailed:
    """The 400 of a cancel that came too late, naming the message's status as the contract does."""
    name = status_name(refused.status, refused.sandbox)
    return ValidationFailed(
        f"the message is {name}: only a scheduled message can be cancelled, before its first attempt",
        {"status": refused.status.value},
    )


# -- values ----------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: str, field: str) -> datetime:
    """An RFC 3339 date-time with its offset (`2023-12-25T10:30:00Z`), or ValidationFailed."""
    text = value.strip()
    try:
        if not _RFC3339.fullmatch(text):
            raise ValueError(text)
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValidationFailed(
            f"{field} must be an RFC 3339 date-time with an offset, e.g. 2023-12-25T10:30:00Z; got {value!r}",
            {"field": field},
        ) from None


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 in UTC (`2023-12-25T10:30:00.123456Z`)."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def split_list(values: Iterable[str]) -> tuple[str, ...]:
    """`tags=a,b&tags=c` -> ("a", "b", "c"): comma-separated, repeated, or both."""
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())
