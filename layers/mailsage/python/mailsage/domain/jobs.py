"""Job status and control: pause parks chunks, resume re-enqueues what is left, stop cancels."""

from __future__ import annotations

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
    def __init__(self, store: Store, queue: Queue) -> None:
        self.store = store
        self.queue = queue

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
            return self.status(account_id, job_id)
        if action == "resume":
            # Chunks that arrived while paused were dropped; send every chunk that still has work.
            enqueue_chunks(self.queue, account_id, job_id, self.store.pending_chunks(job_id))
            self.store.complete_job_if_done(job_id)
            return self.status(account_id, job_id)
        return job
