"""What the local inbox page shows: the messages the built-in sink kept in its outbox (one `.eml`
file each, named `<receipt time in ns>-<8 hex>.eml`), newest first, each told apart by the job,
campaign and status the store has for it.

A message names itself to MailSage by its signed `Feedback-ID` (domain/feedback_id.py: account, job
and message ids, verified for the recipient), so the store can be asked without trusting anything
the message says; `X-MailSage-Job-ID` is shown when there is no valid Feedback-ID (mail sent by
something else, or before the signing key changed). Every message is hostile input: nothing here
renders it, and a file that does not parse yields what could be read.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from mailsage.domain.feedback_id import FeedbackIds, FeedbackRef

log = logging.getLogger("mailsage.local")

# A message's id on the page is its file name without `.eml`: nothing else reaches the disk.
MESSAGE_ID = re.compile(r"[0-9]{1,20}-[0-9a-f]{8}")
LIST_LIMIT = 100  # rows on the page; the count says how many there are in all
SEARCH_SCAN_LIMIT = 5000  # newest files a search looks through
HEADER_READ_BYTES = 64 * 1024  # a header block longer than this is cut (a summary only needs a few)
SUMMARY_CACHE_SIZE = 10_000  # files never change once renamed into the outbox: parse each once
MAX_SHOWN_BYTES = 2 * 1024 * 1024  # raw source and bodies shown on the page; downloads are whole


@dataclass(slots=True, frozen=True)
class Summary:
    """One row of the list: what the message's headers say (statuses come from the store)."""

    id: str
    received_at: float
    from_addr: str
    to: str
    subject: str
    size: int
    ref: FeedbackRef | None
    job_id: str  # the Feedback-ID's, else the X-MailSage-Job-ID header's, else ""

    def matches(self, words: list[str]) -> bool:
        text = f"{self.to}\n{self.subject}".lower()
        return all(word in text for word in words)


@dataclass(slots=True)
class Row:
    summary: Summary
    campaign_id: str = ""
    status: str = ""

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "id": s.id,
            "received_at": s.received_at,
            "received": shown_time(s.received_at),
            "received_iso": datetime.fromtimestamp(s.received_at, UTC).isoformat(),
            "from": s.from_addr,
            "to": s.to,
            "subject": s.subject,
            "size": s.size,
            "job_id": s.job_id,
            "campaign_id": self.campaign_id,
            "status": self.status,
        }


@dataclass(slots=True)
class Attachment:
    filename: str
    content_type: str
    payload: bytes


@dataclass(slots=True)
class Detail:
    """One message opened: its parts, for the message page."""

    row: Row
    headers: list[tuple[str, str]]
    raw: bytes
    html: str | None = None
    text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    problem: str = ""  # why some of it could not be read


