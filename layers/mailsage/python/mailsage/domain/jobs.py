"""Job status and control: pause parks chunks, resume re-enqueues what is left, stop cancels.
Which state an action may start from, and where it leads, is the one table in `job_states`.
A job its provider parked is paused already: a caller may resume or stop it, and a caller's pause
makes it the caller's (it then waits for the caller instead of resuming by itself)."""

from __future__ import annotations

from mailsage.domain.events import EventPublisher, job_event
from mailsage.domain.job_states import TRANSITIONS, JobAction
from mailsage.domain.milestones import milestone
from mailsage.domain.models import Job, JobState
from mailsage.domain.pacing import lane_of
from mailsage.domain.parking import Parking
from mailsage.domain.submission import enqueue_chunks
from mailsage.errors import Conflict, NotFound, ValidationFailed
from mailsage.ports import JobStore, Queue


class JobService:
    def __init__(self, jobs: JobStore, queue: Queue, publisher: EventPublisher | None = None) -> None:
        self.jobs = jobs
        self.queue = queue
        self.publisher = publisher

    def status(self, account_id: str, job_id: str) -> Job:
        job = self.jobs.get_job(account_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job

    def control(self, account_id: str, job_id: str, action: str) -> Job:
        try:
            move = JobAction(action)
        except ValueError:
            raise ValidationFailed(f"unknown action {action!r}; use pause, resume or stop") from None
        job = self._transition(account_id, job_id, move)
        if move is JobAction.STOP:
            self.jobs.cancel_unsent(job_id)
            stopped = self.status(account_id, job_id)
            self._publish("job.stopped", stopped)
            return stopped
        if move is JobAction.RESUME:
            # Chunks that arrived while paused were dropped; send every chunk that still has work.
            pending = self.jobs.pending_chunks(job_id)
            enqueue_chunks(self.queue, account_id, job_id, pending, lane=lane_of(job))
            completed = self.jobs.complete_job_if_done(job_id)
            resumed = self.status(account_id, job_id)
            if completed:
                self._publish("job.completed", resumed)
            return resumed
        paused = self.status(account_id, job_id)
        self._publish("job.paused", paused)
        return paused

    def _transition(self, account_id: str, job_id: str, move: JobAction) -> Job:
        allowed_from, to = TRANSITIONS[move]
        job = self.jobs.transition_job(account_id, job_id, allowed_from, to)
        if job is not None:
            return job
        current = self.status(account_id, job_id)  # NotFound for an unknown or foreign job
        if move is JobAction.PAUSE and Parking.parked(current):
            # paused -> paused clears the reason (every caller's move does); from queued|running too,
            # in case its provider resumed it meanwhile. Had a caller paused it meanwhile, this pause
            # succeeds as well: the job is the caller's either way.
            job = self.jobs.transition_job(account_id, job_id, {*allowed_from, JobState.PAUSED}, to)
            if job is not None:
                return job
            current = self.status(account_id, job_id)
        raise Conflict(
            f"cannot {move.value} a job that is {current.state.value}",
            {"state": current.state.value, "action": move.value},
        )

    def _publish(self, type_: str, job: Job) -> None:
        milestone(job, type_.removeprefix("job."))
        if self.publisher is not None:
            self.publisher.publish([job_event(type_, job)])
