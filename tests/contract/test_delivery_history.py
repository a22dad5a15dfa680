"""Contract of the Store port's delivery reports as a message's history shows them: whatever a store
writes per report (SQLite: one row; DynamoDB: the chunk state alone for the first report after the
send, the state and the message's log for any later one), get_message and list_messages show the
same status, times, attempts and events."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailsage.domain.models import Message, MessageQuery, MessageStatus, new_message_ids
from mailsage.ports import Store
from tests.contract.conftest import STORES, JobFactory
from tests.contract.test_store_contract import LONG_LEASE

S = MessageStatus
AFTER_SEND = (S.SENT, S.DEFERRED)


@pytest.fixture(scope="module", params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store per adapter for the module (each test sends a job of its own)."""
    with STORES[request.param](tmp_path_factory.mktemp(request.param)) as adapter:
        yield adapter


def send_three(store: Store, jobs: JobFactory, chunk_ids: bool = True) -> list[Message]:
    """Three messages sent on their first attempt; with `chunk_ids`, ids as the submission makes
    them (DynamoDB keeps such a chunk's messages in one item), else ids of their own."""
    job, messages = jobs.build(chunk_sizes=(3,))
    if chunk_ids:
        for message, message_id in zip(messages, new_message_ids(3), strict=True):
            message.id = message_id
    store.create_job(job, messages)
    store.claim_messages(job.id, [m.id for m in messages], LONG_LEASE)
    for m in messages:
        assert store.finish_message(m.id, S.SENT)
    return messages


@pytest.fixture
def sent(store: Store, jobs: JobFactory) -> list[Message]:
    return send_three(store, jobs)


def shown(store: Store, message: Message) -> Message:
    """The message as get_message shows it, checked to be what list_messages shows too."""
    found = store.get_message(message.account_id, message.id)
    assert found is not None
    listed, _ = store.list_messages(message.account_id, MessageQuery(message_id=message.id))
    assert listed == [found]
    return found


@pytest.mark.parametrize("chunk_ids", [True, False], ids=["chunk-ids", "own-ids"])
def test_a_delivery_shows_the_send_then_the_delivery(store: Store, jobs: JobFactory, chunk_ids: bool) -> None:
    # Given a sent message
    sent = send_three(store, jobs, chunk_ids)
    before = shown(store, sent[0])
    # When its delivery is reported (no detail, as SES's Delivery)
    assert store.update_delivery_status("acc_a", sent[0].id, S.DELIVERED, AFTER_SEND)
    # Then it shows delivered once, at the report's time, after the send it still knows
    found = shown(store, sent[0])
    assert found.status == S.DELIVERED and found.attempts == 1 and found.error_message is None
    assert found.sent_at == before.sent_at and found.sent_at is not None
    assert found.delivered_at == found.updated_at and found.delivered_at >= found.sent_at
    assert [(e["status"], e["log"]) for e in found.events] == [
        ("sent", before.events[0]["log"]),
        ("delivered", "delivered"),
    ]
    assert found.events[0] == before.events[0] and found.events[1]["time"] == found.updated_at
    # And the other messages of the chunk are untouched
    other = shown(store, sent[1])
    assert other.status == S.SENT and [e["status"] for e in other.events] == ["sent"]


def test_a_bounce_shows_its_detail_and_code(store: Store, sent: list[Message]) -> None:
    # When a hard bounce is reported with SES's diagnostic
    detail = "smtp; 550 5.1.1 user unknown"
    assert store.update_delivery_status("acc_a", sent[1].id, S.BOUNCED, AFTER_SEND, "bounced", detail)
    # Then the message shows it, and its event carries the detail
    found = shown(store, sent[1])
    assert (found.status, found.error_code, found.error_message) == (S.BOUNCED, "bounced", detail)
    assert found.delivered_at is None and found.sent_at is not None
    assert [(e["status"], e["log"]) for e in found.events][1:] == [("bounced", detail)]


