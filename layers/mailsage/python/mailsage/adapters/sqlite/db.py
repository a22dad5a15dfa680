"""One SQLite file shared by the embedded store, queue and scheduler.

Each thread gets its own connection (sqlite3 connections must not cross threads). Connections run
in autocommit mode; writes that must be atomic use `transaction()`, which takes the write lock up
front (BEGIN IMMEDIATE) so two writers never deadlock upgrading a read lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    default_provider TEXT,
    sender_domains TEXT
);
CREATE TABLE IF NOT EXISTS templates (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT,
    text TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    content TEXT NOT NULL,
    campaign_id TEXT,
    total INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    dead_letters TEXT NOT NULL DEFAULT '[]',
    first_attempt_at REAL,
    expires_at REAL,
    retention_metadata_days INTEGER,
    retention_data_days INTEGER,
    paused_reason TEXT,
    throttled INTEGER NOT NULL DEFAULT 0,
    send_rate REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_by_campaign ON jobs (account_id, campaign_id);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    email TEXT NOT NULL,
    name TEXT,
    variables TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    claimed_at REAL,
    updated_at REAL NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL DEFAULT 0,
    sent_at REAL,
    delivered_at REAL,
    events TEXT NOT NULL DEFAULT '[]',
    data_until REAL,
    metadata_until REAL,
    open_count INTEGER NOT NULL DEFAULT 0,
    click_count INTEGER NOT NULL DEFAULT 0,
    unsubscribe_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_account ON messages (account_id, created_at, id);
CREATE INDEX IF NOT EXISTS messages_by_chunk ON messages (job_id, chunk);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages (job_id, status);
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    dedup_key TEXT,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue_messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS queue_by_dedup ON queue_messages (queue, dedup_key);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    dead_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS suppressions (
    account_id TEXT NOT NULL,
    email TEXT NOT NULL,
    domain TEXT NOT NULL DEFAULT '',
    id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (account_id, email, domain)
);
CREATE TABLE IF NOT EXISTS idempotency (
    account_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status INTEGER,
    body TEXT,
    headers TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (account_id, key)
);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    at REAL NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_by_time ON schedules (at);
CREATE TABLE IF NOT EXISTS webhooks (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    events TEXT NOT NULL,
    scope TEXT NOT NULL,
    domains TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    success_count INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0,
    errors_since_last_success INTEGER NOT NULL DEFAULT 0,
    last_request_at REAL,
    disabled_reason TEXT,
    signing TEXT NOT NULL DEFAULT 'literal',
    PRIMARY KEY (account_id, id)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    account_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    attempts TEXT NOT NULL,
    next_attempt_at REAL,
    expires_at REAL,
    PRIMARY KEY (account_id, webhook_id, id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_time
    ON webhook_deliveries (account_id, webhook_id, created_at, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_expiry ON webhook_deliveries (expires_at);
CREATE TABLE IF NOT EXISTS pacing (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""


_ADDED_COLUMNS = [
    ("jobs", "first_attempt_at", "REAL"),
    ("jobs", "expires_at", "REAL"),
    ("jobs", "retention_metadata_days", "INTEGER"),
    ("jobs", "retention_data_days", "INTEGER"),
    ("jobs", "paused_reason", "TEXT"),
    ("jobs", "throttled", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "send_rate", "REAL"),
    ("messages", "subject", "TEXT NOT NULL DEFAULT ''"),
    ("messages", "created_at", "REAL NOT NULL DEFAULT 0"),
    ("messages", "sent_at", "REAL"),
    ("messages", "delivered_at", "REAL"),
    ("messages", "events", "TEXT NOT NULL DEFAULT '[]'"),
    ("messages", "data_until", "REAL"),
    ("messages", "metadata_until", "REAL"),
    ("messages", "open_count", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "click_count", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "unsubscribe_count", "INTEGER NOT NULL DEFAULT 0"),
    # webhooks made before the signing scheme was stored were signed with the literal secret
    ("webhooks", "signing", "TEXT NOT NULL DEFAULT 'literal'"),
]


# How long a statement waits for another writer's lock before the store answers "unavailable".
BUSY_TIMEOUT_SECONDS = 30.0
# Primary result codes that mean "not now" rather than "wrong": busy, locked, I/O error, disk full.
_UNAVAILABLE = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL}


class _Connection(sqlite3.Connection):
    """A connection whose "not now" errors are the domain's ServiceUnavailable (a 503 with
    Retry-After at the API; a short retry in the workers), so no caller needs to know SQLite."""

    def execute(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            return super().execute(*args)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc

    def executemany(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            return super().executemany(*args)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc


def _translated(exc: sqlite3.OperationalError) -> Exception:
    if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _UNAVAILABLE:
        from mailsage.errors import ServiceUnavailable

        return ServiceUnavailable(f"the database is unavailable ({exc}); try again shortly")
    return exc


class Database:
    def __init__(self, path: Path | str, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._local = threading.local()
        if self.path != ":memory:":
            from mailsage.local.private_files import private_dir, private_file

            # Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
            private_dir(Path(self.path).parent)
            private_file(Path(self.path))
        self._migrate()
        self.connection().executescript(SCHEMA)

    def _migrate(self) -> None:
        """Add columns newer versions need to tables an older version created (data dirs survive
        upgrades). New tables and indexes come from SCHEMA itself."""
        conn = self.connection()
        for table, column, decl in _ADDED_COLUMNS:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
            ).fetchone()
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if exists and column not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_SECONDS,
                check_same_thread=False,
                factory=_Connection,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives an application crash; only an OS crash can lose the last
            # commits. MAILSAGE_SQLITE_SYNCHRONOUS=FULL trades speed for that too.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
