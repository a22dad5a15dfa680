"""Pacing state in this process's memory: for one process with no shared store (tests, tools)."""

from __future__ import annotations

import copy
import threading

from mailsage.ports import Change, PacingState
from mailsage.ports.pacing import T


class MemoryPacingStore:
    def __init__(self) -> None:
        self._states: dict[str, PacingState] = {}
        self._lock = threading.Lock()

    def change_pacing(self, key: str, change: Change[T]) -> T:
        with self._lock:
            new, result = change(copy.deepcopy(self._states.get(key)))
            if new is not None:
                self._states[key] = new
            return result

    def pacing_state(self, key: str) -> PacingState | None:
        with self._lock:
            return copy.deepcopy(self._states.get(key))
