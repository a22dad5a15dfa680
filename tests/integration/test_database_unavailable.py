"""A database locked by another process past its busy timeout: the API answers 503 with
Retry-After (nothing accepted, so nothing lost), the ingest record is retried rather than rejected,
and all of it works again once the lock is released. A real SQLite file, a real foreign lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import mailsage.adapters.sqlite.db as sqlite_db
from mailsage.local.functions import load_handler
from mailsage.settings import IngestSettings
from mailsage.wiring import ingest_service
from tests.conftest import Account, ApiClient
from tests.integration.test_ingest import record, run

BATCH = {"subject": "Hi", "body": "x", "recipients": [{"email": "a@example.com"}]}


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set before any connection opens: the test waits a fraction of a second, not 30 s.
    monkeypatch.setattr(sqlite_db, "BUSY_TIMEOUT_SECONDS", 0.2)


@contextmanager
def foreign_write_lock(data_dir: Path) -> Iterator[None]:
    """Another process's transaction holding the database's write lock."""
    other = sqlite3.connect(data_dir / "mailsage.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_the_api_answers_503_with_retry_after_while_the_database_is_locked(
    api: ApiClient, data_dir: Path
) -> None:
    # Given another process holding the write lock
    with foreign_write_lock(data_dir):
        # When a batch is submitted
        reply = api.post("/api/v1/emails/batch", BATCH)
        # Then it is refused as unavailable, with when to come back, in the v1 envelope
        assert reply.status == 503, reply.body
        assert reply.body["error"]["code"] == "service_unavailable"
        assert int(reply.headers["retry-after"]) > 0
    # And once the lock is released the same request is accepted
    again = api.post("/api/v1/emails/batch", BATCH)
    assert again.status == 202, again.body


def test_v2_answers_503_in_its_own_envelope(api: ApiClient, account: Account, data_dir: Path) -> None:
    body = {
        "from": {"email": "sender@example.com"},
        "recipients": [{"email": "a@example.com"}],
        "subject": "Hi",
        "text_content": "x",
    }
    with foreign_write_lock(data_dir):
        reply = api.post(f"/v2/accounts/{account.id}/messages", body)
        assert reply.status == 503, reply.body
        assert set(reply.body) == {"message"}
        assert int(reply.headers["retry-after"]) > 0


def test_an_ingest_record_is_retried_not_rejected_while_the_database_is_locked(
    account: Account, data_dir: Path
) -> None:
    # Given an ingest record arriving while another process holds the write lock
    ingest: Any = load_handler("ingest")
    event = record(account)
    with foreign_write_lock(data_dir):
        result = run(ingest, event)
    # Then it is reported failed (SQS delivers it again), and not put in the dead-letter queue
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert ingest_service(IngestSettings()).dead_letters.dead_letters() == []
    assert ingest_service(IngestSettings()).dead_letters.depth() == 0
    # And its next delivery is accepted
    assert run(ingest, event) == {"batchItemFailures": []}
