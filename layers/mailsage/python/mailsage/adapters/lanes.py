"""The send queue as two lanes: transactional chunks in a priority queue of their own, bulk chunks
(batches, campaigns) in the other. A single send then never waits behind a campaign's chunks:
receivers take from the priority queue first, and it has consumers of its own (its own event source
mapping on AWS, its own worker loops locally).

A body's `"lane"` picks its queue ("transactional" -> priority; missing or "bulk" -> bulk). Receipts
handed out carry their queue ("p:" / "b:") so that `ack` and `retry_later` reach the right one; the
AWS sender, whose records come from an event source mapping rather than from `receive`, tags them
with `receipt_for`. Without a priority queue (a deployment that predates it) everything goes to the
bulk queue and every receipt is the bulk queue's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mailsage.domain.pacing import Lane
from mailsage.ports import Queue, Received

PRIORITY_TAG = "p:"
BULK_TAG = "b:"
# While both lanes are empty a waiting receive long-polls the priority queue in slices of this
# length and looks at the bulk queue between them.
WAIT_SLICE_SECONDS = 0.2


def receipt_for(lane: str | None, raw_receipt: str) -> str:
    """The LanedQueue receipt of a record the `lane`'s own queue handed out. A receipt that is
    already tagged (a record received through the LanedQueue) is returned unchanged. Neither an SQS
    receipt handle (base64) nor a SQLite one ("id.hex") has a colon, so a tag cannot be mistaken."""
    if _split(raw_receipt)[0] is not None:
        return raw_receipt
    return (PRIORITY_TAG if lane == Lane.TRANSACTIONAL else BULK_TAG) + raw_receipt


def _split(receipt: str) -> tuple[str | None, str]:
    """(tag, the queue's own receipt); an untagged receipt is taken as the bulk queue's."""
    for tag in (PRIORITY_TAG, BULK_TAG):
        if receipt.startswith(tag):
            return tag, receipt[len(tag) :]
    return None, receipt


class LanedQueue:
    """A `Queue` over a priority queue (transactional lane) and a bulk queue."""

    def __init__(self, priority: Queue | None, bulk: Queue) -> None:
        self.priority = priority
        self.bulk = bulk
        self.supports_dedup = bulk.supports_dedup and (priority is None or priority.supports_dedup)

    def send(
        self,
        bodies: Sequence[dict[str, Any]],
        dedup_keys: Sequence[str] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        if dedup_keys is not None and len(dedup_keys) != len(bodies):
            raise ValueError("dedup_keys must match bodies one to one")
        lanes: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
            PRIORITY_TAG: ([], []),
            BULK_TAG: ([], []),
        }
        for index, body in enumerate(bodies):
            tag = (
                PRIORITY_TAG
                if body.get("lane") == Lane.TRANSACTIONAL and self.priority is not None
                else BULK_TAG
            )
            lanes[tag][0].append(body)
            if dedup_keys is not None:
                lanes[tag][1].append(dedup_keys[index])
        # Transactional first: if the bulk send then fails, the mail that must not wait is queued.
        for tag in (PRIORITY_TAG, BULK_TAG):
            lane_bodies, keys = lanes[tag]
            if lane_bodies:
                self._queue(tag).send(
                    lane_bodies, keys if dedup_keys is not None else None, delay_seconds=delay_seconds
                )

    def receive(self, max_messages: int = 10, wait_seconds: float = 0.0) -> list[Received]:
        """Up to `max_messages`, from the priority queue first, filled up from the bulk queue."""
        if max_messages <= 0:
            return []
        if self.priority is None:
            return self._received(BULK_TAG, self.bulk.receive(max_messages, wait_seconds))
        deadline = time.monotonic() + wait_seconds
        wait = 0.0
        while True:
            out = self._received(PRIORITY_TAG, self.priority.receive(max_messages, wait))
            if len(out) < max_messages:
                out += self._received(BULK_TAG, self.bulk.receive(max_messages - len(out), 0.0))
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            wait = min(remaining, WAIT_SLICE_SECONDS)

    def ack(self, receipt: str) -> None:
        tag, raw = _split(receipt)
        self._queue(tag).ack(raw)

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        tag, raw = _split(receipt)
        self._queue(tag).retry_later(raw, delay_seconds)

    def dead_letters(self) -> list[dict[str, Any]]:
        priority = self.priority.dead_letters() if self.priority is not None else []
        return priority + self.bulk.dead_letters()

    def depth(self) -> int:
        return (self.priority.depth() if self.priority is not None else 0) + self.bulk.depth()

    def _queue(self, tag: str | None) -> Queue:
        return self.priority if tag == PRIORITY_TAG and self.priority is not None else self.bulk

    @staticmethod
    def _received(tag: str, received: list[Received]) -> list[Received]:
        return [
            Received(
                receipt=tag + r.receipt, body=r.body, receive_count=r.receive_count, message_id=r.message_id
            )
            for r in received
        ]
