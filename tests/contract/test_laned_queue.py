"""The lanes of the send queue (adapters/lanes.py): a transactional body goes to the priority queue
and is received before any bulk body, receipts reach the queue their message came from (also one
tagged by the AWS sender with `receipt_for`), and depth and dead letters cover both lanes. Each test
runs on two SQLite queues and on two SQS queues under moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsage.adapters.lanes import LanedQueue, receipt_for
from tests.contract.conftest import MAX_RECEIVES, QueueConfig
from tests.contract.laned_queues import QUEUES

# SQS visibility timeouts are whole seconds.
CONFIG = QueueConfig(visibility_timeout=1.0, max_receives=MAX_RECEIVES)


@pytest.fixture(params=sorted(QUEUES))
def laned(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LanedQueue]:
    with QUEUES[request.param](tmp_path, CONFIG) as queue:
        assert isinstance(queue, LanedQueue)
        yield queue


def bulk(n: int) -> dict[str, Any]:
    return {"account_id": "acc_a", "job_id": "job_campaign", "chunk": n}


def transactional(n: int = 0) -> dict[str, Any]:
    return {"account_id": "acc_b", "job_id": f"job_send_{n}", "chunk": 0, "lane": "transactional"}


def test_a_transactional_body_sent_after_100_bulk_bodies_is_received_first(laned: LanedQueue) -> None:
    # Given a campaign's 100 chunks waiting, then one single send
    laned.send([bulk(n) for n in range(100)])
    laned.send([transactional()])
    # When a worker takes one record
    [first] = laned.receive(max_messages=1)
    # Then it is the single send
    assert first.body == transactional()
    # And a larger receive is filled up from the campaign's chunks
    more = laned.receive(max_messages=10)
    assert len(more) == 10 and all(r.body["job_id"] == "job_campaign" for r in more)


def test_a_receive_takes_the_transactional_lane_first_then_fills_up_from_bulk(laned: LanedQueue) -> None:
    # Given bulk bodies sent before two transactional ones, in one call
    laned.send([bulk(0), bulk(1), transactional(1), transactional(2)])
    # When five are asked for
    received = laned.receive(max_messages=5)
    # Then both transactional bodies come first, then the bulk ones
    assert [r.body.get("lane") for r in received[:2]] == ["transactional", "transactional"]
    assert sorted(r.body["chunk"] for r in received[2:]) == [0, 1]


def test_an_ack_removes_the_message_from_its_own_lane(laned: LanedQueue) -> None:
    # Given one message in each lane, both received
    laned.send([bulk(0), transactional()])
    received = laned.receive(max_messages=10)
    assert len(received) == 2
    # When both are acknowledged
    for r in received:
        laned.ack(r.receipt)
    # Then neither comes back after the visibility timeout
    assert laned.receive(max_messages=10, wait_seconds=CONFIG.visibility_timeout * 2) == []
    assert laned.depth() == 0


def test_retry_later_puts_a_transactional_message_back_in_its_lane_at_once(laned: LanedQueue) -> None:
    # Given a transactional message received (and bulk work waiting)
    laned.send([transactional()])
    [received] = laned.receive(max_messages=1)
    laned.send([bulk(n) for n in range(5)])
    # When it is put back with no delay
    laned.retry_later(received.receipt, 0)
    # Then it is visible again at once (not after the visibility timeout), ahead of the bulk work
    [again] = laned.receive(max_messages=1, wait_seconds=0.1)
    assert again.body == transactional()
    assert again.receive_count == 2


def test_the_aws_senders_tagged_receipt_reaches_the_priority_queue(laned: LanedQueue) -> None:
    # Given a transactional record handed out by the priority queue itself, as the event source
    # mapping hands it to the sender (an untagged receipt), with its lane in the body
    laned.send([transactional()])
    assert laned.priority is not None
    [raw] = laned.priority.receive(max_messages=1)
    # When the sender tags the receipt by the body's lane and asks for a retry with no delay
    laned.retry_later(receipt_for(raw.body.get("lane"), raw.receipt), 0)
    # Then the message is visible again at once in the priority lane
    [again] = laned.receive(max_messages=1, wait_seconds=0.1)
    assert again.message_id == raw.message_id
    # And a receipt the LanedQueue tagged already is left as it is
    assert receipt_for("bulk", again.receipt) == again.receipt
    laned.ack(again.receipt)
    assert laned.depth() == 0


def test_a_waiting_receive_returns_a_transactional_body_that_arrives_meanwhile(laned: LanedQueue) -> None:
    # Given a worker waiting on empty lanes, and a single send a moment later
    sender = threading.Timer(0.2, laned.send, args=([transactional()],))
    sender.start()
    try:
        # When the worker waits far longer than that
        received = laned.receive(max_messages=10, wait_seconds=10.0)
    finally:
        sender.join()
    # Then it gets the single send
    assert [r.body for r in received] == [transactional()]


def test_depth_and_dead_letters_cover_both_lanes(laned: LanedQueue) -> None:
    # Given one message in each lane, received again and again and never acknowledged
    laned.send([bulk(7), transactional(7)])
    assert laned.depth() == 2
    receives: dict[str, int] = {}
    while batch := laned.receive(max_messages=10, wait_seconds=CONFIG.visibility_timeout * 2):
        for r in batch:
            receives[r.message_id] = receives.get(r.message_id, 0) + 1
    # Then each was received max_receives times, both are dead letters, and neither lane holds them
    assert sorted(receives.values()) == [CONFIG.max_receives] * 2
    assert sorted(d["body"]["job_id"] for d in laned.dead_letters()) == ["job_campaign", "job_send_7"]
    assert laned.depth() == 0


def test_dedup_keys_follow_their_bodies_into_their_lanes(laned: LanedQueue) -> None:
    if not laned.supports_dedup:
        pytest.skip("SQS standard queues do not deduplicate")
    # Given a bulk and a transactional body waiting with their keys
    laned.send([bulk(1), transactional(1)], dedup_keys=["job_campaign:1", "job_send_1:0"])
    # When both are sent again with the same keys (e.g. a recovery re-enqueues them)
    laned.send([transactional(1), bulk(1)], dedup_keys=["job_send_1:0", "job_campaign:1"])
    # Then each lane holds its body once
    assert laned.depth() == 2
    assert sorted(r.body["job_id"] for r in laned.receive(max_messages=10)) == ["job_campaign", "job_send_1"]


def test_without_a_priority_queue_both_lanes_share_the_bulk_queue(laned: LanedQueue) -> None:
    # Given a deployment without the priority queue (only the bulk queue)
    shared = LanedQueue(None, laned.bulk)
    # When a transactional body is sent and received
    shared.send([transactional()])
    [received] = shared.receive(max_messages=1)
    # Then it came through the bulk queue, and a receipt the sender tags as transactional still
    # reaches it there
    assert laned.priority is not None and laned.priority.depth() == 0
    shared.retry_later(receipt_for("transactional", received.receipt.removeprefix("b:")), 0)
    [again] = shared.receive(max_messages=1, wait_seconds=0.1)
    assert again.message_id == received.message_id
    assert shared.supports_dedup == laned.bulk.supports_dedup
