"""A bounded, thread-safe set of ids: what a process remembers for a while (the oldest go first)."""

from __future__ import annotations

import threading
from collections import OrderedDict


class RecentIds:
    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, key: str) -> None:
        with self._lock:
            self._ids[key] = None
            self._ids.move_to_end(key)
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._ids.pop(key, None)
