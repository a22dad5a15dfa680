"""Virtual time shared by worker threads: it stands still while any worker runs and jumps to the
earliest wake-up once every worker is blocked (in `sleep`, or idle until the queue has work).

So a simulated hour of pacing takes only the CPU time of the work done in it, and the order of
events is the one real time would give (up to what the threads do between two waits).
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from dataclasses import dataclass, field


@dataclass(order=True)
class _Waiter:
    wake: float
    seq: int
    idle: bool = field(compare=False, default=False)
    woken: bool = field(compare=False, default=False)
    event: threading.Event = field(compare=False, default_factory=threading.Event)


class VirtualTime:
    """The clock (call it), `sleep` for the workers, and `idle` for a worker with nothing to do."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self.quiescent = False  # every worker idle with nothing due: nothing can happen any more
        self.hold: float | None = start  # time does not move past this (the caller looks around)
        self.stopping = False  # no more waiting: the workers are winding down
        self.held = False  # every worker is blocked at the hold
        self.generation = 0  # counts kicks: a worker that saw none since it looked may idle

    def __call__(self) -> float:
        return self._now

    def join(self) -> None:
        """The calling thread takes part: time waits for it."""
        with self._cond:
            self._running += 1

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._advance()

    def sleep(self, seconds: float) -> None:
        self._block(self._now + max(0.0, seconds), idle=False)

    def idle(self, until: float | None, seen: int) -> None:
        """Nothing to do before `until` (None: before `kick`): wait for whichever comes first.
        `seen` is the generation read before looking for work: a kick since then returns at once."""
        self._block(math.inf if until is None else max(until, self._now), idle=True, seen=seen)

    def kick(self) -> None:
        """Work arrived: every idle worker looks again (now, at the current time)."""
        with self._cond:
            self.generation += 1
            for waiter in self._waiting:
                if waiter.idle and not waiter.woken:
                    self._wake(waiter)
            self._cond.notify_all()

    def run_until(self, until: float | None, real_seconds: float) -> bool:
        """For the (non-worker) caller: let time run up to `until` (None: for as long as anything
        can happen) and return once every worker is blocked there, or nothing can happen any more;
        False when `real_seconds` of real time ran out first. The workers stay blocked until the
        next call: what they wrote can be looked at meanwhile."""
        with self._cond:
            self.hold, self.held = until, False
            self._advance()
            return self._cond.wait_for(lambda: self.quiescent or self.held, real_seconds)

    def release_all(self) -> None:
        """Wake every waiting worker and wait no more (to let them see a stop)."""
        with self._cond:
            self.stopping = True
            for waiter in self._waiting:
                if not waiter.woken:
                    self._wake(waiter)
            self._cond.notify_all()

    def _block(self, wake: float, idle: bool, seen: int | None = None) -> None:
        with self._cond:
            if self.stopping or (seen is not None and seen != self.generation):
                return
            waiter = _Waiter(wake, next(self._seq), idle)
            heapq.heappush(self._waiting, waiter)
            self._running -= 1
            self._advance()
        waiter.event.wait()  # its own event: waking one sleeper does not stir the others

    def _wake(self, waiter: _Waiter) -> None:
        waiter.woken = True
        waiter.event.set()
        self._running += 1  # counted as running from now on, so time cannot move past it
        self.quiescent = False

    def _advance(self) -> None:
        """With every worker blocked, move to the earliest wake-up and wake all who are due."""
        while self._waiting and self._waiting[0].woken:
            heapq.heappop(self._waiting)
        if self._running > 0 or not self._waiting:
            return
        earliest = self._waiting[0].wake
        if self.hold is not None and earliest > self.hold:
            self._now = max(self._now, self.hold)
            self.held = True
            self._cond.notify_all()
            return
        if math.isinf(earliest):
            self.quiescent = True
            self._cond.notify_all()
            return
        self._now = max(self._now, earliest)
        while self._waiting and self._waiting[0].wake <= self._now:
            waiter = heapq.heappop(self._waiting)
            if not waiter.woken:
                self._wake(waiter)
        self._cond.notify_all()
