"""Retrying an idempotent write while what it writes to is unavailable.

A write that settles work (a message recorded as sent, a message released, a queue record's retry
delay or acknowledgement) must land: one that is given up leaves its message or record stranded for
a lease or a visibility timeout, minutes after a full disk or a foreign lock went away. Each caller
says what to retry on, until when, and how to wait (a sleep, or a stop event that ends the wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from mailsage.errors import ServiceUnavailable

T = TypeVar("T")

FIRST_PAUSE_SECONDS = 0.25
MAX_PAUSE_SECONDS = 5.0


def sleep(seconds: float) -> bool:
    """The default wait: sleeps, never interrupted."""
    time.sleep(seconds)
    return False


def retry_write(
    write: Callable[[], T],
    *,
    until: float | None = None,
    retry_on: tuple[type[Exception], ...] = (ServiceUnavailable,),
    max_pause: float = MAX_PAUSE_SECONDS,
    wait: Callable[[float], bool] = sleep,
    monotonic: Callable[[], float] = time.monotonic,
    on_retry: Callable[[float], None] | None = None,
    on_give_up: Callable[[], None] | None = None,
) -> T:
    """`write()`, tried again while it raises one of `retry_on`: after 0.25 s, then pauses doubling
    up to `max_pause`. It gives up (re-raising the last error) when the next try would start at or
    after `until` (a `monotonic()` time; None: never), or when `wait` returns True (a stop).
    `on_retry(pause)` and `on_give_up()` run inside the `except` block, so a log call there carries
    the error."""
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return write()
        except retry_on:
            if until is not None and monotonic() + pause >= until:
                if on_give_up is not None:
                    on_give_up()
                raise
            if on_retry is not None:
                on_retry(pause)
            if wait(pause):
                raise
            pause = min(max_pause, pause * 2)