def test_a_complaint_after_the_delivery_keeps_both_and_the_times(store: Store, sent: list[Message]) -> None:
    # Given a delivered message
    assert store.update_delivery_status("acc_a", sent[0].id, S.DELIVERED, AFTER_SEND)
    delivered = shown(store, sent[0])
    time.sleep(0.002)  # a later report has a later time on every store
    # When a complaint follows
    assert store.update_delivery_status(
        "acc_a", sent[0].id, S.COMPLAINED, (*AFTER_SEND, S.DELIVERED), "complained", "complaint: abuse"
    )
    # Then the history holds the send, the delivery and the complaint, and both earlier times
    found = shown(store, sent[0])
    assert found.status == S.COMPLAINED and found.attempts == 1
    assert (found.sent_at, found.delivered_at) == (delivered.sent_at, delivered.delivered_at)
    assert found.events[:2] == delivered.events
    assert [(e["status"], e["log"]) for e in found.events[2:]] == [("complained", "complaint: abuse")]
    assert found.events[2]["time"] > delivered.delivered_at  # type: ignore[operator]


def test_a_soft_bounce_then_a_delivery_shows_both(store: Store, sent: list[Message]) -> None:
    # Given a message whose delivery was delayed
    assert store.update_delivery_status("acc_a", sent[2].id, S.DEFERRED, (S.SENT,), None, "mailbox full")
    deferred = shown(store, sent[2])
    assert deferred.status == S.DEFERRED and deferred.delivered_at is None
    time.sleep(0.002)
    # When it is delivered after all
    assert store.update_delivery_status("acc_a", sent[2].id, S.DELIVERED, AFTER_SEND)
    # Then both reports show, the delay's detail kept as the last error message
    found = shown(store, sent[2])
    assert [(e["status"], e["log"]) for e in found.events] == [
        ("sent", deferred.events[0]["log"]),
        ("deferred", "mailbox full"),
        ("delivered", "delivered"),
    ]
    assert found.events[:2] == deferred.events and found.sent_at == deferred.sent_at
    assert found.delivered_at == found.events[2]["time"] and found.error_message == "mailbox full"


def test_a_duplicate_older_or_foreign_report_moves_nothing(store: Store, sent: list[Message]) -> None:
    # Given a delivered message
    assert not store.update_delivery_status("acc_b", sent[0].id, S.DELIVERED, AFTER_SEND)
    assert store.update_delivery_status("acc_a", sent[0].id, S.DELIVERED, AFTER_SEND)
    delivered = shown(store, sent[0])
    # When the same report comes again, or an older one, or one naming another account
    assert not store.update_delivery_status("acc_a", sent[0].id, S.DELIVERED, AFTER_SEND)
    assert not store.update_delivery_status("acc_a", sent[0].id, S.DEFERRED, (S.SENT,), None, "late")
    assert not store.update_delivery_status("acc_b", sent[0].id, S.BOUNCED, AFTER_SEND, "bounced", "x")
    # Then nothing moved and no event was added
    assert shown(store, sent[0]) == delivered


def test_an_open_before_the_delivery_report_stays_between_the_send_and_it(
    store: Store, sent: list[Message]
) -> None:
    # Given a message opened before its delivery report arrived (SES reports within seconds)
    opened_at = time.time()
    assert store.record_engagement("acc_a", sent[0].id, "opened", opened_at) == 1
    time.sleep(0.002)
    # When the delivery is reported
    assert store.update_delivery_status("acc_a", sent[0].id, S.DELIVERED, AFTER_SEND)
    # Then the history is the send, the open, the delivery; the open is still counted
    found = shown(store, sent[0])
    assert [e["status"] for e in found.events] == ["sent", "opened", "delivered"]
    assert store.record_engagement("acc_a", sent[0].id, "opened", time.time()) == 2
    assert [e["status"] for e in shown(store, sent[0]).events] == ["sent", "opened", "delivered", "opened"]
