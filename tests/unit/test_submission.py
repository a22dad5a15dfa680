"""Submission, job control, templates and ingest on small in-memory fakes of the narrow ports they
take, with a ManualClock: each service needs only the few methods it calls."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from mailsage.domain.clock import ManualClock
from mailsage.domain.ingest import IngestService, ingest_job_id
from mailsage.domain.job_states import TRANSITIONS, JobAction
from mailsage.domain.jobs import JobService
from mailsage.domain.models import Account, Job, JobKind, JobState, Message, MessageStatus, Template
from mailsage.domain.submission import (
    Accepted,
    JobRequest,
    RecipientInput,
    SubmissionLimits,
    SubmissionService,
)
from mailsage.domain.templates import TemplateDraft, TemplateService
from mailsage.errors import Conflict, ValidationFailed

ACCOUNT = "acct_1"


class Memory:
    """Jobs, templates, accounts and suppressions in dicts: only what these services call."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[Job, list[Message]]] = {}
        self.templates: dict[str, Template] = {}
        self.suppressed_emails: set[str] = set()
        self.suppression_queries: list[tuple[str | None, float]] = []
        self.completed: list[str] = []
        self.transitions: list[tuple[frozenset[JobState], JobState]] = []

    # AccountStore
    def get_account(self, account_id: str) -> Account | None:
        return None

    # TemplateStore
    def put_template(self, template: Template) -> None:
        self.templates[template.id] = template

    def get_template(self, account_id: str, template_id: str) -> Template | None:
        found = self.templates.get(template_id)
        return found if found is not None and found.account_id == account_id else None

    # SuppressionStore
    def suppressed(self, account_id: str, emails: Sequence[str], domain: str | None, now: float) -> set[str]:
        self.suppression_queries.append((domain, now))
        return {e.lower() for e in emails} & self.suppressed_emails

    # JobStore
    def create_job(self, job: Job, messages: Sequence[Message]) -> None:
        if job.id in self.jobs:
            raise Conflict(f"job {job.id} exists")
        self.jobs[job.id] = (job, list(messages))

    def get_job(self, account_id: str, job_id: str, with_counts: bool = True) -> Job | None:
        found = self.jobs.get(job_id)
        return found[0] if found is not None and found[0].account_id == account_id else None

    def transition_job(
        self, account_id: str, job_id: str, allowed_from: Iterable[JobState], to: JobState
    ) -> Job | None:
        job = self.get_job(account_id, job_id)
        self.transitions.append((frozenset(allowed_from), to))
        if job is None or job.state not in set(allowed_from):
            return None
        job.state = to
        return job

    def complete_job_if_done(self, job_id: str) -> bool:
        self.completed.append(job_id)
        return True

    def pending_chunks(self, job_id: str) -> list[int]:
        return sorted({m.chunk for m in self.jobs[job_id][1] if m.status == MessageStatus.QUEUED})


