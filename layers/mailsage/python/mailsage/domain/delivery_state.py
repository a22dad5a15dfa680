"""What one delivery of a chunk holds while it runs, and what it did (for what happens next)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailsage.domain.models import Job, Message
from mailsage.domain.outcomes import Outcomes
from mailsage.domain.pacing import Lane, Parked
from mailsage.domain.rendering import CompiledContent, Uncompilable
from mailsage.domain.sessions import Sessions


@dataclass(slots=True)
class Run:
    """What one delivery of a chunk did, for what happens to the chunk afterwards."""

    offered: bool = False  # some message reached a relay (sent, refused or deferred by it)
    untried: bool = False  # messages left without an attempt (a lost connection, a stop, pacing)
    throttled: int = 0  # how often the provider asked us to slow down
    wait: float | None = None  # come back after this (throttled, or paced), no attempt counted
    parked: Parked | None = None  # the provider stopped sending: the job parks
    held_elsewhere: bool = False  # messages in flight in another delivery
    deferred_attempts: int = 0  # the most attempts among messages deferred for a retry
    gave_up: str | None = None  # why messages were failed on their last attempt
    reason: str | None = None


@dataclass(slots=True)
class ChunkDelivery:
    """One delivery of a chunk: its job, the messages left to send and what is shared by them."""

    job: Job
    pending: list[Message]
    outcomes: Outcomes
    remaining_ms: Callable[[], int]
    sessions: Sessions
    content: CompiledContent | Uncompilable
    routes: list[str]
    envelope_from: str
    lane: Lane
    number: int  # the chunk's number
    run: Run = field(default_factory=Run)
    slots: int = 0  # sending slots in hand (granted by the pacer)
    slot_start: float = 0.0  # when they start (epoch seconds)
    stopped: bool = False  # no slot for the next message: the rest of the chunk waits
    rate: float | None = None  # the rate the pacer gave this account, if paced
    probing: bool = False  # the slot in hand is a parked provider's probe

    @property
    def sandbox(self) -> str | None:
        return self.job.content.sandbox_result
