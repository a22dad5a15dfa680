"""DynamoStore: what a delivery report writes. The first report after a send on the first attempt
is one conditional write of the chunk state, which keeps the send's time in the message's attempts
value (chunk_layout.py); every other case writes the state and then the message's log, which takes
over what the state held. The views are the contract's (tests/contract/test_delivery_history.py);
these tests pin the writes and the cases that take the logged way."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

from mailsage.adapters.aws.dynamodb import DynamoStore
from mailsage.adapters.aws.dynamodb import messages as messages_module
from mailsage.domain.models import Message, MessageStatus, new_message_ids
from tests.contract.aws_store import dynamodb_table
from tests.contract.conftest import JobFactory
from tests.integration.test_dynamodb_store import LEASE, RecordingClient, raw_item

S = MessageStatus
AFTER_SEND = (S.SENT, S.DEFERRED)


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    with dynamodb_table() as name:  # one table for the module: each test has jobs of its own
        yield name


@pytest.fixture
def client(table: str) -> RecordingClient:
    import boto3

    return RecordingClient(boto3.client("dynamodb"))


@pytest.fixture
def store(table: str, client: RecordingClient) -> DynamoStore:
    return DynamoStore(table, client)


def sent_chunk(store: DynamoStore, size: int = 3, deferred_first: int = 0) -> list[Message]:
    """A chunk of `size` sent messages (the first `deferred_first` sent on their second attempt)."""
    job, messages = JobFactory(store).build(chunk_sizes=(size,))
    for message, message_id in zip(messages, new_message_ids(size), strict=True):
        message.id = message_id
    store.create_job(job, messages)
    ids = [m.id for m in messages]
    store.claim_messages(job.id, ids, LEASE)
    for m in messages[:deferred_first]:
        assert store.release_message(m.id, "421 try later")
        assert store.claim_messages(job.id, [m.id], LEASE) == [m.id]
    for m in messages:
        assert store.finish_message(m.id, S.SENT)
    return messages


def writes(client: RecordingClient) -> list[str]:
    return [kw["Key"]["sk"]["S"] for op, kw in client.calls if op == "update_item"]


def log_of(client: RecordingClient, table: str, message: Message) -> dict[str, Any] | None:
    return raw_item(client, table, f"MSG#{message.id}", "LOG")


def test_the_first_report_is_one_state_write_and_no_log(
    store: DynamoStore, client: RecordingClient, table: str
) -> None:
    # Given a chunk sent on first attempts
    messages = sent_chunk(store)
    client.calls.clear()
    # When each is delivered
    for m in messages:
        assert store.update_delivery_status("acc_a", m.id, S.DELIVERED, AFTER_SEND)
    # Then each report was one write of the chunk state, and no message has a log item
    assert writes(client) == ["CHUNK#000000"] * 3
    assert all(log_of(client, table, m) is None for m in messages)
    found = store.get_message("acc_a", messages[0].id)
    assert found is not None and found.attempts == 1 and found.delivered_at == found.updated_at


def test_a_later_report_moves_the_held_one_to_the_log(
    store: DynamoStore, client: RecordingClient, table: str
) -> None:
    # Given a delivered message (its report held in the state)
    [message] = sent_chunk(store, 1)
    assert store.update_delivery_status("acc_a", message.id, S.DELIVERED, AFTER_SEND)
    delivered = store.get_message("acc_a", message.id)
    assert delivered is not None
    # When a bounce follows
    client.calls.clear()
    assert store.update_delivery_status(
        "acc_a", message.id, S.BOUNCED, (*AFTER_SEND, S.DELIVERED), "bounced", "x"
    )
    # Then the fold was tried, the state written, and the log holds both reports and both times
    assert writes(client) == ["CHUNK#000000", "CHUNK#000000", "LOG"]
    log = log_of(client, table, message)
    assert log is not None
    assert [e["M"]["status"]["S"] for e in log["events"]["L"]] == ["delivered", "bounced"]
    assert float(log["sent_at"]["N"]) == delivered.sent_at
    assert float(log["delivered_at"]["N"]) == delivered.delivered_at
    # And the state no longer holds it: one attempt, the events as the log has them
    found = store.get_message("acc_a", message.id)
    assert found is not None and found.attempts == 1
    assert [e["status"] for e in found.events] == ["sent", "delivered", "bounced"]
    assert found.events[:2] == delivered.events


def test_a_message_sent_on_a_retry_logs_its_report(
    store: DynamoStore, client: RecordingClient, table: str
) -> None:
    # Given a message sent on its second attempt (its attempts are not 1)
    retried, first = sent_chunk(store, 2, deferred_first=1)
    client.calls.clear()
    # When it is delivered / Then the report is logged, and the attempts still read 2
    assert store.update_delivery_status("acc_a", retried.id, S.DELIVERED, AFTER_SEND)
    assert writes(client) == ["CHUNK#000000", "CHUNK#000000", "LOG"]
    found = store.get_message("acc_a", retried.id)
    assert found is not None and found.attempts == 2 and found.delivered_at is not None
    assert [e["status"] for e in found.events] == ["deferred", "sent", "delivered"]
    # And its neighbour, sent on its first attempt, still folds
    client.calls.clear()
    assert store.update_delivery_status("acc_a", first.id, S.DELIVERED, AFTER_SEND)
    assert writes(client) == ["CHUNK#000000"]


def test_a_report_timed_before_the_send_by_a_clock_behind_is_logged(
    store: DynamoStore, client: RecordingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sent message, and an events function whose clock is a minute behind the sender's
    [message] = sent_chunk(store, 1)
    before = store.get_message("acc_a", message.id)
    assert before is not None and before.sent_at is not None
    behind = before.sent_at - 60
    monkeypatch.setattr(messages_module, "time", types.SimpleNamespace(time=lambda: behind))
    client.calls.clear()
    # When its delivery is reported
    assert store.update_delivery_status("acc_a", message.id, S.DELIVERED, AFTER_SEND)
    # Then it took the logged way (a held report needs a time after the send), and reads right
    assert writes(client) == ["CHUNK#000000", "CHUNK#000000", "LOG"]
    found = store.get_message("acc_a", message.id)
    assert found is not None and found.status == S.DELIVERED and found.attempts == 1
    assert found.sent_at == before.sent_at and found.delivered_at == behind


def test_a_report_with_a_detail_on_a_message_with_an_error_is_held_with_its_detail(
    store: DynamoStore, client: RecordingClient
) -> None:
    # Given a sent message
    [message] = sent_chunk(store, 1)
    client.calls.clear()
    # When a delay is reported with its diagnostic
    assert store.update_delivery_status("acc_a", message.id, S.DEFERRED, (S.SENT,), None, "452 mailbox full")
    # Then one write holds it, and its event carries the diagnostic
    assert writes(client) == ["CHUNK#000000"]
    found = store.get_message("acc_a", message.id)
    assert found is not None and found.events[-1]["log"] == "452 mailbox full"