class Sent:
    """A queue and a scheduler that keep what they were given."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.schedules: list[tuple[str, float]] = []

    def send(self, bodies: list[dict[str, Any]], dedup_keys: Any = None, delay_seconds: float = 0.0) -> None:
        self.bodies.extend(bodies)

    def schedule(self, name: str, at: float, payload: dict[str, Any]) -> None:
        self.schedules.append((name, at))


def service(memory: Memory, sent: Sent, clock: ManualClock, chunk_size: int = 2) -> SubmissionService:
    return SubmissionService(
        jobs=memory,
        templates=memory,
        accounts=memory,
        suppressions=memory,
        queue=sent,
        limits=SubmissionLimits(chunk_size=chunk_size),
        scheduler=sent,
        clock=clock,
    )


def batch(*emails: str, **changes: Any) -> JobRequest:
    return JobRequest(
        kind="batch",
        recipients=[RecipientInput(e, None, {"n": i}) for i, e in enumerate(emails)],
        subject="Hi {{ n }}",
        text="Number {{ n }}",
        from_addr="News <news@Example.COM>",
        **changes,
    )


def test_a_batch_is_chunked_and_enqueued_at_the_clocks_time() -> None:
    # Given a clock at a fixed time and chunks of two
    memory, sent, clock = Memory(), Sent(), ManualClock(1_800_000_000.0)
    # When a batch of three is submitted
    accepted = service(memory, sent, clock).submit(
        ACCOUNT, batch("a@example.org", "b@example.org", "c@example.org")
    )
    # Then the job is a queued batch of two chunks, stamped with the clock's time, and both chunks are enqueued
    job = accepted.job
    assert (job.kind, job.state, job.chunks, job.created_at) == (JobKind.BATCH, JobState.QUEUED, 2, clock.now)
    assert [m.chunk for m in accepted.messages] == [0, 0, 1]
    assert [b["chunk"] for b in sent.bodies] == [0, 1]


def test_a_first_attempt_after_the_clock_schedules_the_job_and_one_before_it_does_not() -> None:
    memory, sent, clock = Memory(), Sent(), ManualClock(1_800_000_000.0)
    submit = service(memory, sent, clock).submit
    # When one request is due in an hour and another was due an hour ago
    later = submit(ACCOUNT, batch("a@example.org", first_attempt_at=clock.now + 3600))
    due = submit(ACCOUNT, batch("a@example.org", first_attempt_at=clock.now - 3600))
    # Then only the first is scheduled (at its time), and only the second is enqueued
    assert (later.job.state, due.job.state) == (JobState.SCHEDULED, JobState.QUEUED)
    assert sent.schedules == [(later.job.id, clock.now + 3600)]
    assert [b["job_id"] for b in sent.bodies] == [due.job.id]


def test_suppressions_are_read_for_the_lower_cased_sender_domain_at_the_clocks_time() -> None:
    memory, sent, clock = Memory(), Sent(), ManualClock()
    memory.suppressed_emails = {"b@example.org"}
    # When a batch with one suppressed recipient is submitted from an upper-case domain
    accepted = service(memory, sent, clock).submit(ACCOUNT, batch("a@example.org", "B@example.org"))
    # Then the suppression query used the domain as DNS compares it, and that recipient ends suppressed
    assert memory.suppression_queries == [("example.com", clock.now)]
    statuses = [(m.email, m.status, m.chunk) for m in accepted.messages]
    assert statuses == [
        ("a@example.org", MessageStatus.QUEUED, 0),
        ("B@example.org", MessageStatus.SUPPRESSED, -1),
    ]


def test_a_job_whose_recipients_are_all_suppressed_completes_without_enqueuing() -> None:
    memory, sent, clock = Memory(), Sent(), ManualClock()
    memory.suppressed_emails = {"a@example.org"}
    accepted = service(memory, sent, clock).submit(ACCOUNT, batch("a@example.org"))
    assert (accepted.job.chunks, sent.bodies, memory.completed) == (0, [], [accepted.job.id])


def test_job_control_moves_by_the_transition_table() -> None:
    memory, sent, clock = Memory(), Sent(), ManualClock()
    job_id = service(memory, sent, clock).submit(ACCOUNT, batch("a@example.org")).job.id
    jobs = JobService(memory, sent)
    # When the queued job is paused
    paused = jobs.control(ACCOUNT, job_id, "pause")
    # Then the store was asked for the table's pause move
    assert memory.transitions == [TRANSITIONS[JobAction.PAUSE]]
    assert paused.state == JobState.PAUSED


def test_an_unknown_job_action_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed, match="use pause, resume or stop"):
        JobService(Memory(), Sent()).control(ACCOUNT, "job_x", "restart")


def test_a_template_update_is_stamped_by_the_clock() -> None:
    memory, clock = Memory(), ManualClock()
    templates = TemplateService(memory, clock=clock)
    created = templates.create(ACCOUNT, TemplateDraft("t", "Hello", text="Hi"))
    # When the clock moves a minute and the template is edited
    clock.advance(60)
    updated = templates.update(ACCOUNT, created.id, TemplateDraft("t", "Hello again", text="Hi"))
    # Then it keeps its creation time and carries the new time as its update
    assert (updated.created_at, updated.updated_at) == (created.created_at, created.created_at + 60)


class Refusing:
    """A submission service whose job already exists (an earlier delivery of the record)."""

    def submit(self, account_id: str, request: JobRequest, job_id: str | None = None) -> Accepted:
        raise Conflict("exists")


def test_a_redelivered_ingest_record_enqueues_what_its_job_still_has_pending() -> None:
    memory, sent, dead = Memory(), Sent(), Sent()
    job_id = ingest_job_id("record-1")
    service(memory, Sent(), ManualClock()).submit(
        ACCOUNT, batch("a@example.org", "b@example.org", "c@example.org"), job_id=job_id
    )
    ingest = IngestService(Refusing(), memory, sent, dead)
    # When the same record is accepted again
    outcome = ingest.accept("record-1", "{}", ACCOUNT, batch("a@example.org"))
    # Then nothing is dead-lettered and the job's pending chunks are enqueued
    assert (outcome.job_id, outcome.rejected, dead.bodies) == (job_id, None, [])
    assert [b["chunk"] for b in sent.bodies] == [0, 1]
