"""Contract of the Store port for a job of one message (a single send): it is never `running`, the
one write a job takes for that (and its index copy on DynamoDB) being of no use to anyone. It stays
queued, and so among the active jobs recovery reads, until it completes; its message is claimed and
sent once whatever is redelivered; it completes with a start time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailsage.domain.models import Job, JobState, Message, MessageStatus, new_message_ids
from mailsage.ports import Store
from tests.contract.conftest import STORES, JobFactory
from tests.contract.test_store_contract import LONG_LEASE


@pytest.fixture(scope="module", params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store per adapter for the module (each test creates a job of its own)."""
    with STORES[request.param](tmp_path_factory.mktemp(request.param)) as adapter:
        yield adapter


def single_send(jobs: JobFactory, size: int = 1) -> tuple[Job, list[Message]]:
    """A job of `size` messages with ids as the submission makes them."""
    job, messages = jobs.build(chunk_sizes=(size,))
    for message, message_id in zip(messages, new_message_ids(size), strict=True):
        message.id = message_id
    jobs.store.create_job(job, messages)
    return job, messages


def state_of(store: Store, job: Job) -> Job:
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    return found


def test_a_job_of_one_is_active_and_queued_until_it_completes(store: Store, jobs: JobFactory) -> None:
    # Given an accepted single send
    job, [message] = single_send(jobs)
    assert (job.account_id, job.id) in store.active_jobs()
    # When its message is claimed and sent
    assert store.claim_messages(job.id, [message.id], LONG_LEASE) == [message.id]
    # Then the job is still queued and among the active jobs (a restart would recover it)
    assert state_of(store, job).state is JobState.QUEUED
    assert (job.account_id, job.id) in store.active_jobs()
    assert store.finish_message(message.id, MessageStatus.SENT)
    # And once completed it has started and finished, and is no longer active
    assert store.complete_job_if_done(job.id)
    done = state_of(store, job)
    assert done.state is JobState.COMPLETED
    assert done.started_at is not None and done.finished_at is not None
    assert done.started_at <= done.finished_at
    assert (job.account_id, job.id) not in store.active_jobs()


def test_a_job_of_two_still_runs_once_claimed(store: Store, jobs: JobFactory) -> None:
    job, messages = single_send(jobs, 2)
    assert store.claim_messages(job.id, [messages[0].id], LONG_LEASE) == [messages[0].id]
    running = state_of(store, job)
    assert running.state is JobState.RUNNING and running.started_at is not None


def test_a_redelivered_single_send_claims_nothing_again(store: Store, jobs: JobFactory) -> None:
    # Given a single send claimed by a sender
    job, [message] = single_send(jobs)
    assert store.claim_messages(job.id, [message.id], LONG_LEASE) == [message.id]
    # When its chunk is delivered again while it is sending, and again after it was sent
    assert store.claim_messages(job.id, [message.id], LONG_LEASE) == []
    assert store.finish_message(message.id, MessageStatus.SENT)
    assert store.claim_messages(job.id, [message.id], 0) == []
    assert not store.finish_message(message.id, MessageStatus.SENT)
    # Then the message was sent once and the job completes once
    found = store.get_message(job.account_id, message.id)
    assert found is not None and found.status is MessageStatus.SENT and found.attempts == 1
    assert store.complete_job_if_done(job.id)
    assert not store.complete_job_if_done(job.id)


def test_a_single_send_whose_sender_died_is_recovered_and_sent_once(store: Store, jobs: JobFactory) -> None:
    # Given a single send claimed by a sender that died before recording the send
    job, [message] = single_send(jobs)
    lease = 0.05
    assert store.claim_messages(job.id, [message.id], lease) == [message.id]
    # When recovery finds it among the active jobs and its chunk is sent after the lease
    assert (job.account_id, job.id) in store.active_jobs()
    assert store.pending_chunks(job.id) == [0]
    time.sleep(lease * 2)  # the lease is measured on the store's clock
    assert store.claim_messages(job.id, [message.id], lease) == [message.id]
    assert store.finish_message(message.id, MessageStatus.SENT)
    # Then it completes, and a late finish of the dead sender's claim changes nothing
    assert not store.finish_message(message.id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id)
    assert state_of(store, job).state is JobState.COMPLETED


def test_a_single_send_can_be_paused_and_stopped_before_it_is_sent(store: Store, jobs: JobFactory) -> None:
    job, [message] = single_send(jobs)
    assert store.transition_job(job.account_id, job.id, {JobState.QUEUED, JobState.RUNNING}, JobState.PAUSED)
    assert store.transition_job(job.account_id, job.id, {JobState.PAUSED}, JobState.STOPPED)
    assert store.cancel_unsent(job.id) == 1
    assert state_of(store, job).state is JobState.STOPPED
