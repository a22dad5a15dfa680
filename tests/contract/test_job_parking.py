"""Contract of the JobStore's parking and pacing (ports.JobStore): a job its provider parked
(paused with a reason) resumes by itself, a caller's pause never does, and the job's throttle
count and current rate are what the job reply shows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.models import Job, JobState, MessageStatus
from mailsage.ports import Store
from tests.contract.conftest import JobFactory

LONG_LEASE = 60.0
QUOTA = "daily_quota"


def running_job(store: Store, jobs: JobFactory) -> Job:
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)  # queued -> running
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state is JobState.RUNNING
    return found


def current(store: Store, job: Job) -> Job:
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    return found


def active_ids(store: Store) -> set[str]:
    return {job_id for _, job_id in store.active_jobs()}


# -- a new job -------------------------------------------------------------------------------------


def test_a_new_job_is_neither_parked_nor_paced(store: Store, jobs: JobFactory) -> None:
    # Given a job just created / When it is read
    job, _ = jobs.create()
    found = current(store, job)
    # Then it has no reason, no throttles and no rate
    assert (found.paused_reason, found.throttled, found.send_rate) == (None, 0, None)


# -- park_job --------------------------------------------------------------------------------------


def test_park_moves_a_running_job_to_paused_with_its_reason(store: Store, jobs: JobFactory) -> None:
    # Given a running job
    job = running_job(store, jobs)
    # When its provider's daily quota runs out
    parked = store.park_job(job.account_id, job.id, QUOTA)
    # Then it is paused with the reason, in the reply and in the store, and no longer active
    assert parked is not None and (parked.state, parked.paused_reason) == (JobState.PAUSED, QUOTA)
    assert (current(store, job).state, current(store, job).paused_reason) == (JobState.PAUSED, QUOTA)
    assert parked.counts.get(MessageStatus.SENDING.value) == 1  # read back with its counts
    assert job.id not in active_ids(store)


def test_park_moves_a_queued_job_to_paused(store: Store, jobs: JobFactory) -> None:
    # Given a job no sender has started
    job, _ = jobs.create()
    # When its provider paused sending
    parked = store.park_job(job.account_id, job.id, "sending_paused")
    # Then it is parked with that reason
    assert parked is not None and (parked.state, parked.paused_reason) == (JobState.PAUSED, "sending_paused")


def test_park_of_a_job_a_caller_paused_is_none_and_keeps_it_the_callers(
    store: Store, jobs: JobFactory
) -> None:
    # Given a job a caller paused
    job, _ = jobs.create()
    store.transition_job(job.account_id, job.id, {JobState.QUEUED}, JobState.PAUSED)
    # When a sender tries to park it / Then nothing changes: it has no reason, so it waits for the caller
    assert store.park_job(job.account_id, job.id, QUOTA) is None
    assert (current(store, job).state, current(store, job).paused_reason) == (JobState.PAUSED, None)


def test_park_of_a_parked_job_is_none_and_keeps_the_first_reason(store: Store, jobs: JobFactory) -> None:
    # Given a parked job
    job = running_job(store, jobs)
    assert store.park_job(job.account_id, job.id, QUOTA) is not None
    # When another chunk of it parks it again / Then only the first park happened
    assert store.park_job(job.account_id, job.id, "sending_paused") is None
    assert current(store, job).paused_reason == QUOTA


def test_park_of_a_completed_job_is_none(store: Store, jobs: JobFactory) -> None:
    # Given a job whose only message was sent, so it completed
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id)
    # When a sender tries to park it / Then it stays completed, with no reason
    assert store.park_job(job.account_id, job.id, QUOTA) is None
    assert (current(store, job).state, current(store, job).paused_reason) == (JobState.COMPLETED, None)


def test_park_of_another_accounts_job_is_none(store: Store, jobs: JobFactory) -> None:
    # Given a running job of account A
    job = running_job(store, jobs)
    # When B's id is given / Then nothing is parked
    assert store.park_job("acc_b", job.id, QUOTA) is None
    assert current(store, job).state is JobState.RUNNING


# -- unpark_job ------------------------------------------------------------------------------------


def test_unpark_runs_a_parked_job_again_without_its_reason(store: Store, jobs: JobFactory) -> None:
    # Given a parked job
    job = running_job(store, jobs)
    store.park_job(job.account_id, job.id, QUOTA)
    # When its provider sends again
    resumed = store.unpark_job(job.account_id, job.id)
    # Then it runs, has no reason, is active again, and a second unpark does nothing
    assert resumed is not None and (resumed.state, resumed.paused_reason) == (JobState.RUNNING, None)
    assert job.id in active_ids(store)
    assert store.unpark_job(job.account_id, job.id) is None


def test_unpark_of_a_job_parked_before_it_started_marks_it_started(store: Store, jobs: JobFactory) -> None:
    # Given a job parked while still queued (its probe's send is what unparks it)
    job, _ = jobs.create()
    store.park_job(job.account_id, job.id, QUOTA)
    # When it is unparked / Then it is running and has a start time
    resumed = store.unpark_job(job.account_id, job.id)
    assert resumed is not None and resumed.state is JobState.RUNNING
    assert resumed.started_at is not None


def test_unpark_of_a_job_a_caller_paused_is_none(store: Store, jobs: JobFactory) -> None:
    # Given a job a caller paused
    job = running_job(store, jobs)
    store.transition_job(job.account_id, job.id, {JobState.RUNNING}, JobState.PAUSED)
    # When a probe tries to unpark it / Then it stays paused: only the caller resumes it
    assert store.unpark_job(job.account_id, job.id) is None
    assert current(store, job).state is JobState.PAUSED


def test_unpark_of_another_accounts_job_is_none(store: Store, jobs: JobFactory) -> None:
    # Given a parked job of account A
    job = running_job(store, jobs)
    store.park_job(job.account_id, job.id, QUOTA)
    # When B's id is given / Then it stays parked
    assert store.unpark_job("acc_b", job.id) is None
    assert current(store, job).paused_reason == QUOTA


# -- a caller's moves take a parked job over --------------------------------------------------------


def test_a_callers_resume_of_a_parked_job_clears_the_reason(store: Store, jobs: JobFactory) -> None:
    # Given a parked job
    job = running_job(store, jobs)
    store.park_job(job.account_id, job.id, QUOTA)
    # When a caller resumes it
    resumed = store.transition_job(job.account_id, job.id, {JobState.PAUSED}, JobState.RUNNING)
    # Then it runs without a reason, and the probe cannot unpark it (it is not parked)
    assert resumed is not None and (resumed.state, resumed.paused_reason) == (JobState.RUNNING, None)
    assert store.unpark_job(job.account_id, job.id) is None
    assert current(store, job).state is JobState.RUNNING


def test_a_callers_pause_of_a_parked_job_makes_it_the_callers(store: Store, jobs: JobFactory) -> None:
    # Given a parked job
    job = running_job(store, jobs)
    store.park_job(job.account_id, job.id, QUOTA)
    # When a caller pauses it (paused -> paused)
    paused = store.transition_job(job.account_id, job.id, {JobState.PAUSED}, JobState.PAUSED)
    # Then it stays paused without a reason, and no probe resumes it
    assert paused is not None and (paused.state, paused.paused_reason) == (JobState.PAUSED, None)
    assert store.unpark_job(job.account_id, job.id) is None
    assert current(store, job).state is JobState.PAUSED


def test_a_callers_stop_of_a_parked_job_clears_the_reason(store: Store, jobs: JobFactory) -> None:
    # Given a parked job
    job = running_job(store, jobs)
    store.park_job(job.account_id, job.id, QUOTA)
    # When a caller stops it / Then it is stopped for good, without a reason
    stopped = store.transition_job(job.account_id, job.id, {JobState.PAUSED}, JobState.STOPPED)
    assert stopped is not None and (stopped.state, stopped.paused_reason) == (JobState.STOPPED, None)
    assert store.unpark_job(job.account_id, job.id) is None


# -- record_pacing ---------------------------------------------------------------------------------


def test_record_pacing_adds_throttles_and_sets_the_rate(store: Store, jobs: JobFactory) -> None:
    # Given a running job
    job = running_job(store, jobs)
    # When two throttles and then one more are recorded, the rate changing each time
    store.record_pacing(job.id, 2, 14.0)
    store.record_pacing(job.id, 1, 7.5)
    # Then the count is their sum and the rate the last one
    found = current(store, job)
    assert (found.throttled, found.send_rate) == (3, 7.5)


def test_record_pacing_without_a_rate_removes_it(store: Store, jobs: JobFactory) -> None:
    # Given a paced job
    job = running_job(store, jobs)
    store.record_pacing(job.id, 1, 14.0)
    # When it is no longer paced / Then its rate is gone and its count kept
    store.record_pacing(job.id, 0, None)
    found = current(store, job)
    assert (found.throttled, found.send_rate) == (1, None)


def test_record_pacing_from_two_threads_loses_no_throttle(store: Store, jobs: JobFactory) -> None:
    # Given a running job and two senders recording throttles at once
    job = running_job(store, jobs)
    each = 20

    def record(rate: float) -> Callable[[], None]:
        def run() -> None:
            for _ in range(each):
                store.record_pacing(job.id, 1, rate)

        return run

    # When both record concurrently
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(record(1.0)), pool.submit(record(2.0))]:
            future.result()  # neither failed
    # Then every throttle is counted, and the rate is one of theirs
    found = current(store, job)
    assert found.throttled == 2 * each
    assert found.send_rate in {1.0, 2.0}


def test_record_pacing_of_an_unknown_job_creates_nothing(store: Store, jobs: JobFactory) -> None:
    # Given no such job / When pacing is recorded for it / Then no job appears
    store.record_pacing("job_missing", 1, 1.0)
    assert store.get_job("acc_a", "job_missing") is None


# -- SQLite: an existing database upgrades in place ---------------------------------------------------


def test_a_database_without_the_pacing_columns_upgrades_in_place(tmp_path: Path) -> None:
    # Given a database written before jobs had a paused reason, a throttle count or a rate
    path = tmp_path / "old.sqlite3"
    db = Database(path)
    jobs = JobFactory(SqliteStore(db))
    job, _ = jobs.create()
    db.close()
    with sqlite3.connect(path) as conn:
        for column in ("paused_reason", "throttled", "send_rate"):
            conn.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    # When this version opens it
    store = SqliteStore(Database(path))
    # Then the job reads with the defaults and can be parked and paced
    found = current(store, job)
    assert (found.paused_reason, found.throttled, found.send_rate) == (None, 0, None)
    assert store.park_job(job.account_id, job.id, QUOTA) is not None
    store.record_pacing(job.id, 1, 3.0)
    assert (current(store, job).paused_reason, current(store, job).throttled) == (QUOTA, 1)