def shown_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Outbox:
    """The sink's outbox, read for the inbox page. `lookup` gives (campaign id, status) for a
    message the store knows; `feedback_ids` verifies the Feedback-ID that names it."""

    def __init__(
        self,
        directory: Path,
        feedback_ids: Callable[[], FeedbackIds | None],
        lookup: Callable[[FeedbackRef], tuple[str, str]],
    ) -> None:
        self.directory = directory
        self._feedback_ids = feedback_ids
        self._lookup = lookup
        self._cache: OrderedDict[str, Summary] = OrderedDict()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Message ids, newest first."""
        try:
            stems = [p.name[:-4] for p in self.directory.iterdir() if p.name.endswith(".eml")]
        except FileNotFoundError:
            return []
        # The receipt time has the same number of digits for centuries: lexical order is time order.
        return sorted((s for s in stems if MESSAGE_ID.fullmatch(s)), reverse=True)

    def rows(self, query: str = "", limit: int = LIST_LIMIT) -> tuple[list[Row], int]:
        """The newest `limit` messages whose recipient or subject holds every word of `query`, and
        how many match in all (of the newest SEARCH_SCAN_LIMIT when searching)."""
        names = self.names()
        words = query.lower().split()
        if not words:
            summaries = [s for s in map(self.summary, names[:limit]) if s is not None]
            return [self._row(s) for s in summaries], len(names)
        found = [s for s in map(self.summary, names[:SEARCH_SCAN_LIMIT]) if s and s.matches(words)]
        return [self._row(s) for s in found[:limit]], len(found)

    def summary(self, message_id: str) -> Summary | None:
        with self._lock:
            cached = self._cache.get(message_id)
        if cached is not None:
            return cached
        if not MESSAGE_ID.fullmatch(message_id):
            return None
        path = self._path(message_id)
        try:
            with path.open("rb") as f:
                head = f.read(HEADER_READ_BYTES)
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        summary = self._summarise(message_id, head, size)
        with self._lock:
            self._cache[message_id] = summary
            while len(self._cache) > SUMMARY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return summary

    def detail(self, message_id: str) -> Detail | None:
        summary = self.summary(message_id)
        if summary is None:
            return None
        try:
            raw = self._path(message_id).read_bytes()
        except FileNotFoundError:
            return None
        detail = Detail(row=self._row(summary), headers=[], raw=raw)
        _read_parts(detail)
        return detail

    def raw(self, message_id: str) -> bytes | None:
        try:
            return self._path(message_id).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def delete_all(self) -> int:
        """Every message the sink kept; a message being written (`.*.tmp`) is left to the sink."""
        deleted = 0
        for name in self.names():
            with contextlib.suppress(FileNotFoundError):
                self._path(name).unlink()
                deleted += 1
        with self._lock:
            self._cache.clear()
        return deleted

    def _path(self, message_id: str) -> Path:
        if not MESSAGE_ID.fullmatch(message_id):
            raise ValueError("not a message id")
        return self.directory / f"{message_id}.eml"

    def _summarise(self, message_id: str, head: bytes, size: int) -> Summary:
        end = head.find(b"\r\n\r\n")
        block = head if end < 0 else head[:end]
        try:
            headers = BytesHeaderParser(policy=policy.default).parsebytes(block)
            from_addr, to = _header(headers, "From"), _header(headers, "To")
            subject = _header(headers, "Subject")
            feedback = headers.get_all("Feedback-ID") or []
            job_header = _header(headers, "X-MailSage-Job-ID")
        except Exception:  # a header the email package cannot parse: the row says so
            log.warning("inbox: could not read the headers of %s", message_id)
            from_addr, to, subject, feedback, job_header = "", "", "(unreadable headers)", [], ""
        ref = self._ref(feedback, to)
        return Summary(
            id=message_id,
            received_at=int(message_id.split("-", 1)[0]) / 1e9,
            from_addr=from_addr,
            to=to,
            subject=subject,
            size=size,
            ref=ref,
            job_id=ref.job_id if ref else job_header,
        )

    def _ref(self, feedback: list[Any], to: str) -> FeedbackRef | None:
        ids = self._feedback_ids()
        addresses = [address for _, address in getaddresses([to]) if address]
        if ids is None or len(feedback) != 1 or len(addresses) != 1:
            return None  # MailSage sends one message per recipient with one Feedback-ID
        return ids.read(str(feedback[0]), addresses[0])

    def _row(self, summary: Summary) -> Row:
        row = Row(summary)
        if summary.ref is not None:
            try:
                row.campaign_id, row.status = self._lookup(summary.ref)
            except Exception as exc:  # the store is unavailable: the page still lists the mail
                log.warning("inbox: could not look up message %s: %s", summary.ref.message_id, exc)
        return row


def _header(headers: Any, name: str) -> str:
    value = headers.get(name)
    return "" if value is None else " ".join(str(value).split())


def _read_parts(detail: Detail) -> None:
    """The message's headers, bodies and attachments, as far as they parse."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(detail.raw)
        assert isinstance(message, EmailMessage)
        detail.headers = [(name, str(value)) for name, value in message.items()]
        html = message.get_body(preferencelist=("html",))
        text = message.get_body(preferencelist=("plain",))
        detail.html = _content(html) if html is not None else None
        detail.text = _content(text) if text is not None else None
        for part in message.iter_attachments():
            payload = part.get_payload(decode=True)
            detail.attachments.append(
                Attachment(
                    filename=part.get_filename() or f"attachment-{len(detail.attachments) + 1}",
                    content_type=part.get_content_type(),
                    payload=payload if isinstance(payload, bytes) else b"",
                )
            )
    except Exception as exc:  # hostile or broken MIME: show what was read, and the raw source
        detail.problem = f"the message could not be read in full ({type(exc).__name__})"


def _content(part: Any) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset: the bytes as UTF-8, replaced where not
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", "replace")
