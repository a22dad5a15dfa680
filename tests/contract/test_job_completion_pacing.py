"""Contract: the write that completes a job may carry the chunk's pacing (JobStore.complete_job_if_done
with `pacing`), so a chunk that ends its job spends one write on the job, not two."""

from __future__ import annotations

from mailsage.domain.models import Job, JobState, MessageStatus
from mailsage.ports import Store
from tests.contract.conftest import JobFactory

LONG_LEASE = 60.0


def current(store: Store, job: Job) -> Job:
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    return found


def test_completing_a_job_records_the_pacing_given_with_it(store: Store, jobs: JobFactory) -> None:
    # Given a job whose one message was sent, throttled once before
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.record_pacing(job.id, 1, 10.0)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When the job is completed with the chunk's pacing
    completed = store.complete_job_if_done(job.id, (2, 14.0))
    # Then it is completed with the throttles added and the new rate
    found = current(store, job)
    assert completed
    assert (found.state, found.throttled, found.send_rate) == (JobState.COMPLETED, 3, 14.0)


def test_completing_with_no_rate_removes_it(store: Store, jobs: JobFactory) -> None:
    # Given a paced job whose one message was sent
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.record_pacing(job.id, 0, 14.0)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When it completes with a pacing of no rate / Then the rate is gone, the count kept
    assert store.complete_job_if_done(job.id, (0, None))
    found = current(store, job)
    assert (found.throttled, found.send_rate) == (0, None)


def test_a_job_not_done_records_no_pacing_through_completion(store: Store, jobs: JobFactory) -> None:
    # Given a job with a message still queued
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When completion is tried with a pacing
    completed = store.complete_job_if_done(job.id, (1, 14.0))
    # Then nothing is written: the caller records the pacing apart
    found = current(store, job)
    assert not completed
    assert (found.state, found.throttled, found.send_rate) == (JobState.RUNNING, 0, None)
