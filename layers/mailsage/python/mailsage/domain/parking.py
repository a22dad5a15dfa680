"""Jobs parked by their provider: its daily quota is used up, or it paused sending. A parked job is
`paused` with its reason and keeps one record in the queue, the probe, which comes back when the
provider is to be tried again: it sends one message of the job, and the job resumes by itself when
that gets through. Parking is never an attempt of any message, and fails nothing."""

from __future__ import annotations

import random

from mailsage.domain.clock import Clock
from mailsage.domain.milestones import milestone
from mailsage.domain.models import EventType, Job, JobState
from mailsage.domain.outcomes import Outcomes
from mailsage.domain.pacing import lane_of
from mailsage.domain.submission import enqueue_chunks
from mailsage.ports import JobStore, Meter, Queue

PROBE_CHUNK = -2  # a queue message with this chunk number probes a parked job's provider
MAX_QUEUE_DELAY_SECONDS = 900.0  # SQS's longest delay: a later probe comes back and waits again


class Parking:
    def __init__(self, jobs: JobStore, queue: Queue, meter: Meter, clock: Clock) -> None:
        self.jobs = jobs
        self.queue = queue
        self.meter = meter
        self.clock = clock

    @staticmethod
    def parked(job: Job) -> bool:
        """Parked by its provider (a caller's pause has no reason: it waits for the caller)."""
        return job.state is JobState.PAUSED and job.paused_reason is not None

    def park(self, job: Job, reason: str, until: float, outcomes: Outcomes) -> None:
        """Park the job unless it is already (another chunk of it did, or a caller paused it): its
        chunks in the queue are dropped on arrival, and the probe brings them back."""
        # The probe first: a parked job without one would wait for a person. Two chunks parking
        # the same job at once leave two probes, which only costs a second look.
        self.probe_later(job, until)
        parked = self.jobs.park_job(job.account_id, job.id, reason)
        if parked is None:
            return
        self.meter.count("JobsParked")
        outcomes.job(EventType.JOB_PAUSED, parked)
        milestone(parked, f"paused by the provider ({reason})")

    def probe_later(self, job: Job, until: float) -> None:
        delay = min(MAX_QUEUE_DELAY_SECONDS, max(0.0, until - self.clock()) + random.random())
        enqueue_chunks(
            self.queue, job.account_id, job.id, [PROBE_CHUNK], delay_seconds=delay, lane=lane_of(job)
        )

    def resume(self, job: Job, outcomes: Outcomes) -> Job | None:
        """The provider sends again: the job runs, with every chunk that has work queued."""
        resumed = self.jobs.unpark_job(job.account_id, job.id)
        if resumed is None:
            return None
        enqueue_chunks(
            self.queue, job.account_id, job.id, self.jobs.pending_chunks(job.id), lane=lane_of(job)
        )
        outcomes.job(EventType.JOB_RESUMED, resumed)
        return resumed
