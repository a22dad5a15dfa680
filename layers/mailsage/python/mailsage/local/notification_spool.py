"""The built-in sink's delivery notifications, kept on disk from before the sink answers 250 until
the events queue holds them: a killed sink or a failed queue write delays them, never loses them.

Each accepted message appends one line (its header block, MAIL FROM, recipients; JSON) to the
spool's current segment, an append-only file, before the reply like the message itself: one write
to an open file, where a file per message cost a create and a remove on the send path. One thread
moves due records onto the events queue, many per queue write (the sink is another process
contending for the database's write lock with the server's workers). A segment is removed once
every record in it was queued; the writer moves to a new one every SEGMENT_RECORDS records, which
bounds what a kill can queue twice. A write that fails keeps the records and is tried again after
a growing pause. Segments a killed sink left are due at the next start; a last line cut short by
the kill was not answered 250 yet (the sender sends that message again) and is dropped.

A kill between the queue write and the segment's removal queues its records again: each copy
carries the same dedup key (SQLite skips it while the first still waits), and the events function
ignores a notification for a message already past that state.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailsage.local.private_files import FILE_MODE, private_dir
from mailsage.ports import Queue

log = logging.getLogger("mailsage.local")

SEGMENT_SUFFIX = ".jsonl"
SEGMENT_RECORDS = 1000  # records per segment: what a kill after queueing them may queue again
BATCH_RECORDS = 500  # per queue write: a short transaction, whatever the backlog
RETRY_BASE_SECONDS = 0.5  # doubled at each failed write in a row
RETRY_MAX_SECONDS = 30.0


@dataclass(slots=True, eq=False)
class _Segment:
    path: Path
    fd: int | None = None  # open while records are appended to it
    written: int = 0  # records in it
    left: int = 0  # records not yet queued


@dataclass(slots=True, frozen=True)
class _Record:
    due: float  # time.monotonic()
    segment: _Segment
    line: int
    headers: bytes
    mail_from: str
    recipients: list[str] = field(default_factory=list)


class NotificationSpool:
    """The sink's `accepted` hook (it raises OSError when the record cannot be written, and the
    sink then refuses the message) and, in `run`, the mover to the events queue. A record is due
    `delay` seconds after its message was accepted: like SES's events, a notification arrives after
    the sender recorded the message as sent."""

    def __init__(self, directory: Path, queue: Queue, delay: float, every: float = 0.25) -> None:
        self.directory = directory
        self.queue = queue
        self.delay = delay
        self.every = every
        self._pending: deque[_Record] = deque()
        self._changed = threading.Condition()
        self._current: _Segment | None = None
        private_dir(directory)
        self._pending.extend(self._left_over())

    def __call__(self, headers: bytes, mail_from: str, recipients: list[str]) -> None:
        line = json.dumps(
            {"headers": base64.b64encode(headers).decode(), "from": mail_from, "to": recipients}
        )
        with self._changed:
            segment = self._writable()
            self._append(segment, (line + "\n").encode())
            segment.written += 1
            segment.left += 1
            self._pending.append(
                _Record(
                    time.monotonic() + self.delay, segment, segment.written, headers, mail_from, recipients
                )
            )
            if segment.written >= SEGMENT_RECORDS:
                self._close(segment)
                self._current = None
            self._changed.notify()

    def pending(self) -> int:
        with self._changed:
            return len(self._pending)

    def run(self, stopping: threading.Event) -> None:
        """Move due records until `stopping`; then leave the rest on disk (see `flush`)."""
        failures = 0
        while not stopping.is_set():
            due = self._take_due(stopping)
            if not due:
                continue
            try:
                self._send(due)
            except Exception:
                failures += 1
                pause = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (failures - 1))
                log.exception(
                    "%d sink notifications could not be queued; kept on disk, trying again in %.1f s",
                    len(due),
                    pause,
                )
            else:
                failures = 0
                stopping.wait(self.every)
                continue
            with self._changed:
                self._pending.extendleft(reversed(due))
            stopping.wait(pause)

    def flush(self) -> bool:
        """One attempt at queueing everything still waiting, due or not (at shutdown). What fails
        stays on disk for the next start. True if nothing is left."""
        with self._changed:
            records = list(self._pending)
            self._pending.clear()
        for start in range(0, len(records), BATCH_RECORDS):
            try:
                self._send(records[start : start + BATCH_RECORDS])
            except Exception:
                log.exception("%d sink notifications stay spooled for the next start", len(records) - start)
                return False
        return True

    def _writable(self) -> _Segment:
        if self._current is None:
            path = self.directory / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}{SEGMENT_SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, FILE_MODE)
            self._current = _Segment(path, fd)
        return self._current

    def _append(self, segment: _Segment, data: bytes) -> None:
        """One record, whole or not at all: a short write (a full disk) is cut back off, so the
        next record starts on a line of its own and a refused message leaves nothing behind."""
        assert segment.fd is not None
        size = os.fstat(segment.fd).st_size
        try:
            if os.write(segment.fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write to the notification spool")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, size)
            if segment.written == 0:  # nothing in it: no empty segment stays behind
                self._current = None
                self._close(segment)
                with contextlib.suppress(OSError):
                    segment.path.unlink(missing_ok=True)
            raise

    @staticmethod
    def _close(segment: _Segment) -> None:
        if segment.fd is not None:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
            segment.fd = None

    def _take_due(self, stopping: threading.Event) -> list[_Record]:
        with self._changed:
            while not stopping.is_set():
                wait = self._pending[0].due - time.monotonic() if self._pending else 0.5
                if wait <= 0:
                    break
                self._changed.wait(min(wait, 0.5))
            now = time.monotonic()
            due: list[_Record] = []
            while self._pending and self._pending[0].due <= now and len(due) < BATCH_RECORDS:
                due.append(self._pending.popleft())
            return due

    def _send(self, records: list[_Record]) -> None:
        """Queue the records' notifications in one write, then drop the segments fully queued."""
        from mailsage.local.sink import notifications

        bodies: list[dict[str, Any]] = []
        keys: list[str] = []
        for record in records:
            for i, body in enumerate(notifications(record.headers, record.mail_from, record.recipients)):
                bodies.append(body)
                keys.append(f"sink:{record.segment.path.stem}:{record.line}:{i}")
        if bodies:
            self.queue.send(bodies, keys)
        with self._changed:
            for record in records:
                record.segment.left -= 1
                if record.segment.left == 0:
                    self._retire(record.segment)

    def _retire(self, segment: _Segment) -> None:
        """Every record of the segment is queued: remove it (the writer starts a new one)."""
        if segment is self._current:
            self._current = None
        self._close(segment)
        with contextlib.suppress(OSError):
            segment.path.unlink(missing_ok=True)

    def _left_over(self) -> list[_Record]:
        """Records of a sink that was killed: due now. A line that cannot be read was cut short by
        the kill, before its message was answered (the sender sends that message again): dropped."""
        now = time.monotonic()
        records: list[_Record] = []
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            try:
                lines = path.read_bytes().split(b"\n")
            except OSError:
                log.exception("sink notification segment %s cannot be read; left in place", path)
                continue
            segment = _Segment(path)
            for number, line in enumerate(lines, 1):
                record = _parse(line)
                if record is None:
                    if line:
                        log.warning(
                            "a sink notification in %s is incomplete (a kill while writing it); dropped", path
                        )
                    continue
                segment.written = segment.left = segment.left + 1
                records.append(_Record(now, segment, number, *record))
            if segment.left == 0:
                with contextlib.suppress(OSError):
                    path.unlink()
        if records:
            log.warning("%d sink notifications left by a stopped sink are queued now", len(records))
        return records


def _parse(line: bytes) -> tuple[bytes, str, list[str]] | None:
    try:
        data = json.loads(line)
        return base64.b64decode(data["headers"]), str(data["from"]), list(data["to"])
    except (ValueError, KeyError, TypeError):
        return None
