"""Requests other systems drop on the ingest queue: the same JSON as `/api/v1/emails/send` or
`/batch`, plus the `account_id` it is for. Each record becomes one job, exactly once."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from mailsage.domain.submission import SubmissionService, enqueue_chunks
from mailsage.errors import Conflict, MailSageError, ServiceUnavailable
from mailsage.ports import Queue

log = logging.getLogger(__name__)

# Job ids of ingested records derive from the record's queue message id, so a redelivered record
# finds its job instead of creating a second one.
_NAMESPACE = uuid.UUID("5b0c4d0e-7f52-4a41-9f0e-4b8f6f1d3a21")


def ingest_job_id(record_id: str) -> str:
    return f"job_{uuid.uuid5(_NAMESPACE, record_id).hex}"


@dataclass(slots=True, frozen=True)
class IngestOutcome:
    job_id: str | None
    rejected: str | None = None  # why the record went to the dead-letter queue


class IngestService:
    def __init__(self, submission: SubmissionService, dead_letters: Queue) -> None:
        self.submission = submission
        self.dead_letters = dead_letters

    def accept(self, record_id: str, body: str) -> IngestOutcome:
        # Imported here to keep the API models out of this module's import cost for other callers.
        from pydantic import ValidationError

        from mailsage.api.v1.models import BatchRequest, SendRequest, job_request

        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("the record must be a JSON object")
            account_id = payload.pop("account_id", None)
            if not isinstance(account_id, str) or not account_id:
                raise ValueError("account_id is required")
            model = BatchRequest if "recipients" in payload else SendRequest
            request = job_request(model.model_validate(payload))
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            return self._reject(record_id, body, f"invalid record: {exc}")

        job_id = ingest_job_id(record_id)
        try:
            self.submission.submit(account_id, request, job_id=job_id)
        except Conflict:
            # Accepted by an earlier delivery of this record, which may have died before enqueuing:
            # enqueue whatever is still pending (the sender never sends a message twice).
            store = self.submission.store
            enqueue_chunks(self.submission.queue, account_id, job_id, store.pending_chunks(job_id))
        except ServiceUnavailable:
            raise  # not the record's fault: it is retried, not rejected
        except MailSageError as exc:
            return self._reject(record_id, body, f"{exc.code}: {exc.message}", exc.details)
        return IngestOutcome(job_id)

    def _reject(self, record_id: str, body: str, reason: str, details: Any = None) -> IngestOutcome:
        log.warning("ingest record %s rejected: %s", record_id, reason)
        entry = {"record_id": record_id, "reason": reason, "details": details, "record": body}
        self.dead_letters.send([entry])
        return IngestOutcome(None, rejected=reason)
