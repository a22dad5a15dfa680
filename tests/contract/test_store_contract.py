"""Contract of the Store port (ports.Store): keys, templates, jobs and the per-message state machine."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from mailsage.domain.models import Account, Job, JobState, Message, MessageStatus, Template
from mailsage.errors import Conflict
from mailsage.ports import Store
from tests.contract.conftest import JobFactory

LONG_LEASE = 60.0
T = TypeVar("T")


def template(account_id: str, template_id: str, name: str = "Welcome") -> Template:
    return Template(
        id=template_id,
        account_id=account_id,
        name=name,
        subject="Hi {{ name }}",
        html="<p>Hi {{ name }}</p>",
        text="Hi {{ name }}",
        created_at=1_700_000_000.25,
        updated_at=1_700_000_100.5,
    )


def status_of(store: Store, message: Message) -> MessageStatus:
    found = store.get_message(message.account_id, message.id)
    assert found is not None
    return found.status


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in counts.items() if n}


# -- api keys ---------------------------------------------------------------------------------------


def test_api_key_put_then_get_returns_account_and_hash(store: Store) -> None:
    # Given a stored key
    store.put_api_key("acc_a", "key_1", "hash-1")
    # When it is looked up by id
    found = store.get_api_key("key_1")
    # Then its account and hash come back
    assert found == ("acc_a", "hash-1")


def test_unknown_api_key_is_none(store: Store) -> None:
    # Given a store holding another key
    store.put_api_key("acc_a", "key_1", "hash-1")
    # When an unknown key id is looked up / Then there is none
    assert store.get_api_key("key_2") is None


# -- templates --------------------------------------------------------------------------------------


def test_template_put_then_get_roundtrips(store: Store) -> None:
    # Given a stored template
    tpl = template("acc_a", "tpl_1")
    store.put_template(tpl)
    # When it is read back by its account
    found = store.get_template("acc_a", "tpl_1")
    # Then every field is preserved
    assert found == tpl


def test_put_template_with_existing_id_replaces_it(store: Store) -> None:
    # Given a stored template
    store.put_template(template("acc_a", "tpl_1", name="Old"))
    # When a template with the same id is put again
    store.put_template(template("acc_a", "tpl_1", name="New"))
    # Then the new version replaces the old one
    found = store.get_template("acc_a", "tpl_1")
    assert found is not None and found.name == "New"
    assert [t.name for t in store.list_templates("acc_a", 10, None)] == ["New"]


def test_template_with_optional_parts_unset_roundtrips(store: Store) -> None:
    # Given a text-only template (no HTML)
    tpl = template("acc_a", "tpl_1")
    tpl.html = None
    store.put_template(tpl)
    # When it is read back / Then the missing part is still None, not "" or absent
    assert store.get_template("acc_a", "tpl_1") == tpl


def test_template_of_another_account_is_not_found(store: Store) -> None:
    # Given a template of account A
    store.put_template(template("acc_a", "tpl_1"))
    # When account B asks for the same id / Then it is not found
    assert store.get_template("acc_b", "tpl_1") is None


def test_list_templates_orders_by_id(store: Store) -> None:
    # Given templates stored in no particular order
    ids = ["tpl_c", "tpl_a", "tpl_e", "tpl_b", "tpl_d"]
    for template_id in ids:
        store.put_template(template("acc_a", template_id))
    # When they are listed
    listed = store.list_templates("acc_a", 10, None)
    # Then they come ordered by id
    assert [t.id for t in listed] == sorted(ids)


def test_list_templates_respects_limit(store: Store) -> None:
    # Given five templates
    for i in range(5):
        store.put_template(template("acc_a", f"tpl_{i}"))
    # When two are asked for
    listed = store.list_templates("acc_a", 2, None)
    # Then the first two by id come back
    assert [t.id for t in listed] == ["tpl_0", "tpl_1"]


def test_list_templates_after_cursor_returns_the_following_ids(store: Store) -> None:
    # Given five templates
    for i in range(5):
        store.put_template(template("acc_a", f"tpl_{i}"))
    # When listing after tpl_1
    listed = store.list_templates("acc_a", 10, "tpl_1")
    # Then only the ids after the cursor come back, the cursor itself excluded
    assert [t.id for t in listed] == ["tpl_2", "tpl_3", "tpl_4"]


def test_list_templates_pages_through_everything_once(store: Store) -> None:
    # Given five templates
    for i in range(5):
        store.put_template(template("acc_a", f"tpl_{i}"))
    # When paging two at a time, each page's last id being the next cursor
    seen: list[str] = []
    after: str | None = None
    for _ in range(10):
        page = store.list_templates("acc_a", 2, after)
        if not page:
            break
        seen += [t.id for t in page]
        after = page[-1].id
    # Then every template is seen exactly once, in order
    assert seen == [f"tpl_{i}" for i in range(5)]


def test_list_templates_excludes_other_accounts(store: Store) -> None:
    # Given templates of two accounts
    store.put_template(template("acc_a", "tpl_a1"))
    store.put_template(template("acc_b", "tpl_b1"))
    store.put_template(template("acc_b", "tpl_b2"))
    # When account A lists its templates
    listed = store.list_templates("acc_a", 10, None)
    # Then only its own come back
    assert [(t.account_id, t.id) for t in listed] == [("acc_a", "tpl_a1")]


def test_delete_template_removes_it(store: Store) -> None:
    # Given a stored template
    store.put_template(template("acc_a", "tpl_1"))
    # When it is deleted
    deleted = store.delete_template("acc_a", "tpl_1")
    # Then the call reports it and it is gone
    assert deleted is True
    assert store.get_template("acc_a", "tpl_1") is None
    assert store.list_templates("acc_a", 10, None) == []


def test_delete_absent_template_is_false(store: Store) -> None:
    # Given a template deleted once
    store.put_template(template("acc_a", "tpl_1"))
    store.delete_template("acc_a", "tpl_1")
    # When it is deleted again / Then nothing was deleted
    assert store.delete_template("acc_a", "tpl_1") is False
    assert store.delete_template("acc_a", "tpl_never") is False


def test_delete_template_of_another_account_is_false_and_keeps_it(store: Store) -> None:
    # Given a template of account A
    store.put_template(template("acc_a", "tpl_1"))
    # When account B deletes the same id
    deleted = store.delete_template("acc_b", "tpl_1")
    # Then nothing was deleted and A still has it
    assert deleted is False
    assert store.get_template("acc_a", "tpl_1") is not None


# -- jobs -------------------------------------------------------------------------------------------


def test_created_job_roundtrips(store: Store, jobs: JobFactory) -> None:
    # Given a job built with a campaign
    job, messages = jobs.build(chunk_sizes=(2, 1))
    job.campaign_id = "cmp_1"
    # When it is created and read back
    store.create_job(job, messages)
    found = store.get_job(job.account_id, job.id)
    # Then its fields are preserved
    assert found is not None
    assert (found.id, found.account_id, found.kind, found.state) == (
        job.id,
        "acc_a",
        "batch",
        JobState.QUEUED,
    )
    assert found.content == job.content
    assert (found.total, found.chunks, found.campaign_id) == (3, 2, "cmp_1")
    assert found.created_at == job.created_at
    assert (found.started_at, found.finished_at, found.dead_letters) == (None, None, [])


def test_job_and_message_with_optional_parts_unset_roundtrip(store: Store, jobs: JobFactory) -> None:
    # Given a job with no campaign, text body or reply-to, and a message with no name or variables
    job, messages = jobs.build(chunk_sizes=(1,))
    job.content.text = None
    job.content.reply_to = None
    messages[0].name = None
    messages[0].variables = {}
    # When they are created and read back
    store.create_job(job, messages)
    found_job = store.get_job(job.account_id, job.id)
    found_message = store.get_message(job.account_id, messages[0].id)
    # Then the unset parts come back unset
    assert found_job is not None and found_message is not None
    assert found_job.campaign_id is None
    assert found_job.content == job.content
    assert (found_message.name, found_message.variables) == (None, {})


def test_create_job_is_all_or_nothing(store: Store, jobs: JobFactory) -> None:
    # Given a job whose last message repeats the id of the first, so its insert must fail
    job, messages = jobs.build(chunk_sizes=(3,))
    messages[2].id = messages[0].id
    # When it is created
    with pytest.raises(Exception):  # noqa: B017 - the port does not specify the error type
        store.create_job(job, messages)
    # Then neither the job nor any of its messages exists
    assert store.get_job(job.account_id, job.id) is None
    assert store.get_message(job.account_id, messages[0].id) is None
    assert store.get_message(job.account_id, messages[1].id) is None
    assert store.chunk_messages(job.id, 0) == []
    assert job.id not in {job_id for _, job_id in store.active_jobs()}


def test_create_job_with_an_existing_id_is_a_conflict_and_changes_nothing(
    store: Store, jobs: JobFactory
) -> None:
    # Given a job whose first message was already claimed
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [messages[0].id], lease_seconds=60)
    # When the same job id is created again, with other messages (a redelivered ingest record)
    again, other_messages = jobs.build(chunk_sizes=(3,))
    again.id = job.id
    for m in other_messages:
        m.job_id = job.id
    with pytest.raises(Conflict):
        store.create_job(again, other_messages)
    # Then the existing job and its messages are untouched
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.total == 2
    assert [m.id for m in store.chunk_messages(job.id, 0)] == [m.id for m in messages]
    assert store.get_message(job.account_id, messages[0].id).status == MessageStatus.SENDING  # type: ignore[union-attr]


def test_get_job_of_another_account_is_none(store: Store, jobs: JobFactory) -> None:
    # Given a job of account A
    job, _ = jobs.create(account_id="acc_a")
    # When account B asks for it / Then it is not found
    assert store.get_job("acc_b", job.id) is None


def test_get_unknown_job_is_none(store: Store, jobs: JobFactory) -> None:
    # Given some other job
    jobs.create()
    # When an unknown id is asked for / Then there is none
    assert store.get_job("acc_a", "job_unknown") is None


def test_get_job_counts_messages_per_status_after_create(store: Store, jobs: JobFactory) -> None:
    # Given a job of three queued messages
    job, _ = jobs.create(chunk_sizes=(2, 1))
    # When it is read with counts
    found = store.get_job(job.account_id, job.id)
    # Then all three are counted as queued
    assert found is not None
    assert nonzero(found.counts) == {"queued": 3}


def test_get_job_counts_follow_message_progress(store: Store, jobs: JobFactory) -> None:
    # Given a job where one message is sent, one sending and one still queued
    job, messages = jobs.create(chunk_sizes=(3,))
    store.claim_messages(job.id, [messages[0].id, messages[1].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When it is read with counts
    found = store.get_job(job.account_id, job.id)
    # Then each status is counted once
    assert found is not None
    assert nonzero(found.counts) == {"sent": 1, "sending": 1, "queued": 1}


def test_get_job_without_counts_leaves_counts_empty(store: Store, jobs: JobFactory) -> None:
    # Given a job with messages
    job, _ = jobs.create(chunk_sizes=(2,))
    # When it is read without counts
    found = store.get_job(job.account_id, job.id, with_counts=False)
    # Then it is found but its counts are empty
    assert found is not None and found.id == job.id
    assert found.counts == {}


def test_transition_job_from_allowed_state_moves_it(store: Store, jobs: JobFactory) -> None:
    # Given a queued job
    job, _ = jobs.create()
    # When it is moved to paused from queued-or-running
    moved = store.transition_job(job.account_id, job.id, {JobState.QUEUED, JobState.RUNNING}, JobState.PAUSED)
    # Then the returned and the stored job are paused
    assert moved is not None and moved.state == JobState.PAUSED
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.PAUSED


def test_transition_job_from_other_state_returns_none_and_keeps_state(store: Store, jobs: JobFactory) -> None:
    # Given a queued job
    job, _ = jobs.create()
    # When resume (paused -> running) is attempted
    moved = store.transition_job(job.account_id, job.id, {JobState.PAUSED}, JobState.RUNNING)
    # Then nothing happened
    assert moved is None
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.QUEUED


def test_transition_job_of_another_account_returns_none_and_keeps_state(
    store: Store, jobs: JobFactory
) -> None:
    # Given a queued job of account A
    job, _ = jobs.create(account_id="acc_a")
    # When account B tries to stop it
    moved = store.transition_job("acc_b", job.id, {JobState.QUEUED}, JobState.STOPPED)
    # Then nothing happened
    assert moved is None
    found = store.get_job("acc_a", job.id)
    assert found is not None and found.state == JobState.QUEUED


@pytest.mark.parametrize("final", [JobState.COMPLETED, JobState.STOPPED, JobState.EXPIRED])
def test_transition_to_final_state_sets_finished_at(store: Store, jobs: JobFactory, final: JobState) -> None:
    # Given a queued job
    job, _ = jobs.create()
    before = time.time()
    # When it moves to a final state
    moved = store.transition_job(job.account_id, job.id, {JobState.QUEUED}, final)
    # Then it records when it finished
    assert moved is not None and moved.state == final
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.finished_at is not None
    assert found.finished_at >= before - 1


def test_transition_to_non_final_state_leaves_finished_at_unset(store: Store, jobs: JobFactory) -> None:
    # Given a queued job
    job, _ = jobs.create()
    # When it is paused
    store.transition_job(job.account_id, job.id, {JobState.QUEUED}, JobState.PAUSED)
    # Then it has not finished
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.finished_at is None


def test_active_jobs_lists_queued_and_running_jobs_only(store: Store, jobs: JobFactory) -> None:
    # Given jobs in every reachable state
    queued, _ = jobs.create(account_id="acc_a")
    running, running_msgs = jobs.create(account_id="acc_b")
    store.claim_messages(running.id, [running_msgs[0].id], LONG_LEASE)
    scheduled, _ = jobs.create(state=JobState.SCHEDULED, message_status=MessageStatus.SCHEDULED)
    paused, _ = jobs.create()
    store.transition_job(paused.account_id, paused.id, {JobState.QUEUED}, JobState.PAUSED)
    stopped, _ = jobs.create()
    store.transition_job(stopped.account_id, stopped.id, {JobState.QUEUED}, JobState.STOPPED)
    mine = {j.id for j in (queued, running, scheduled, paused, stopped)}
    # When the active jobs are listed
    active = {(account_id, job_id) for account_id, job_id in store.active_jobs() if job_id in mine}
    # Then only the queued and the running one are there, with their accounts
    assert active == {("acc_a", queued.id), ("acc_b", running.id)}


def test_record_dead_letter_appends_entries_visible_on_the_job(store: Store, jobs: JobFactory) -> None:
    # Given a job
    job, _ = jobs.create(chunk_sizes=(1, 1))
    # When two chunks are recorded as dead letters
    store.record_dead_letter(job.id, 1, "relay refused")
    store.record_dead_letter(job.id, 0, "timed out")
    # Then both appear on the job, in order
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    assert [(d["chunk"], d["reason"]) for d in found.dead_letters] == [(1, "relay refused"), (0, "timed out")]


# -- messages ---------------------------------------------------------------------------------------


def test_message_roundtrips_via_get_message(store: Store, jobs: JobFactory) -> None:
    # Given a created job
    job, messages = jobs.create(chunk_sizes=(2, 2))
    original = messages[3]
    # When one of its messages is read
    found = store.get_message(job.account_id, original.id)
    # Then its fields are preserved
    assert found is not None
    assert (found.id, found.job_id, found.account_id) == (original.id, job.id, "acc_a")
    assert (found.seq, found.chunk, found.email, found.name) == (3, 1, "user3@example.com", "User 3")
    assert found.variables == {"name": "User 3", "code": 3, "tags": ["a", "b"]}
    assert (found.status, found.attempts, found.error_code) == (MessageStatus.QUEUED, 0, None)


def test_get_message_of_another_account_is_none(store: Store, jobs: JobFactory) -> None:
    # Given a message of account A
    _, messages = jobs.create(account_id="acc_a")
    # When account B asks for it / Then it is not found
    assert store.get_message("acc_b", messages[0].id) is None


def test_chunk_messages_returns_the_chunks_messages_in_seq_order(store: Store, jobs: JobFactory) -> None:
    # Given a job of two chunks whose messages are handed over shuffled
    job, messages = jobs.build(chunk_sizes=(4, 3))
    random.Random(7).shuffle(messages)
    store.create_job(job, messages)
    # When each chunk's messages are read
    first = store.chunk_messages(job.id, 0)
    second = store.chunk_messages(job.id, 1)
    # Then each holds only its own messages, in seq order
    assert [m.seq for m in first] == [0, 1, 2, 3]
    assert [m.seq for m in second] == [4, 5, 6]
    assert {m.chunk for m in second} == {1}


def test_claim_moves_queued_messages_to_sending(store: Store, jobs: JobFactory) -> None:
    # Given a job of three queued messages
    job, messages = jobs.create(chunk_sizes=(3,))
    # When two are claimed
    claimed = store.claim_messages(job.id, [messages[0].id, messages[1].id], LONG_LEASE)
    # Then exactly those two are returned and are sending; the third is untouched
    assert sorted(claimed) == sorted([messages[0].id, messages[1].id])
    assert [status_of(store, m) for m in messages] == [
        MessageStatus.SENDING,
        MessageStatus.SENDING,
        MessageStatus.QUEUED,
    ]


def test_claiming_again_claims_nothing(store: Store, jobs: JobFactory) -> None:
    # Given a chunk whose messages were claimed (its queue message was then redelivered)
    job, messages = jobs.create(chunk_sizes=(2,))
    ids = [m.id for m in messages]
    store.claim_messages(job.id, ids, LONG_LEASE)
    # When the redelivered chunk claims the same messages within the lease
    claimed = store.claim_messages(job.id, ids, LONG_LEASE)
    # Then it gets none of them
    assert claimed == []


def test_claim_retakes_a_sending_message_whose_lease_expired(store: Store, jobs: JobFactory) -> None:
    # Given a message claimed a moment ago by a worker that then died
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    time.sleep(0.05)
    # When it is claimed again with a lease shorter than its age
    claimed = store.claim_messages(job.id, [messages[0].id], 0)
    # Then it is claimed again and still sending
    assert claimed == [messages[0].id]
    assert status_of(store, messages[0]) == MessageStatus.SENDING


def test_claim_does_not_retake_a_finished_message(store: Store, jobs: JobFactory) -> None:
    # Given a message that was sent
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    time.sleep(0.05)
    # When it is claimed, even with an expired lease
    claimed = store.claim_messages(job.id, [messages[0].id], 0)
    # Then nothing is claimed and it stays sent
    assert claimed == []
    assert status_of(store, messages[0]) == MessageStatus.SENT


def test_claim_ignores_messages_of_another_job(store: Store, jobs: JobFactory) -> None:
    # Given two jobs
    job_a, _ = jobs.create()
    _, messages_b = jobs.create()
    # When job A's chunk claims job B's message ids
    claimed = store.claim_messages(job_a.id, [m.id for m in messages_b], LONG_LEASE)
    # Then none is claimed and B's messages stay queued
    assert claimed == []
    assert {status_of(store, m) for m in messages_b} == {MessageStatus.QUEUED}


def test_claim_moves_a_queued_job_to_running(store: Store, jobs: JobFactory) -> None:
    # Given a queued job
    job, messages = jobs.create(chunk_sizes=(2,))
    # When one of its messages is claimed
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    # Then the job is running and records when it started
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    assert found.state == JobState.RUNNING
    assert found.started_at is not None


def test_finish_message_from_sending_sets_status_and_error(store: Store, jobs: JobFactory) -> None:
    # Given a claimed message
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    # When it finishes as failed
    finished = store.finish_message(messages[0].id, MessageStatus.FAILED, "550", "mailbox unavailable")
    # Then the call reports it and the message carries the outcome
    assert finished is True
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None
    assert (found.status, found.error_code, found.error_message) == (
        MessageStatus.FAILED,
        "550",
        "mailbox unavailable",
    )


def test_finish_message_not_in_sending_is_false(store: Store, jobs: JobFactory) -> None:
    # Given a queued (unclaimed) message
    _, messages = jobs.create(chunk_sizes=(1,))
    # When it is finished
    finished = store.finish_message(messages[0].id, MessageStatus.SENT)
    # Then nothing happened
    assert finished is False
    assert status_of(store, messages[0]) == MessageStatus.QUEUED


def test_second_finish_is_false_and_keeps_the_first_outcome(store: Store, jobs: JobFactory) -> None:
    # Given a message claimed and sent
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When it is finished a second time
    finished = store.finish_message(messages[0].id, MessageStatus.FAILED, "550", "late")
    # Then the second call is refused and the first outcome stays
    assert finished is False
    assert status_of(store, messages[0]) == MessageStatus.SENT


def test_release_message_returns_it_to_queued_counting_the_attempt(store: Store, jobs: JobFactory) -> None:
    # Given a claimed message
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    # When it is released after a transient failure
    released = store.release_message(messages[0].id, "421 try later")
    # Then it is queued again with one attempt counted
    assert released is True
    [message] = store.chunk_messages(job.id, 0)
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)
    assert message.error_message == "421 try later"


def test_released_message_can_be_claimed_again(store: Store, jobs: JobFactory) -> None:
    # Given a message claimed then released
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.release_message(messages[0].id, "421 try later")
    # When the retried chunk claims it, within the first claim's lease
    claimed = store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    # Then it is claimed
    assert claimed == [messages[0].id]


def test_release_message_not_in_sending_is_false(store: Store, jobs: JobFactory) -> None:
    # Given a message claimed and sent
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When it is released
    released = store.release_message(messages[0].id, "late")
    # Then nothing happened
    assert released is False
    assert status_of(store, messages[0]) == MessageStatus.SENT


def test_cancel_unsent_cancels_queued_but_not_sending_or_sent(store: Store, jobs: JobFactory) -> None:
    # Given a job with two queued messages, one sending and one sent
    job, messages = jobs.create(chunk_sizes=(4,))
    store.claim_messages(job.id, [messages[2].id, messages[3].id], LONG_LEASE)
    store.finish_message(messages[3].id, MessageStatus.SENT)
    # When its unsent messages are cancelled
    cancelled = store.cancel_unsent(job.id)
    # Then only the two queued ones are cancelled and counted
    assert cancelled == 2
    assert [status_of(store, m) for m in messages] == [
        MessageStatus.CANCELLED,
        MessageStatus.CANCELLED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
    ]


def test_cancel_unsent_cancels_scheduled_messages(store: Store, jobs: JobFactory) -> None:
    # Given a scheduled job of scheduled messages
    job, messages = jobs.create(
        chunk_sizes=(2,), state=JobState.SCHEDULED, message_status=MessageStatus.SCHEDULED
    )
    # When its unsent messages are cancelled
    cancelled = store.cancel_unsent(job.id)
    # Then both are cancelled
    assert cancelled == 2
    assert {status_of(store, m) for m in messages} == {MessageStatus.CANCELLED}


def test_complete_job_if_done_is_false_while_a_message_is_queued(store: Store, jobs: JobFactory) -> None:
    # Given a job with one message sent and one still queued
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When completion is checked
    completed = store.complete_job_if_done(job.id)
    # Then the job is not completed
    assert completed is False
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.RUNNING


def test_complete_job_if_done_is_false_while_a_message_is_sending(store: Store, jobs: JobFactory) -> None:
    # Given a job with one message sent and one still sending
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [m.id for m in messages], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When completion is checked
    completed = store.complete_job_if_done(job.id)
    # Then the job is not completed
    assert completed is False
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.RUNNING


def test_complete_job_if_done_completes_exactly_once(store: Store, jobs: JobFactory) -> None:
    # Given a job whose messages all reached a terminal status
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [m.id for m in messages], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    store.finish_message(messages[1].id, MessageStatus.FAILED, "550", "no such user")
    # When completion is checked twice (two workers finishing at once)
    first = store.complete_job_if_done(job.id)
    second = store.complete_job_if_done(job.id)
    # Then exactly the first call completed it, and it records when it finished
    assert (first, second) == (True, False)
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    assert found.state == JobState.COMPLETED
    assert found.finished_at is not None


def test_complete_job_if_done_does_not_complete_a_stopped_job(store: Store, jobs: JobFactory) -> None:
    # Given a job that was stopped and had its unsent messages cancelled
    job, _ = jobs.create(chunk_sizes=(2,))
    store.transition_job(job.account_id, job.id, {JobState.QUEUED}, JobState.STOPPED)
    store.cancel_unsent(job.id)
    # When completion is checked
    completed = store.complete_job_if_done(job.id)
    # Then it stays stopped
    assert completed is False
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.STOPPED


def test_pending_chunks_lists_chunks_with_queued_or_sending_messages(store: Store, jobs: JobFactory) -> None:
    # Given chunk 0 fully sent, chunk 1 with a message still sending, chunk 2 untouched, chunk 3 failed
    job, messages = jobs.create(chunk_sizes=(2, 2, 1, 1))
    c0a, c0b, c1a, c1b, _c2, c3 = messages
    store.claim_messages(job.id, [c0a.id, c0b.id, c1a.id, c1b.id, c3.id], LONG_LEASE)
    for m in (c0a, c0b, c1a):
        store.finish_message(m.id, MessageStatus.SENT)
    store.finish_message(c3.id, MessageStatus.FAILED, "550", "no such user")
    # When the pending chunks are listed
    pending = store.pending_chunks(job.id)
    # Then only chunks 1 and 2 still have work
    assert sorted(pending) == [1, 2]


# -- concurrency: conditional updates hold under racing workers --------------------------------------


def run_together(n: int, work: Callable[[], T]) -> list[T]:
    """Run `work` on n threads released at the same instant; return their results."""
    barrier = threading.Barrier(n)

    def task() -> T:
        barrier.wait()
        return work()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result() for f in [pool.submit(task) for _ in range(n)]]


def test_racing_claims_hand_each_message_to_one_worker(store: Store, jobs: JobFactory) -> None:
    # Given chunks of twenty queued messages, each redelivered to eight workers at once (several
    # rounds: a race is probabilistic, rounds make a missing condition show up reliably)
    for _ in range(5):
        job, messages = jobs.create(chunk_sizes=(20,))
        ids = [m.id for m in messages]
        # When they all claim the whole chunk simultaneously
        results = run_together(
            8, lambda job_id=job.id, ids=ids: store.claim_messages(job_id, ids, LONG_LEASE)
        )
        # Then every message was claimed exactly once
        claimed = [message_id for result in results for message_id in result]
        assert sorted(claimed) == sorted(ids)


def test_racing_completion_checks_complete_the_job_once(store: Store, jobs: JobFactory) -> None:
    for _ in range(5):  # several rounds: a race is probabilistic
        # Given a job whose messages are all sent
        job, messages = jobs.create(chunk_sizes=(2,))
        store.claim_messages(job.id, [m.id for m in messages], LONG_LEASE)
        for m in messages:
            store.finish_message(m.id, MessageStatus.SENT)
        # When eight workers check completion at once
        results = run_together(8, lambda job_id=job.id: store.complete_job_if_done(job_id))
        # Then exactly one of them completed it
        assert results.count(True) == 1


# -- accounts -------------------------------------------------------------------------------------


def test_account_preferences_roundtrip(store: Store) -> None:
    store.put_account(
        Account("acc_a", default_provider="relay", sender_domains=["acme.test", "mail.acme.test"])
    )
    assert store.get_account("acc_a") == Account("acc_a", "relay", ["acme.test", "mail.acme.test"])


def test_account_preferences_left_unset_come_back_unset(store: Store) -> None:
    store.put_account(Account("acc_a"))
    assert store.get_account("acc_a") == Account("acc_a", None, None)


def test_an_unknown_account_has_no_preferences(store: Store) -> None:
    store.put_account(Account("acc_a", default_provider="relay"))
    assert store.get_account("acc_b") is None


def test_putting_an_account_again_replaces_its_preferences(store: Store) -> None:
    store.put_account(Account("acc_a", default_provider="relay"))
    store.put_account(Account("acc_a", default_provider="ses", sender_domains=[]))
    assert store.get_account("acc_a") == Account("acc_a", "ses", [])


# -- delivery status after sending -------------------------------------------------------------------


def _sent(store: Store, jobs: JobFactory) -> tuple[Job, list[Message]]:
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [m.id for m in messages], lease_seconds=60)
    for m in messages:
        store.finish_message(m.id, MessageStatus.SENT)
    return job, messages


def test_update_delivery_status_moves_a_sent_message_forward(store: Store, jobs: JobFactory) -> None:
    job, messages = _sent(store, jobs)
    moved = store.update_delivery_status(
        job.account_id,
        messages[0].id,
        MessageStatus.BOUNCED,
        [MessageStatus.SENT],
        "bounced",
        "550 user unknown",
    )
    assert moved is True
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None
    assert (found.status, found.error_code, found.error_message) == (
        MessageStatus.BOUNCED,
        "bounced",
        "550 user unknown",
    )


def test_update_delivery_status_refuses_a_state_it_may_not_follow(store: Store, jobs: JobFactory) -> None:
    job, messages = _sent(store, jobs)
    store.update_delivery_status(job.account_id, messages[0].id, MessageStatus.BOUNCED, [MessageStatus.SENT])
    # A late "delivered" may only follow sent or deferred: the bounce stands
    assert not store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT, MessageStatus.DEFERRED]
    )
    assert store.get_message(job.account_id, messages[0].id).status == MessageStatus.BOUNCED  # type: ignore[union-attr]


def test_update_delivery_status_is_scoped_by_account(store: Store, jobs: JobFactory) -> None:
    job, messages = _sent(store, jobs)
    assert not store.update_delivery_status(
        "acc_other", messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    assert store.get_message(job.account_id, messages[0].id).status == MessageStatus.SENT  # type: ignore[union-attr]


def test_update_delivery_status_keeps_the_job_counts_right(store: Store, jobs: JobFactory) -> None:
    job, messages = _sent(store, jobs)
    store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    assert (found.counts.get("sent"), found.counts.get("delivered")) == (1, 1)


def test_update_delivery_status_of_an_unknown_message_is_false(store: Store, jobs: JobFactory) -> None:
    job, _ = _sent(store, jobs)
    assert not store.update_delivery_status(
        job.account_id, "msg_missing", MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
