"""The one retry loop of writes that must land: time is moved by the test, never slept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailsage.domain.retrying import retry_write
from mailsage.errors import ServiceUnavailable


class Clock:
    """A monotonic clock that moves only when the retry loop waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def failing(times: int, error: Exception | None = None) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error or ServiceUnavailable("locked")
        return "landed"

    return calls, write


def test_a_write_is_retried_with_pauses_doubling_to_the_cap() -> None:
    # Given a write that fails six times
    clock, (calls, write) = Clock(), failing(6)

    # When it is retried with a cap of 2 s
    result = retry_write(write, max_pause=2.0, wait=clock.wait, monotonic=clock)

    # Then it lands on the seventh try, after pauses of 0.25, 0.5, 1, 2, 2, 2
    assert result == "landed" and len(calls) == 7
    assert clock.waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_it_gives_up_when_the_next_try_would_pass_the_deadline() -> None:
    clock, (calls, write) = Clock(), failing(100)
    gave_up: list[bool] = []
    with pytest.raises(ServiceUnavailable):
        retry_write(
            write,
            until=clock() + 1.0,
            wait=clock.wait,
            monotonic=clock,
            on_give_up=lambda: gave_up.append(True),
        )
    # 0.25 + 0.5 = 0.75 waited; the next pause (1 s) would end past the deadline
    assert clock.waits == [0.25, 0.5] and len(calls) == 3 and gave_up == [True]


def test_a_stop_ends_the_wait_and_re_raises() -> None:
    calls, write = failing(100)
    with pytest.raises(ServiceUnavailable):
        retry_write(write, wait=lambda seconds: True)
    assert len(calls) == 1


def test_other_errors_are_not_retried_unless_asked() -> None:
    clock, (calls, write) = Clock(), failing(1, OSError("disk"))
    with pytest.raises(OSError):
        retry_write(write, wait=clock.wait, monotonic=clock)
    assert len(calls) == 1
    retried: list[float] = []
    result = retry_write(
        failing(1, OSError("disk"))[1],
        retry_on=(Exception,),
        wait=clock.wait,
        monotonic=clock,
        on_retry=retried.append,
    )
    assert result == "landed" and retried == [0.25]
