"""Job status and control: pause parks chunks, resume re-enqueues what is left, stop cancels."""

from __future__ import annotations

from mailsage.domain.events import EventPublisher, job_event
from mailsage.domain.models import Job, JobState
from mailsage.domain.submission import enqueue_chunks
from mailsage.errors import Conflict, NotFound, ValidationFailed
from mailsage.ports import Queue, Store

_ALLOWED = {
    "pause": ({JobState.QUEUED, JobState.RUNNING}, JobState.PAUSED),
    "resume": ({JobState.PAUSED}, JobState.RUNNING),
    "stop": ({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED}, JobState.STOPPED),
}


class JobService:
    def __init__(self, store: Store, queue: Queue, publisher: EventPublisher | None = None) -> None:
        self.store = store
        self.queue = queue
        self.publisher = publisher

    def status(self, account_id: str, job_id: str) -> Job:
        job = self.store.get_job(account_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job

    def control(self, account_id: str, job_id: str, action: str) -> Job:
        if action not in _ALLOWED:
            raise ValidationFailed(f"unknown action {action!r}; use pause, resume or stop")
        allowed_from, to = _ALLOWED[action]
        job = self.store.transition_job(account_id, job_id, allowed_from, to)
        if job is None:
            current = self.status(account_id, job_id)  # NotFound for an unknown or foreign job
            raise Conflict(
                f"cannot {action} a job that is {current.state.value}",
                {"state": current.state.value, "action": action},
            )
        if action == "stop":
            self.store.cancel_unsent(job_id)
            stopped = self.status(account_id, job_id)
            self._publish("job.stopped", stopped)
            return stopped
        if action == "resume":
            # Chunks that arrived while paused were dropped; send every chunk that still has work.
            enqueue_chunks(self.queue, account_id, job_id, self.store.pending_chunks(job_id))
            completed = self.store.complete_job_if_done(job_id)
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
