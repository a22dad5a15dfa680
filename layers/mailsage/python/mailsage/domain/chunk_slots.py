"""The sending slots of one chunk's delivery: taken from the pacer a grant at a time, waited for
when near, and reserved one message ahead so that the write recording a send can claim the next."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from mailsage.domain.clock import Clock
from mailsage.domain.delivery_state import ChunkDelivery
from mailsage.domain.pacing import Pacer, Parked, Wait
from mailsage.ports import Meter

log = logging.getLogger(__name__)

# No new message is started with less invocation time left than this: one SMTP timeout (30 s) and
# the post-send write. Locally the context reports 0 once the server is stopping.
STOP_MARGIN_MS = 35_000


class Step(Enum):
    """What the loop over a chunk's messages does after one step for a message."""

    GO = "go"  # carry on with this message (claimed; or handed to the relay: record the send)
    NEXT = "next"  # this message is done with (or not ours): the next one
    STOP = "stop"  # the rest of the chunk is left for later


class ChunkSlots:
    def __init__(
        self, pacer: Pacer | None, meter: Meter, clock: Clock, sleep: Callable[[float], None]
    ) -> None:
        self.pacer = pacer  # None: nothing is paced
        self.meter = meter
        self.clock = clock
        self.sleep = sleep

    def slot_ahead(self, chunk: ChunkDelivery, following: str | None, left: int) -> str | None:
        """`following` if a sending slot for it is in hand, reserving one if need be (without waiting
        for it yet), so that the write recording this send can claim it."""
        if following is None or chunk.probing:  # a probe's slot comes after it got through
            return None
        if chunk.slots > 0:
            return following
        try:
            step = self._reserve(chunk, left)
        except Exception:
            # This runs between the relay's acceptance and the write recording it: a pacing store
            # that fails here must not keep that write from landing. The next message asks again
            # before its claim, where a failure only sends the chunk back.
            log.exception("reserving the next sending slot failed; recording this send first")
            return None
        if step is Step.STOP:
            chunk.stopped = True
            return None
        return following

    def paced(self, chunk: ChunkDelivery, left: int) -> Step:
        """A sending slot for the next message, waiting for it when it is near: GO; STOP when the
        provider is parked or the next slot is far (the chunk comes back then)."""
        if chunk.slots <= 0:
            step = self._reserve(chunk, left)
            if step is Step.STOP:
                return step
        chunk.slots -= 1
        self.wait_for_slot(chunk)
        return Step.GO

    def _reserve(self, chunk: ChunkDelivery, left: int) -> Step:
        """Sending slots for up to `left` messages: GO with them in hand (`chunk.slots`, from
        `chunk.slot_start`), or STOP with the reason set on the run."""
        if self.pacer is None or chunk.sandbox or chunk.remaining_ms() < STOP_MARGIN_MS:
            # Unpaced: every message has its slot. Out of time: the claim stops the chunk.
            chunk.slots, chunk.slot_start = len(chunk.pending), 0.0
            return Step.GO
        got = self.pacer.reserve(chunk.routes[0], chunk.lane, chunk.job.account_id, left)
        if got is None:  # the provider is not paced
            chunk.slots, chunk.slot_start = len(chunk.pending), 0.0
            return Step.GO
        run = chunk.run
        if isinstance(got, Parked):
            run.parked, run.reason = got, f"the provider is parked ({got.reason})"
            return Step.STOP
        if isinstance(got, Wait):
            run.untried, run.wait, run.reason = True, got.seconds, "paced: the provider's rate is taken"
            return Step.STOP
        if chunk.remaining_ms() - (got.start - self.clock()) * 1000 < STOP_MARGIN_MS:
            # No time left to wait for the slot and send: the chunk comes back for another sender.
            run.untried, run.reason = True, "stopped before its turn (the worker is stopping)"
            return Step.STOP
        chunk.slots, chunk.slot_start = got.count, got.start
        chunk.rate, chunk.probing = got.rate, got.probe
        return Step.GO

    def wait_for_slot(self, chunk: ChunkDelivery) -> None:
        wait = chunk.slot_start - self.clock()
        if wait > 0:
            self.meter.count("PacedWaitSeconds", wait, "Seconds")
            self.sleep(wait)
