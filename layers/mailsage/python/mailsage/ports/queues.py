"""The messaging ports: an at-least-once queue and a scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True, frozen=True)
class Received:
    receipt: str
    body: dict[str, Any]
    receive_count: int
    message_id: str


class Queue(Protocol):
    """At-least-once queue with delayed retry and a dead-letter area (SQS semantics)."""

    supports_dedup: bool
    """Whether `send` honours dedup keys. SQS standard queues cannot; duplicates are harmless
    (the sender claims messages), dedup only saves work."""

    def send(
        self,
        bodies: Sequence[dict[str, Any]],
        dedup_keys: Sequence[str] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        """Enqueue bodies, visible after `delay_seconds` (at most 900, SQS's limit). With
        `supports_dedup`, a dedup key already waiting untouched in the queue is not added twice."""

    def receive(self, max_messages: int = 10, wait_seconds: float = 0.0) -> list[Received]: ...
    def ack(self, receipt: str) -> None: ...
    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        """Make a received message visible again after the delay (it keeps its receive count)."""

    def dead_letters(self) -> list[dict[str, Any]]: ...
    def depth(self) -> int: ...


class Scheduler(Protocol):
    """Run a payload (a queue body) at a time; one schedule per job, cancellable."""

    def schedule(self, name: str, at: float, payload: dict[str, Any]) -> None:
        """Create or replace the schedule `name`."""

    def delete(self, name: str) -> bool:
        """Cancel a schedule, or remove one that has fired. False if there was none."""

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Embedded runtime: the schedules due at `now`; each stays until deleted (at least once)."""
