"""The local runtime's sink notifications: built off the SMTP thread, queued after their delay in
one send per round, and never lost at shutdown (they stay spooled for the next start)."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.domain.feedback_id import FeedbackIds
from mailsage.domain.tracking import Signer
from mailsage.local.notification_spool import NotificationSpool
from mailsage.local.sink import SmtpSink
from tests.conftest import free_port


class CountingQueue(SqliteQueue):
    def __init__(self, db: Database) -> None:
        super().__init__(db, "events")
        self.sends: list[int] = []

    def send(self, bodies: Sequence[dict[str, Any]], dedup_keys: Sequence[str] | None = None) -> None:
        self.sends.append(len(bodies))
        super().send(bodies, dedup_keys)


KEY = "sink-notifier-test-key"


@pytest.fixture(autouse=True)
def _signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the sink verifies Feedback-IDs with (the sender's, in the same environment)."""
    monkeypatch.setenv("MAILSAGE_SIGNING_SECRET", KEY)
    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(tmp_path / "data"))


def message(i: int) -> bytes:
    feedback_id = FeedbackIds(Signer(KEY.encode())).header(
        "acct-1", "job_1", f"msg_{i}", f"user{i}@example.com"
    )
    return (
        f"From: MailSage <noreply@example.com>\r\nTo: user{i}@example.com\r\n"
        f"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_{i}?=\r\nMessage-ID: <m{i}@example.com>\r\n"
        f"Feedback-ID: {feedback_id}\r\n\r\nHello {i}\r\n"
    ).encode()


def test_notifications_wait_their_delay_and_go_out_together(tmp_path: Path) -> None:
    queue = CountingQueue(Database(tmp_path / "db.sqlite"))
    notifier = NotificationSpool(tmp_path / "spool", queue, delay=0.5, every=0.2)
    stopping = threading.Event()
    runner = threading.Thread(target=notifier.run, args=(stopping,), daemon=True)
    runner.start()
    sink = SmtpSink(tmp_path / "outbox", free_port(), accepted=notifier)
    sink.start()
    try:
        sent_at = time.monotonic()
        with smtplib.SMTP("127.0.0.1", sink.port) as client:
            for i in range(3):
                client.sendmail("noreply@example.com", [f"user{i}@example.com"], message(i))
        assert queue.depth() == 0  # still inside their delay
        deadline = time.monotonic() + 5
        while queue.depth() < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        waited = time.monotonic() - sent_at
    finally:
        sink.stop()
        stopping.set()
        runner.join(5)

    received = queue.receive(max_messages=10)
    assert waited >= 0.5
    assert sum(queue.sends) == 3
    by_message = {r.body["message_id"]: r.body for r in received}
    assert sorted(by_message) == ["msg_0", "msg_1", "msg_2"]
    first = by_message["msg_0"]
    assert first["outcome"] == "delivered"
    assert first["recipient"] == "user0@example.com"
    assert first["subject"] == "Grüße 0"
    assert first["account_id"] == "acct-1"


def test_a_stream_of_messages_is_queued_in_a_few_writes_not_one_each(tmp_path: Path) -> None:
    queue = CountingQueue(Database(tmp_path / "db.sqlite"))
    notifier = NotificationSpool(tmp_path / "spool", queue, delay=0.2, every=0.2)
    stopping = threading.Event()
    runner = threading.Thread(target=notifier.run, args=(stopping,), daemon=True)
    runner.start()
    for i in range(50):  # 50 messages over about half a second
        notifier(message(i).split(b"\r\n\r\n")[0], "noreply@example.com", [f"user{i}@example.com"])
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while queue.depth() < 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    stopping.set()
    runner.join(5)
    assert sum(queue.sends) == 50
    assert len(queue.sends) <= 6  # a round every 0.2 s, whatever the rate of messages


def test_a_flush_at_stop_queues_what_is_still_waiting(tmp_path: Path) -> None:
    queue = CountingQueue(Database(tmp_path / "db.sqlite"))
    notifier = NotificationSpool(tmp_path / "spool", queue, delay=60.0)
    stopping = threading.Event()
    runner = threading.Thread(target=notifier.run, args=(stopping,), daemon=True)
    runner.start()
    notifier(message(7).split(b"\r\n\r\n")[0], "noreply@example.com", ["user7@example.com"])
    notifier(b"Subject: not from MailSage", "someone@example.com", ["user8@example.com"])
    time.sleep(0.1)
    assert queue.depth() == 0
    stopping.set()
    runner.join(5)
    assert not runner.is_alive()
    assert notifier.flush()  # what the sink process does once its SMTP server stopped
    # The one with a Feedback-ID is queued; the foreign one yields nothing; the spool is empty.
    [kept] = queue.receive(max_messages=10)
    assert kept.body["message_id"] == "msg_7"
    assert list((tmp_path / "spool").iterdir()) == []
