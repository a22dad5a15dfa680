"""The one table of job state rules. The domain, the SQLite store and the DynamoDB store all read
it, so a job moves the same way whatever holds it."""

from __future__ import annotations

from enum import StrEnum

from mailsage.domain.models import JobState, MessageStatus


class JobAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


# What a caller may do to a job: the states it may be in, and the state it moves to.
TRANSITIONS: dict[JobAction, tuple[frozenset[JobState], JobState]] = {
    JobAction.PAUSE: (frozenset({JobState.QUEUED, JobState.RUNNING}), JobState.PAUSED),
    JobAction.RESUME: (frozenset({JobState.PAUSED}), JobState.RUNNING),
    JobAction.STOP: (frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED}), JobState.STOPPED),
}

# Jobs that are not over: they may still complete, expire or be stopped.
LIVE = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING, JobState.PAUSED})
# Jobs whose chunks are in the queue now (recovered after a restart).
ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})
# Jobs a sender works on (a paused job's chunks are parked; anything else is over or not due).
SENDABLE = ACTIVE
FINAL = frozenset({JobState.COMPLETED, JobState.STOPPED, JobState.EXPIRED})

# Messages still waiting for, or in, a send: a chunk holding one has work left.
PENDING_MESSAGES = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})
# Messages a stop cancels and an expiry expires: not yet handed to a worker.
UNSTARTED_MESSAGES = frozenset({MessageStatus.QUEUED, MessageStatus.SCHEDULED})
