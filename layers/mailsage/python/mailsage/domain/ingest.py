"""Requests other systems drop on the ingest queue: the same JSON as `/api/v1/emails/send` or
`/batch`, plus the `account_id` it is for. Each record becomes one job, exactly once.

The ingest function's handler reads a record's body into a `JobRequest` (the API's models are the
wire format, and the domain does not know them); this service accepts it, or dead-letters the
record with the reason."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from mailsage.domain.pacing import lane_of
from mailsage.domain.submission import Accepted, JobRequest, enqueue_chunks
from mailsage.errors import Conflict, MailSageError, ServiceUnavailable
from mailsage.ports import JobStore, Queue

log = logging.getLogger(__name__)

# Job ids of ingested records derive from the record's queue message id, so a redelivered record
# finds its job instead of creating a second one.
_NAMESPACE = uuid.UUID("5b0c4d0e-7f52-4a41-9f0e-4b8f6f1d3a21")


def ingest_job_id(record_id: str) -> str:
    return f"job_{uuid.uuid5(_NAMESPACE, record_id).hex}"


class Submitter(Protocol):
    """What ingest needs of the submission service."""

    def submit(self, account_id: str, request: JobRequest, job_id: str | None = None) -> Accepted: ...


@dataclass(slots=True, frozen=True)
class IngestOutcome:
    job_id: str | None
    rejected: str | None = None  # why the record went to the dead-letter queue


class IngestService:
    def __init__(self, submission: Submitter, jobs: JobStore, queue: Queue, dead_letters: Queue) -> None:
        self.submission = submission
        self.jobs = jobs
        self.queue = queue
        self.dead_letters = dead_letters

    def accept(self, record_id: str, body: str, account_id: str, request: JobRequest) -> IngestOutcome:
        """Submit a valid record's request as the job `ingest_job_id(record_id)`; `body` is what
        goes to the dead-letter queue if the request is refused."""
        job_id = ingest_job_id(record_id)
        try:
            self.submission.submit(account_id, request, job_id=job_id)
        except Conflict:
            # Accepted by an earlier delivery of this record, which may have died before enqueuing:
            # enqueue whatever is still pending (the sender never sends a message twice).
            job = self.jobs.get_job(account_id, job_id)
            if job is not None:
                enqueue_chunks(
                    self.queue, account_id, job_id, self.jobs.pending_chunks(job_id), lane=lane_of(job)
                )
        except ServiceUnavailable:
            raise  # not the record's fault: it is retried, not rejected
        except MailSageError as exc:
            return self.reject(record_id, body, f"{exc.code}: {exc.message}", exc.details)
        return IngestOutcome(job_id)

    def reject(self, record_id: str, body: str, reason: str, details: Any = None) -> IngestOutcome:
        """Put the record on the dead-letter queue with the reason: retrying cannot make it valid."""
        log.warning("ingest record %s rejected: %s", record_id, reason)
        entry = {"record_id": record_id, "reason": reason, "details": details, "record": body}
        self.dead_letters.send([entry])
        return IngestOutcome(None, rejected=reason)
