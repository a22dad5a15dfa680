"""The sink's delivery notifications survive a kill -9 of the sink process and failed queue writes:
each reaches the events queue exactly once. The real sink process, the real SQLite events queue."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mailsage.local import notification_spool
from mailsage.local.notification_spool import NotificationSpool
from mailsage.local.runtime import _events_queue
from mailsage.local.sink import SmtpSink
from mailsage.local.sink_process import SinkProcess
from mailsage.ports import Queue
from mailsage.settings import CommonSettings
from tests.conftest import free_port, wait_until
from tests.integration.test_sink_notifier import KEY, message


@pytest.fixture(autouse=True)
def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data directory and the signing key, as the server gives them to its sink process."""
    monkeypatch.setenv("MAILSAGE_SIGNING_SECRET", KEY)
    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(tmp_path / "data"))


def events_queue() -> Queue:
    queue = _events_queue(CommonSettings())
    assert queue is not None
    return queue


def send_messages(port: int, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for i in range(count):
            client.sendmail("noreply@example.com", [f"user{i}@example.com"], message(i))


def queued_message_ids(queue: Queue) -> Counter[str]:
    """Every notification waiting in the queue, by the message it is about."""
    received = queue.receive(max_messages=100)
    return Counter(r.body["message_id"] for r in received)


def spooled_records(spool: Path) -> int:
    """Records in the spool's segments (one JSON line each)."""
    return sum(len(path.read_bytes().splitlines()) for path in spool.glob("*.jsonl"))


def test_notifications_of_a_killed_sink_are_queued_once_after_its_restart(tmp_path: Path) -> None:
    # Given a sink process that accepted 5 messages whose notifications are not due yet
    data = tmp_path / "data"
    spool = data / "sink-notifications"
    port = free_port()
    sink = SinkProcess(data / "outbox", spool, port, "127.0.0.1", notification_delay=60.0)
    sink.start()
    try:
        send_messages(port, 5)
        # When it is killed with SIGKILL before queueing them
        assert sink.pid is not None
        os.kill(sink.pid, signal.SIGKILL)
        assert wait_until(lambda: not sink.alive())
    finally:
        sink.stop(5)  # reaps it
    queue = events_queue()
    assert queue.depth() == 0
    assert spooled_records(spool) == 5  # what the 250s stood on
    # And a new sink process starts on the same data directory
    restarted = SinkProcess(data / "outbox", spool, port, "127.0.0.1", notification_delay=60.0)
    restarted.start()
    try:
        # Then every notification reaches the events queue at once, not after the delay
        assert wait_until(lambda: queue.depth() == 5)
        assert wait_until(lambda: list(spool.glob("*.jsonl")) == [])
    finally:
        restarted.stop(10)
    # And exactly once per message
    assert queued_message_ids(queue) == Counter({f"msg_{i}": 1 for i in range(5)})


class FailingQueue:
    """The real events queue, whose first `failures` writes fail as a locked database does."""

    def __init__(self, queue: Queue, failures: int) -> None:
        self.queue = queue
        self.failures_left = failures
        self.writes: list[int] = []

    def send(self, bodies: Sequence[dict[str, Any]], dedup_keys: Sequence[str] | None = None) -> None:
        self.writes.append(len(bodies))
        if self.failures_left:
            self.failures_left -= 1
            raise sqlite3.OperationalError("database is locked")
        self.queue.send(bodies, dedup_keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


def test_failed_queue_writes_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an events queue whose next 3 writes fail, and a sink that accepted 5 messages
    monkeypatch.setattr(notification_spool, "RETRY_BASE_SECONDS", 0.05)
    queue = events_queue()
    failing = FailingQueue(queue, failures=3)
    spool = NotificationSpool(tmp_path / "spool", failing, delay=0.0)  # type: ignore[arg-type]
    sink = SmtpSink(tmp_path / "outbox", free_port(), accepted=spool)
    sink.start()
    send_messages(sink.port, 5)
    stopping = threading.Event()
    mover = threading.Thread(target=spool.run, args=(stopping,), daemon=True)
    try:
        # When the mover tries, fails 3 times and then succeeds
        mover.start()
        assert wait_until(lambda: queue.depth() == 5)
        assert wait_until(lambda: list((tmp_path / "spool").iterdir()) == [])
    finally:
        sink.stop()
        stopping.set()
        mover.join(5)
    # Then every notification is queued exactly once, all in one write after the failed ones
    assert queued_message_ids(queue) == Counter({f"msg_{i}": 1 for i in range(5)})
    assert failing.writes == [5, 5, 5, 5]
    # And each failure was logged
    assert sum("kept on disk" in r.getMessage() for r in caplog.records) == 3


def test_a_record_cut_short_by_a_kill_is_dropped_and_a_whole_one_kept(tmp_path: Path) -> None:
    # Given a spool a killed sink left: one whole record, and one it was writing when killed (its
    # message had not been answered, so the sender sends it again)
    spool_dir = tmp_path / "spool"
    first = NotificationSpool(spool_dir, events_queue(), delay=60.0)
    first(message(1).split(b"\r\n\r\n")[0], "noreply@example.com", ["user1@example.com"])
    (spool_dir / "2-cut.jsonl").write_bytes(b'{"headers": "RnJvbTog')
    # When the sink starts again
    restarted = NotificationSpool(spool_dir, events_queue(), delay=60.0)
    # Then the whole record is due, and the partial one is gone
    assert restarted.pending() == 1
    assert not (spool_dir / "2-cut.jsonl").exists()
    assert restarted.flush()
    assert queued_message_ids(events_queue()) == Counter({"msg_1": 1})


def test_a_line_cut_by_a_kill_drops_only_that_record(tmp_path: Path) -> None:
    # Given a segment a killed sink left: two whole records, then one it was writing when killed
    spool_dir = tmp_path / "spool"
    first = NotificationSpool(spool_dir, events_queue(), delay=60.0)
    for i in (1, 2):
        first(message(i).split(b"\r\n\r\n")[0], "noreply@example.com", [f"user{i}@example.com"])
    [segment] = list(spool_dir.glob("*.jsonl"))
    with segment.open("ab") as f:
        f.write(b'{"headers": "RnJvbTog')
    # When the sink starts again
    restarted = NotificationSpool(spool_dir, events_queue(), delay=60.0)
    # Then the two whole records are due and queued once each, and the segment is gone
    assert restarted.pending() == 2
    assert restarted.flush()
    assert queued_message_ids(events_queue()) == Counter({"msg_1": 1, "msg_2": 1})
    assert list(spool_dir.iterdir()) == []


def test_segments_rotate_and_each_goes_once_its_records_are_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given segments of 3 records, and a sink that accepted 7 messages
    monkeypatch.setattr(notification_spool, "SEGMENT_RECORDS", 3)
    spool_dir = tmp_path / "spool"
    spool = NotificationSpool(spool_dir, events_queue(), delay=60.0)
    for i in range(7):
        spool(message(i).split(b"\r\n\r\n")[0], "noreply@example.com", [f"user{i}@example.com"])
    # Then they sit in 3 segments (3, 3 and 1 records)
    assert sorted(spooled_records_of(p) for p in spool_dir.glob("*.jsonl")) == [1, 3, 3]
    # When they are queued
    assert spool.flush()
    # Then each notification is queued once and no segment is left
    assert queued_message_ids(events_queue()) == Counter({f"msg_{i}": 1 for i in range(7)})
    assert list(spool_dir.iterdir()) == []
    # And the next accepted message starts a new segment
    spool(message(9).split(b"\r\n\r\n")[0], "noreply@example.com", ["user9@example.com"])
    assert spooled_records(spool_dir) == 1


def spooled_records_of(segment: Path) -> int:
    return len(segment.read_bytes().splitlines())
