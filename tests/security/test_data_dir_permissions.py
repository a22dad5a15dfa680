"""The local data directory is its owner's only: the directory 0700, the SQLite files, the dev
account, the signing key and every message the sink kept 0600; a data directory an older version
made readable by others is tightened at start, and the log says so.

The process umask is set to the common 022 for these tests: under 077 everything would be private
whatever the code did."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mailsage.adapters.sqlite.db import Database
from mailsage.local.runtime import LocalRuntime, RuntimeConfig
from tests.conftest import free_port

PRIVATE_FILES = ("mailsage.db", "mailsage.db-wal", "mailsage.db-shm", "dev-account.json", "signing.key")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


class Runtime:
    def __init__(self, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=1)
        for name, value in {
            "MAILSAGE_DATA_DIR": str(data_dir),
            "MAILSAGE_SMTP_URL": f"smtp://127.0.0.1:{self.config.smtp_port}",
            "MAILSAGE_PUBLIC_URL": f"http://127.0.0.1:{self.config.port}",
        }.items():
            monkeypatch.setenv(name, value)  # restored after the test (the runtime sets what is unset)
        self.runtime = LocalRuntime(self.config)
        self.account_id, self.key = self.runtime.start()

    def send_one(self) -> Path:
        """Send one message through the API and return the .eml the sink kept."""
        reply = requests.post(
            f"http://127.0.0.1:{self.config.port}/api/v1/emails/send",
            json={"recipient": {"email": "user@example.com"}, "subject": "s", "body": "b"},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )
        assert reply.status_code == 202, reply.text
        outbox = self.config.data_dir / "outbox"
        deadline = time.monotonic() + 30  # liveness bound, not a timing assertion
        while time.monotonic() < deadline:
            if found := sorted(outbox.glob("*.eml")):
                return found[0]
            time.sleep(0.05)
        raise AssertionError("the sink kept no message")


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    rt = Runtime(tmp_path / "data", monkeypatch)
    yield rt
    rt.runtime.stop()


def test_a_new_data_directory_and_its_files_are_private(runtime: Runtime) -> None:
    # Given a runtime started on a data directory that did not exist (under umask 022)
    data_dir = runtime.config.data_dir
    # When one message is sent to the built-in sink
    eml = runtime.send_one()
    # Then the directory, the outbox and every file the runtime wrote are its owner's only
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "outbox") == 0o700
    assert mode(eml) == 0o600
    for name in PRIVATE_FILES:
        assert (data_dir / name).exists(), name
        assert mode(data_dir / name) == 0o600, name
    leaked = [p for p in data_dir.rglob("*") if mode(p) & 0o077]
    assert leaked == []


def test_an_older_data_directory_is_tightened_at_start_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a data directory as an older version left it: 0755, its files and messages 0644
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    with sqlite3.connect(data_dir / "mailsage.db") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    (data_dir / "dev-account.json").write_text(
        json.dumps({"account_id": "6f1c2b7e-3f4a-4b8e-9c1d-2a3b4c5d6e7f"})
    )
    (data_dir / "signing.key").write_text("00" * 32)
    (data_dir / "outbox").mkdir(mode=0o755)
    os.chmod(data_dir / "outbox", 0o755)
    old_message = data_dir / "outbox" / "1-old.eml"
    old_message.write_bytes(b"Subject: old\r\n\r\nkept by an older version\r\n")
    for path in [*data_dir.iterdir(), old_message]:
        if path.is_file():
            os.chmod(path, 0o644)
    # When the runtime starts on it
    with caplog.at_level(logging.WARNING, logger="mailsage.local.private_files"):
        rt = Runtime(data_dir, monkeypatch)
    try:
        # Then the directory, its files and the messages already kept are private, and the log says so
        assert mode(data_dir) == 0o700 and mode(data_dir / "outbox") == 0o700
        for name in PRIVATE_FILES:
            if (data_dir / name).exists():
                assert mode(data_dir / name) == 0o600, name
        assert mode(old_message) == 0o600
        assert any("made it 0700 and its files 0600" in r.getMessage() for r in caplog.records)
        # and the account remembered there is still the one used
        assert rt.account_id == "6f1c2b7e-3f4a-4b8e-9c1d-2a3b4c5d6e7f"
    finally:
        rt.runtime.stop()


def test_a_private_data_directory_is_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a data directory this version made (already private)
    data_dir = tmp_path / "data"
    Runtime(data_dir, monkeypatch).runtime.stop()
    # When the runtime starts on it again
    with caplog.at_level(logging.WARNING, logger="mailsage.local.private_files"):
        rt = Runtime(data_dir, monkeypatch)
    rt.runtime.stop()
    # Then nothing was tightened, so nothing is logged
    assert not [r for r in caplog.records if r.name == "mailsage.local.private_files"]


def test_the_sqlite_store_creates_its_database_private(tmp_path: Path) -> None:
    # Given no data directory yet (the CLI's create-key, a handler invoked locally)
    path = tmp_path / "fresh" / "mailsage.db"
    # When the database is opened and written to
    db = Database(path)
    db.connection().execute("INSERT INTO accounts (id) VALUES ('a')")
    # Then the directory it made and the database with its WAL files are private
    assert mode(path.parent) == 0o700
    for name in ("mailsage.db", "mailsage.db-wal", "mailsage.db-shm"):
        assert mode(path.parent / name) == 0o600, name
    db.close()


def test_the_sqlite_store_leaves_a_shared_parent_directory_alone(tmp_path: Path) -> None:
    # Given a database path in a directory that exists and is not MailSage's (like /tmp)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    # When the database is created there
    db = Database(shared / "mine.db")
    db.close()
    # Then only the database file is made private, not the directory
    assert mode(shared) == 0o1777
    assert mode(shared / "mine.db") == 0o600
