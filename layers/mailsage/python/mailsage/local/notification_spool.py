"""The built-in sink's delivery notifications, kept on disk from before the sink answers 250 until
the events queue holds them: a killed sink or a failed queue write delays them, never loses them.

Each accepted message leaves a small record (its header block, MAIL FROM, recipients) in the spool
directory, written before the reply like the message itself. One thread moves due records onto the
events queue, many per queue write (the sink is another process contending for the database's
write lock with the server's workers), and removes them only once that write committed. A write
that fails keeps them and is tried again after a growing pause. Records a killed sink left are due
at the next start.

A kill between the queue write and the removal queues a record twice: the copy carries the same
dedup key (SQLite skips it while the first still waits), and the events function ignores a
notification for a message already past that state.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailsage.local.private_files import FILE_MODE, private_dir
from mailsage.ports import Queue

log = logging.getLogger("mailsage.local")

RECORD_SUFFIX = ".json"
BATCH_RECORDS = 500  # per queue write: a short transaction, whatever the backlog
RETRY_BASE_SECONDS = 0.5  # doubled at each failed write in a row
RETRY_MAX_SECONDS = 30.0


@dataclass(slots=True, frozen=True)
class _Record:
    due: float  # time.monotonic()
    path: Path
    headers: bytes
    mail_from: str
    recipients: list[str]


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
        private_dir(directory)
        self._pending.extend(self._left_over())

    def __call__(self, headers: bytes, mail_from: str, recipients: list[str]) -> None:
        path = self.directory / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}{RECORD_SUFFIX}"
        record = {"headers": base64.b64encode(headers).decode(), "from": mail_from, "to": recipients}
        # Written in place, without a rename: only this thread reads it back, from memory; a record
        # cut short by a kill was not answered 250 yet (see _left_over).
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            try:
                os.write(fd, json.dumps(record).encode())
            finally:
                os.close(fd)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise
        with self._changed:
            self._pending.append(_Record(time.monotonic() + self.delay, path, headers, mail_from, recipients))
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
        """Queue the records' notifications in one write, then remove the records."""
        from mailsage.local.sink import notifications

        bodies: list[dict[str, Any]] = []
        keys: list[str] = []
        for record in records:
            for i, body in enumerate(notifications(record.headers, record.mail_from, record.recipients)):
                bodies.append(body)
                keys.append(f"sink:{record.path.stem}:{i}")
        if bodies:
            self.queue.send(bodies, keys)
        for record in records:
            with contextlib.suppress(OSError):
                record.path.unlink(missing_ok=True)

    def _left_over(self) -> list[_Record]:
        """Records of a sink that was killed: due now. One that cannot be read was cut short by the
        kill, before its message was answered (the sender sends that message again): removed."""
        now = time.monotonic()
        records = []
        for path in sorted(self.directory.glob(f"*{RECORD_SUFFIX}")):
            try:
                data = json.loads(path.read_bytes())
                records.append(
                    _Record(now, path, base64.b64decode(data["headers"]), str(data["from"]), list(data["to"]))
                )
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "sink notification record %s is incomplete (a kill while writing it); removed", path
                )
                with contextlib.suppress(OSError):
                    path.unlink()
            except OSError:
                log.exception("sink notification record %s cannot be read; left in place", path)
        if records:
            log.warning("%d sink notifications left by a stopped sink are queued now", len(records))
        return records
