"""The built-in sink on a full disk: a transient 452, nothing half-written left behind, and the
sender retries instead of failing the message. A real tmpfs of 512 KiB, filled to the last page."""

from __future__ import annotations

import errno
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.queue import SqliteQueue
from mailsage.local.notification_spool import NotificationSpool
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import ApiClient, Worker, free_port

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40


class Disk:
    """A tmpfs that can be filled and emptied again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as f:
            while True:
                try:
                    f.write(b"\0" * 4096)
                except OSError as exc:
                    assert exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    return

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    root = tmp_path / "tiny"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root and mount): {mounted.stderr.strip()}")
    try:
        yield Disk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def test_a_full_outbox_answers_452_and_leaves_no_temporary_file(disk: Disk) -> None:
    # Given a sink whose outbox is on a full disk
    outbox = disk.root / "outbox"
    sink = SmtpSink(outbox, free_port())
    sink.start()
    try:
        disk.fill()
        # When a message arrives
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(sink.port)
        # Then it is refused as transient (out of storage), not permanently
        assert refused.value.smtp_code == 452
        assert b"4.3.1" in refused.value.smtp_error
        # And neither a partial message nor an empty temporary file is left
        assert leftovers(outbox) == []
        # And once there is room again, the next attempt is accepted
        disk.free()
        send(sink.port)
        assert [p.suffix for p in outbox.iterdir()] == [".eml"]
    finally:
        sink.stop()


def test_a_full_notification_spool_refuses_the_message_and_keeps_nothing(tmp_path: Path, disk: Disk) -> None:
    # Given a sink with room for messages but whose notification spool is on a full disk
    outbox = tmp_path / "outbox"
    spool = NotificationSpool(
        disk.root / "spool", SqliteQueue(Database(tmp_path / "db.sqlite"), "events"), 1.0
    )
    sink = SmtpSink(outbox, free_port(), accepted=spool)
    sink.start()
    try:
        disk.fill()
        # When a message arrives
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(sink.port)
        # Then it is refused with 452: it was not accepted, so nothing of it is kept
        assert refused.value.smtp_code == 452
        assert leftovers(outbox) == []
        assert leftovers(disk.root / "spool") == []
        assert spool.pending() == 0
    finally:
        sink.stop()


@pytest.fixture
def smtp_sink(disk: Disk, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    """The sink the `worker` fixture sends to, with its outbox on the small disk."""
    sink = SmtpSink(disk.root / "outbox", free_port())
    sink.start()
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{sink.port}")
    yield sink
    sink.stop()


def test_the_sender_retries_a_message_the_full_sink_refused(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, disk: Disk, stores: Backends
) -> None:
    # Given an accepted message, and a sink out of storage
    reply = api.post(
        "/api/v1/emails/batch", {"subject": "Hi", "body": "x", "recipients": [{"email": "a@example.com"}]}
    )
    assert reply.status == 202, reply.body
    job_id = reply.body["job_id"]
    disk.fill()
    # When the sender tries it
    worker.invoke(stores.queue.receive(max_messages=10))
    # Then the message is not failed: it waits for another attempt, with the sink's reason
    [message] = stores.store.chunk_messages(job_id, 0)
    assert message.status.value == "queued", message
    assert message.attempts == 1
    assert "452" in str(message.error_message)
    # And once there is room, it is sent
    disk.free()
    worker.drain()
    job = api.get(f"/api/v1/emails/jobs/{job_id}").body
    assert job["counts"]["sent"] == 1, job
    assert len(smtp_sink.messages()) == 1
