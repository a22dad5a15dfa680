"""Job status and control: pause parks chunks, resume re-enqueues what is left, stop cancels.
Which state an action may start from, and where it leads, is the one table in `job_states`."""

from __future__ import annotations

from mailsage.domain.events import EventPublisher, job_event
from mailsage.domain.job_states import TRANSITIONS, JobAction
from mailsage.domain.models import Job
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
        allowed_from, to = TRANSITIONS[move]
        job = self.jobs.transition_job(account_id, job_id, allowed_from, to)
        if job is None:
            current = self.status(account_id, job_id)  # NotFound for an unknown or foreign job
            raise Conflict(
                f"cannot {action} a job that is {current.state.value}",
                {"state": current.state.value, "action": action},
            )
        if move is JobAction.STOP:
            self.jobs.cancel_unsent(job_id)
            stopped = self.status(account_id, job_id)
            self._publish("job.stopped", stopped)
            return stopped
        if move is JobAction.RESUME:
            # Chunks that arrived while paused were dropped; send every chunk that still has work.
            enqueue_chunks(self.queue, account_id, job_id, self.jobs.pending_chunks(job_id))
            completed = self.jobs.complete_job_if_done(job_id)
            resumed = self.status(account_id, job_id)
            if completed:
                self._publish("job.completed", resumed)
            return resumed
        paused = self.status(account_id, job_id)
        self._publish("job.paused", paused)
        return paused

    def _publish(self, type_: str, job: Job) -> None:
        if self.publisher is not None:
            self.publisher.publish([job_event(type_, job)])
