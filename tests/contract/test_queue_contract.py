"""Contract of the Queue port (ports.Queue): at-least-once delivery with SQS semantics, i.e. visibility
timeout, delayed retry, a dead-letter area after `max_receives`, and dedup of waiting messages."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mailsage.ports import Queue, Received
from tests.contract import aws_messaging
from tests.contract.conftest import MAX_RECEIVES, VISIBILITY_TIMEOUT, QueueConfig

# Upper bound for anything that should come back after a short delay: long enough for a slow CI
# machine, and receive(wait_seconds=...) returns as soon as the message is visible anyway.
PATIENCE = 3.0


@pytest.fixture
def queue_config(request: pytest.FixtureRequest) -> QueueConfig:
    """conftest's timing, except for an adapter that cannot honour it (SQS: whole seconds, so 1 s).
    The timing assertions below scale with the visibility timeout and stay as strict."""
    callspec = getattr(request.node, "callspec", None)
    adapter = callspec.params.get("queue") if callspec else None
    visibility = aws_messaging.VISIBILITY_TIMEOUTS.get(adapter or "", VISIBILITY_TIMEOUT)
    return QueueConfig(visibility_timeout=visibility, max_receives=MAX_RECEIVES)


def body(n: int = 0) -> dict[str, Any]:
    return {"account_id": "acc_a", "job_id": f"job_{n}", "chunk": n, "extra": {"tags": ["x", 1], "ok": True}}


def test_sent_body_is_received_once_with_receive_count_1(queue: Queue) -> None:
    # Given a body sent to the queue
    queue.send([body(1)])
    # When the queue is read
    received = queue.receive(max_messages=10)
    # Then the same body comes back, on its first receive
    assert len(received) == 1
    assert received[0].body == body(1)
    assert received[0].receive_count == 1
    assert received[0].receipt and received[0].message_id


def test_empty_queue_receives_nothing(queue: Queue) -> None:
    # Given an empty queue / When it is read / Then nothing comes back
    assert queue.receive(max_messages=10) == []
    assert queue.depth() == 0


def test_received_message_is_invisible_within_the_visibility_timeout(queue: Queue) -> None:
    # Given a message that was just received and not acknowledged
    queue.send([body(1)])
    queue.receive(max_messages=10)
    # When the queue is read again right away
    again = queue.receive(max_messages=10)
    # Then nothing is delivered, though the message is still in the queue
    assert again == []
    assert queue.depth() == 1


def test_unacknowledged_message_returns_after_the_visibility_timeout(
    queue: Queue, queue_config: QueueConfig
) -> None:
    # Given a message received and not acknowledged (its worker died)
    queue.send([body(1)])
    [first] = queue.receive(max_messages=10)
    received_at = time.monotonic()
    # When the queue is read, waiting for the visibility timeout to run out
    again = queue.receive(max_messages=10, wait_seconds=PATIENCE)
    # Then the same message comes back, no earlier than the timeout, on its second receive
    assert len(again) == 1
    assert time.monotonic() - received_at >= queue_config.visibility_timeout * 0.9
    assert again[0].message_id == first.message_id
    assert again[0].body == body(1)
    assert again[0].receive_count == 2


def test_acknowledged_message_is_gone_for_good(queue: Queue, queue_config: QueueConfig) -> None:
    # Given a received message
    queue.send([body(1)])
    [received] = queue.receive(max_messages=10)
    # When it is acknowledged
    queue.ack(received.receipt)
    # Then the queue is empty and the message does not come back after the visibility timeout
    assert queue.depth() == 0
    assert queue.receive(max_messages=10, wait_seconds=queue_config.visibility_timeout * 2) == []
    assert queue.dead_letters() == []


def test_retry_later_hides_the_message_for_the_delay_then_it_returns(
    queue: Queue, queue_config: QueueConfig
) -> None:
    # Given a received message put back with a delay well past the visibility timeout
    delay = queue_config.visibility_timeout * 3
    queue.send([body(1)])
    [received] = queue.receive(max_messages=10)
    queue.retry_later(received.receipt, delay)
    retried_at = time.monotonic()
    # When the queue is read once the visibility timeout alone would have expired
    early = queue.receive(max_messages=10, wait_seconds=queue_config.visibility_timeout * 1.5)
    # Then it is still hidden
    assert early == []
    # And when waiting longer, it returns after the delay, keeping its receive count
    later = queue.receive(max_messages=10, wait_seconds=PATIENCE)
    assert len(later) == 1
    assert time.monotonic() - retried_at >= delay * 0.9
    assert later[0].body == body(1)
    assert later[0].receive_count == 2


def test_retry_later_with_no_delay_makes_the_message_visible_at_once(queue: Queue) -> None:
    # Given a received message
    queue.send([body(1)])
    [received] = queue.receive(max_messages=10)
    # When it is put back with no delay
    queue.retry_later(received.receipt, 0)
    # Then it can be received again immediately
    again = queue.receive(max_messages=10, wait_seconds=0.1)
    assert [(r.body, r.receive_count) for r in again] == [(body(1), 2)]


def test_a_message_sent_with_a_delay_is_hidden_until_it_passes(queue: Queue) -> None:
    # Given a message sent with a one-second delay, and one without
    queue.send([body(1)], delay_seconds=1.0)
    queue.send([body(2)])
    sent_at = time.monotonic()
    # When the queue is read at once
    first = queue.receive(max_messages=10)
    # Then only the undelayed one is there; the delayed one comes after its delay, received once
    assert [r.body for r in first] == [body(2)]
    queue.ack(first[0].receipt)
    later = queue.receive(max_messages=10, wait_seconds=PATIENCE)
    assert [(r.body, r.receive_count) for r in later] == [(body(1), 1)]
    assert time.monotonic() - sent_at >= 0.9


def test_receive_returns_at_most_max_messages(queue: Queue) -> None:
    # Given five messages
    queue.send([body(i) for i in range(5)])
    # When two are asked for
    first = queue.receive(max_messages=2)
    # Then two come back, and the other three remain for the next receive
    assert len(first) == 2
    rest = queue.receive(max_messages=10)
    assert len(rest) == 3
    assert sorted(r.body["chunk"] for r in first + rest) == [0, 1, 2, 3, 4]


def test_message_received_max_receives_times_moves_to_dead_letters(
    queue: Queue, queue_config: QueueConfig
) -> None:
    # Given a message received max_receives times, never acknowledged
    queue.send([body(7)])
    counts = []
    for _ in range(queue_config.max_receives):
        [received] = queue.receive(max_messages=10, wait_seconds=PATIENCE)
        counts.append(received.receive_count)
    assert counts == list(range(1, queue_config.max_receives + 1))
    # When the queue is read after its last visibility timeout
    after = queue.receive(max_messages=10, wait_seconds=queue_config.visibility_timeout * 2)
    # Then it is not delivered again but sits in the dead-letter area with its body intact
    assert after == []
    assert [d["body"] for d in queue.dead_letters()] == [body(7)]
    assert queue.depth() == 0


def test_same_dedup_key_waiting_in_the_queue_is_not_added_twice(queue: Queue) -> None:
    if not queue.supports_dedup:
        pytest.skip("adapter does not deduplicate (supports_dedup is False, e.g. an SQS standard queue)")
    # Given a body sent with a dedup key and still waiting
    queue.send([body(1)], dedup_keys=["job_1:1"])
    # When it is sent again with the same key
    queue.send([body(1)], dedup_keys=["job_1:1"])
    # Then the queue holds it once
    assert queue.depth() == 1
    assert len(queue.receive(max_messages=10)) == 1
    assert queue.receive(max_messages=10) == []


def test_same_dedup_key_is_added_again_once_the_first_was_received(queue: Queue) -> None:
    # Given a message with a dedup key that was received (in flight; it may yet be dropped)
    queue.send([body(1)], dedup_keys=["job_1:1"])
    [first] = queue.receive(max_messages=10)
    # When the same key is sent again
    queue.send([body(1)], dedup_keys=["job_1:1"])
    # Then a second, distinct message is delivered: nothing can be lost to the dedup
    second = queue.receive(max_messages=10)
    assert len(second) == 1
    assert second[0].message_id != first.message_id
    assert second[0].receive_count == 1
    assert second[0].body == body(1)


def test_different_dedup_keys_are_both_added(queue: Queue) -> None:
    # Given a message waiting with one key
    queue.send([body(1)], dedup_keys=["job_1:1"])
    # When another is sent with a different key
    queue.send([body(2)], dedup_keys=["job_1:2"])
    # Then both are delivered
    received = queue.receive(max_messages=10)
    assert sorted(r.body["chunk"] for r in received) == [1, 2]


def test_bodies_without_dedup_keys_are_never_deduplicated(queue: Queue) -> None:
    # Given a body sent without a dedup key
    queue.send([body(1)])
    # When the identical body is sent again
    queue.send([body(1)])
    # Then both copies are delivered
    assert len(queue.receive(max_messages=10)) == 2


def test_receive_with_wait_returns_early_when_a_message_arrives(queue: Queue) -> None:
    # Given a receiver waiting on an empty queue, and a sender in another thread a moment later
    sender = threading.Timer(0.2, queue.send, args=([body(9)],))
    started = time.monotonic()
    sender.start()
    try:
        # When the receiver waits far longer than that
        received = queue.receive(max_messages=10, wait_seconds=10.0)
    finally:
        sender.join()
    # Then it returns with the message soon after it was sent
    elapsed = time.monotonic() - started
    assert [r.body for r in received] == [body(9)]
    assert elapsed < 2.0


def test_racing_receivers_never_get_the_same_message(queue: Queue) -> None:
    # Given eight receivers released at the same instant, over several rounds of forty messages
    # (a race is probabilistic: rounds make a missing lock show up reliably)
    for _ in range(5):
        queue.send([body(i) for i in range(40)])
        barrier = threading.Barrier(8)

        def receive(barrier: threading.Barrier = barrier) -> list[Received]:
            barrier.wait()
            return queue.receive(max_messages=5)

        # When each receives up to five
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [f.result() for f in [pool.submit(receive) for _ in range(8)]]
        # Then no message went to two receivers, and with what a late receiver picks up (a receive
        # may return fewer than are waiting, as SQS's may) every message was received exactly once
        received = [r for result in results for r in result]
        assert len({r.message_id for r in received}) == len(received)
        # An empty receive does not mean an empty queue (SQS's short poll samples some of its
        # servers; a laned queue asks one lane at a time): keep asking, for a bounded time.
        deadline = time.monotonic() + 20.0
        while len(received) < 40 and time.monotonic() < deadline:
            received += queue.receive(max_messages=10, wait_seconds=0.5)
        assert len({r.message_id for r in received}) == len(received) == 40
        for r in received:
            queue.ack(r.receipt)
