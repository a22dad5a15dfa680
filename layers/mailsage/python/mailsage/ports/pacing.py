"""The pacing port: one small piece of state per provider, shared by every sender (a DynamoDB item on
AWS, a SQLite row locally), changed only by compare-and-set so that concurrent senders never both
take the same sending slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

PacingState = dict[str, Any]  # JSON-serialisable; its meaning is `mailsage.domain.pacing`'s
# A pure change of a state: given the current one (None: none yet), the new one to write (None:
# write nothing) and what to return. It may be called more than once: when another sender wrote
# first, it is called again with what that sender wrote.
Change = Callable[[PacingState | None], tuple[PacingState | None, T]]


class PacingStore(Protocol):
    def change_pacing(self, key: str, change: Change[T]) -> T:
        """Apply `change` to the state under `key` atomically (compare-and-set, retried on a lost
        race) and return its result."""

    def pacing_state(self, key: str) -> PacingState | None:
        """The state under `key` as last written (a strongly consistent read)."""
