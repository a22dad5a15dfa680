"""What one render may use, and what it has used: the limits, the per-render `Budget` (a
ContextVar: renders run in threads), and the charging helpers every other part of the sandbox calls."""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

MAX_INT_BITS = 4096  # ~1,233 decimal digits: any real amount, id or date fits many times over
MAX_STEPS = 100_000  # per render: loop iterations (by body size), calls, operators, outputs, big inputs
MAX_CPU_SECONDS = 0.2  # thread CPU time of one render, checked every CPU_CHECK_EVERY steps
MACRO_CALL_STEPS = 8  # a macro call costs about as much as 8 loop iterations (its body is extra)
RECURSIVE_ITEM_STEPS = 4  # an item of a recursive loop's `loop(children)`
MAX_VOLUME_FACTOR = 8  # everything a render makes, x the output limit (a list item counts 8)
MAX_LIPSUM_WORDS = 10_000
CPU_CHECK_EVERY = 256
BYTES_PER_STEP = 256  # a filter or method call on N items or characters costs N / 256 steps


class LimitExceeded(Exception):
    """A template asked for more than a render may use; `limit` names which limit."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Budget:
    """What one render may still use. Renders run in threads: each has its own (a ContextVar)."""

    __slots__ = ("max_volume", "steps", "volume", "next_check", "_cpu_deadline")

    def __init__(self, max_chars: int) -> None:
        self.max_volume = max_chars * MAX_VOLUME_FACTOR
        self.steps = 0
        self.volume = 0
        self.next_check = CPU_CHECK_EVERY
        # The CPU clock is read at the first check, not here: it is a system call, and most renders
        # finish long before their first check.
        self._cpu_deadline = 0.0

    def charge(self, steps: int, volume: int = 0) -> None:
        # The hot paths (loops, `{{ }}`) inline these two lines and call `check` themselves.
        self.steps += steps
        self.volume += volume
        if self.steps >= self.next_check or self.volume > self.max_volume:
            self.check()

    def check(self) -> None:
        if self.volume > self.max_volume:
            raise LimitExceeded(
                "volume",
                f"the template makes more than {self.max_volume} characters in all"
                " (values, loops, macros and blocks included)",
            )
        if self.steps < self.next_check:
            return
        if self.steps > MAX_STEPS:
            raise LimitExceeded("steps", f"the template takes more than {MAX_STEPS} steps")
        self.next_check = self.steps + CPU_CHECK_EVERY
        now = time.thread_time()
        if not self._cpu_deadline:
            self._cpu_deadline = now + MAX_CPU_SECONDS
        elif now > self._cpu_deadline:
            raise LimitExceeded("cpu_time", f"the template takes more than {MAX_CPU_SECONDS} s of CPU")


current_budget: ContextVar[Budget | None] = ContextVar("mailsage_template_budget", default=None)


def start_budget(max_chars: int) -> Any:
    """Give this thread's next render a fresh budget; pass the result to `end_budget`."""
    return current_budget.set(Budget(max_chars))


def end_budget(token: Any) -> None:
    current_budget.reset(token)


def charge(steps: int, volume: int = 0) -> None:
    budget = current_budget.get()
    if budget is not None:  # None: compile-time folding, where only the value checks apply
        budget.charge(steps, volume)


def size_of(value: Any) -> int:
    """Characters or items of a sized value, the bytes of an int; 0 for anything else."""
    if isinstance(value, int):
        return value.bit_length() // 8
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset, range)):
        return len(value)
    return 0


def text_size(value: Any, limit: int) -> int:
    """About how long `str(value)` is, counted only up to just past `limit` (a list of one big string
    repeated a thousand times is a small list and a huge text)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple, dict, set, frozenset)):
        return value.bit_length() // 3 + 2 if isinstance(value, int) else 32
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += text_size(item, limit)
    charge(total // BYTES_PER_STEP)
    return total


def produced(value: Any) -> None:
    """Count a value the render made against its volume."""
    if isinstance(value, (str, bytes)):
        charge(1, len(value))
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        charge(1, 8 * len(value))


def counted_loop(iterable: Any, steps: int, text: int) -> Any:
    """A loop's iterable, charging each iteration with its body's static weight: `steps` for its
    code, `text` for the constant text it writes."""
    budget = current_budget.get()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.steps += steps
        budget.volume += text
        if budget.steps >= budget.next_check or budget.volume > budget.max_volume:
            budget.check()
        yield item


def charge_body(steps: int, text: int) -> str:
    """Called first in a macro's body: the body's static weight, for every call."""
    charge(steps, text)
    return ""
