"""The progress of `mailsage batch` on stderr: one redrawn line on a terminal; on anything else (a
log, a CI job) a plain line per visible change, at most one a second, so the output stays short."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

BAR_WIDTH = 24
PLAIN_INTERVAL = 1.0  # seconds between two lines when not on a terminal


@dataclass(frozen=True)
class Snapshot:
    """Every followed job added up."""

    processed: int
    total: int
    sent: int
    failed: int
    states: tuple[str, ...]  # one per job

    def line(self, tty: bool) -> str:
        percent = 100.0 * self.processed / self.total if self.total else 100.0
        jobs = ", ".join(f"{n} {state}" for state, n in _counted(self.states))
        text = f"{self.processed}/{self.total} ({percent:.0f}%)  sent {self.sent}  failed {self.failed}  jobs: {jobs}"
        if not tty:
            return text
        done = round(BAR_WIDTH * percent / 100)
        return f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] {text}"


def _counted(states: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(state, states.count(state)) for state in sorted(set(states))]


class ProgressLine:
    def __init__(self, stream: TextIO, tty: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = tty
        self.clock = clock
        self._shown = ""
        self._shown_at = -PLAIN_INTERVAL
        self._pending = ""

    def show(self, snapshot: Snapshot) -> None:
        text = snapshot.line(self.tty)
        if self.tty:
            if text != self._shown:
                # Pad over the longer line drawn before; \r brings the cursor back to redraw it.
                self.stream.write("\r" + text.ljust(len(self._shown)))
                self.stream.flush()
                self._shown = text
            return
        self._pending = text
        if text != self._shown and self.clock() - self._shown_at >= PLAIN_INTERVAL:
            self._emit()

    def finish(self) -> None:
        """The last state is always shown (a plain stream may be holding it back)."""
        if self.tty:
            if self._shown:
                self.stream.write("\n")
                self.stream.flush()
        elif self._pending and self._pending != self._shown:
            self._emit()

    def _emit(self) -> None:
        self.stream.write(self._pending + "\n")
        self.stream.flush()
        self._shown, self._shown_at = self._pending, self.clock()
