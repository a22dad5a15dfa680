"""Bounded in-process memories of what never changes once written (message items, started jobs)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from mailsage.adapters.aws.dynamodb.keys import Item, key_of


class Remembered:
    """A bounded map of items that never change once written (least recently used go first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], Item] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Item | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, items: Iterable[Item]) -> None:
        with self._lock:
            for item in items:
                self._items[key_of(item)] = item
                self._items.move_to_end(key_of(item))
            while len(self._items) > self.size:
                self._items.popitem(last=False)
