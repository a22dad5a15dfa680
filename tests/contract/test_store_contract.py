"""Contract of the Store port (ports.Store): keys, templates, jobs and the per-message state machine."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from mailsage.domain.models import (
    IDEMPOTENCY_LEASE_SECONDS,
    Account,
    IdempotencyRecord,
    Job,
    JobState,
    Message,
    MessageQuery,
    MessageStatus,
    Suppression,
    Template,
    new_id,
)
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


def test_claiming_one_message_at_a_time_starts_the_job_and_claims_each_once(
    store: Store, jobs: JobFactory
) -> None:
    # Given a queued job of three messages, and another job
    job, messages = jobs.create(chunk_sizes=(3,))
    other, _ = jobs.create()
    # When each message is claimed on its own (as the sender does), twice, and once by the other job
    first = [store.claim_messages(job.id, [m.id], LONG_LEASE) for m in messages]
    again = [store.claim_messages(job.id, [m.id], LONG_LEASE) for m in messages]
    foreign = store.claim_messages(other.id, [messages[0].id], 0)
    # Then each was claimed once, by its own job, and the job is running
    assert first == [[m.id] for m in messages]
    assert again == [[], [], []] and foreign == []
    assert {status_of(store, m) for m in messages} == {MessageStatus.SENDING}
    assert store.get_job(job.account_id, job.id).state == JobState.RUNNING  # type: ignore[union-attr]
    assert store.get_job(other.account_id, other.id).state == JobState.QUEUED  # type: ignore[union-attr]


def test_finish_and_claim_records_a_send_and_claims_the_next_message(store: Store, jobs: JobFactory) -> None:
    # Given a chunk of three, the first claimed (being sent), and a second chunk
    job, messages = jobs.create(chunk_sizes=(3, 1))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    # When the first is recorded sent together with claiming the second
    result = store.finish_and_claim(messages[0].id, MessageStatus.SENT, messages[1].id, LONG_LEASE)
    # Then both happened; the second is sending with no attempt counted, the third untouched
    assert result == (True, True)
    first, second, third = (store.get_message(job.account_id, m.id) for m in messages[:3])
    assert (first.status, first.attempts) == (MessageStatus.SENT, 1)  # type: ignore[union-attr]
    assert (second.status, second.attempts) == (MessageStatus.SENDING, 0)  # type: ignore[union-attr]
    assert third.status == MessageStatus.QUEUED  # type: ignore[union-attr]
    # And across chunks, and with a next message someone else holds, each part stands on its own
    assert store.finish_and_claim(messages[1].id, MessageStatus.SENT, messages[3].id, LONG_LEASE) == (
        True,
        True,
    )
    store.claim_messages(job.id, [messages[2].id], LONG_LEASE)
    assert store.finish_and_claim(messages[3].id, MessageStatus.SENT, messages[2].id, LONG_LEASE) == (
        True,
        False,
    )
    # And a message not in `sending` is not finished again, while the next is still claimed if free
    other, others = jobs.create(chunk_sizes=(2,))
    assert store.finish_and_claim(others[0].id, MessageStatus.SENT, others[1].id, LONG_LEASE) == (False, True)
    assert status_of(store, others[0]) == MessageStatus.QUEUED


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


# -- new message fields: subject, created_at, sent_at, delivered_at, the event log --------------------


def _events(message: Message | None) -> list[tuple[str, str]]:
    assert message is not None
    return [(e["status"], e["log"]) for e in message.events]


def test_job_schedule_retention_and_full_content_roundtrip(store: Store, jobs: JobFactory) -> None:
    # Given a scheduled job with every optional field of the job and of its content set
    job, messages = jobs.build(
        chunk_sizes=(2,), state=JobState.SCHEDULED, message_status=MessageStatus.SCHEDULED
    )
    job.first_attempt_at, job.expires_at = job.created_at + 3600, job.created_at + 7200
    job.retention_metadata_days, job.retention_data_days = 30, 7
    job.content.amp = "<html amp4email>{{ name }}</html>"
    job.content.attachments = [
        {
            "file_name": "a.pdf",
            "content_type": "application/pdf",
            "data": "JVBERi0=",
            "disposition": "attachment",
        },
        {
            "file_name": "logo.png",
            "content_type": "image/png",
            "data": "iVBORw==",
            "disposition": "inline",
            "content_id": "logo",
        },
    ]
    job.content.headers = {"X-Campaign": "spring"}
    job.content.tags = ["billing", "eu"]
    job.content.sandbox_result = "deliver"
    job.content.tracking = {"open": True, "click": False}
    job.content.provider = "relay"
    job.content.template_id = "tpl_1"
    # When it is created and read back
    store.create_job(job, messages)
    found = store.get_job(job.account_id, job.id)
    # Then every field is preserved
    assert found is not None
    assert found.state == JobState.SCHEDULED
    assert found.content == job.content
    assert (found.first_attempt_at, found.expires_at) == (job.first_attempt_at, job.expires_at)
    assert (found.retention_metadata_days, found.retention_data_days) == (30, 7)
    assert nonzero(found.counts) == {"scheduled": 2}


def test_message_subject_and_creation_time_roundtrip(store: Store, jobs: JobFactory) -> None:
    # Given messages with rendered subjects
    job, messages = jobs.build(chunk_sizes=(2,))
    for m in messages:
        m.subject = f"Hello {m.name} – ünïcode"
    store.create_job(job, messages)
    # When they are read / Then the subject is kept, and created_at is the job's creation time
    found = store.get_message(job.account_id, messages[1].id)
    assert found is not None
    assert (found.subject, found.created_at) == ("Hello User 1 – ünïcode", job.created_at)
    assert [(m.subject, m.created_at) for m in store.chunk_messages(job.id, 0)] == [
        (m.subject, job.created_at) for m in messages
    ]
    # And a message nothing happened to yet has no events and no times
    assert (found.events, found.sent_at, found.delivered_at) == ([], None, None)


def test_finish_as_sent_sets_sent_at_and_logs_the_event(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    before = time.time()
    store.finish_message(messages[0].id, MessageStatus.SENT)
    after = time.time()
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and found.sent_at is not None
    assert before <= found.sent_at <= after
    assert found.delivered_at is None
    assert _events(found) == [("sent", "accepted by the relay")]
    assert found.events[0]["time"] == found.sent_at


def test_release_then_failure_log_both_attempts_in_order(store: Store, jobs: JobFactory) -> None:
    # Given a message deferred once, then failed for good
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.release_message(messages[0].id, "421 try later")
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.FAILED, "550", "mailbox unavailable")
    # Then both attempts are logged, in order, and it was never sent
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None
    assert _events(found) == [("deferred", "421 try later"), ("failed", "mailbox unavailable")]
    assert found.events[0]["time"] <= found.events[1]["time"]
    assert (found.attempts, found.sent_at) == (2, None)


def test_delivery_status_updates_log_events_and_set_delivered_at(store: Store, jobs: JobFactory) -> None:
    # Given a sent message
    job, messages = _sent(store, jobs)
    # When it is delivered, then reported as complained with a detail
    before = time.time()
    store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    after = time.time()
    store.update_delivery_status(
        job.account_id,
        messages[0].id,
        MessageStatus.COMPLAINED,
        [MessageStatus.DELIVERED],
        "complained",
        "complaint: abuse",
    )
    # And a refused update logs nothing
    store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    # Then every accepted change is in the log, after the send, and delivered_at is set
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and found.delivered_at is not None
    assert before <= found.delivered_at <= after
    assert _events(found) == [
        ("sent", "accepted by the relay"),
        ("delivered", "delivered"),
        ("complained", "complaint: abuse"),
    ]
    # And the other message, only sent, has no delivery time
    other = store.get_message(job.account_id, messages[1].id)
    assert other is not None and other.sent_at is not None and other.delivered_at is None


def test_every_read_returns_the_same_message(store: Store, jobs: JobFactory) -> None:
    # Given a chunk whose messages went different ways (sent and delivered, deferred, untouched)
    job, messages = jobs.create(chunk_sizes=(3,))
    store.claim_messages(job.id, [messages[0].id, messages[1].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    store.release_message(messages[1].id, "451 greylisted")
    # When they are read one by one, as a chunk and as a listing
    one_by_one = [store.get_message(job.account_id, m.id) for m in messages]
    as_chunk = store.chunk_messages(job.id, 0)
    listed, _ = store.list_messages(job.account_id, MessageQuery())
    # Then each read returns the same messages, events and times included
    assert as_chunk == one_by_one
    assert sorted(listed, key=lambda m: m.seq) == one_by_one
    assert [len(m.events) for m in as_chunk] == [2, 1, 0]  # type: ignore[union-attr]


# -- messages created suppressed -----------------------------------------------------------------------


def _with_suppressed(jobs: JobFactory, sendable: int, suppressed: int) -> tuple[Job, list[Message]]:
    """A job whose last `suppressed` recipients were suppressed at submission (chunk -1)."""
    job, messages = jobs.build(chunk_sizes=(sendable + suppressed,))
    for m in messages[sendable:]:
        m.status, m.chunk = MessageStatus.SUPPRESSED, -1
        m.error_code, m.error_message = "suppressed", "the recipient is on the suppression list"
    job.chunks = 1 if sendable else 0
    jobs.store.create_job(job, messages)
    return job, messages


def test_messages_created_suppressed_are_counted_listed_and_never_pending(
    store: Store, jobs: JobFactory
) -> None:
    # Given a job of two sendable recipients and one suppressed at submission
    job, messages = _with_suppressed(jobs, sendable=2, suppressed=1)
    # Then the job counts it, it is readable and listed, but no chunk to send holds it
    found = store.get_job(job.account_id, job.id)
    assert found is not None and nonzero(found.counts) == {"queued": 2, "suppressed": 1}
    assert status_of(store, messages[2]) == MessageStatus.SUPPRESSED
    assert [m.id for m in store.chunk_messages(job.id, 0)] == [messages[0].id, messages[1].id]
    assert store.pending_chunks(job.id) == [0]
    listed, _ = store.list_messages(job.account_id, MessageQuery(statuses=("suppressed",)))
    assert [m.id for m in listed] == [messages[2].id]
    # And once the others are sent the job completes
    store.claim_messages(job.id, [messages[0].id, messages[1].id], LONG_LEASE)
    for m in messages[:2]:
        store.finish_message(m.id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id) is True


def test_a_job_of_suppressed_recipients_only_completes_at_once(store: Store, jobs: JobFactory) -> None:
    job, _ = _with_suppressed(jobs, sendable=0, suppressed=2)
    assert store.pending_chunks(job.id) == []
    assert store.complete_job_if_done(job.id) is True
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.COMPLETED


# -- scheduled jobs: start, cancel a message, expire -----------------------------------------------------


def _scheduled(jobs: JobFactory, chunk_sizes: tuple[int, ...] = (2, 1)) -> tuple[Job, list[Message]]:
    return jobs.create(
        chunk_sizes=chunk_sizes, state=JobState.SCHEDULED, message_status=MessageStatus.SCHEDULED
    )


def test_start_scheduled_job_queues_the_job_and_its_messages_once(store: Store, jobs: JobFactory) -> None:
    # Given a scheduled job of three scheduled messages, one of which was cancelled
    job, messages = _scheduled(jobs)
    store.cancel_message(job.account_id, messages[1].id)
    assert store.pending_chunks(job.id) == []
    # When it is started
    started = store.start_scheduled_job(job.id)
    # Then the job and its scheduled messages are queued (the cancelled one stays cancelled), its
    # chunks are pending, and it is active
    assert started is True
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.QUEUED
    assert [status_of(store, m) for m in messages] == [
        MessageStatus.QUEUED,
        MessageStatus.CANCELLED,
        MessageStatus.QUEUED,
    ]
    assert store.pending_chunks(job.id) == [0, 1]
    assert (job.account_id, job.id) in store.active_jobs()
    # And starting it again does nothing
    assert store.start_scheduled_job(job.id) is False


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.STOPPED])
def test_start_scheduled_job_of_a_job_not_scheduled_is_false(
    store: Store, jobs: JobFactory, state: JobState
) -> None:
    # Given a job that is not scheduled (whose messages are still scheduled, to see they stay)
    job, messages = jobs.create(chunk_sizes=(2,), state=state, message_status=MessageStatus.SCHEDULED)
    # When it is started / Then nothing changes
    assert store.start_scheduled_job(job.id) is False
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == state
    assert {status_of(store, m) for m in messages} == {MessageStatus.SCHEDULED}
    assert store.start_scheduled_job("job_unknown") is False


def test_racing_starts_start_a_scheduled_job_once(store: Store, jobs: JobFactory) -> None:
    for _ in range(3):  # several rounds: a race is probabilistic
        job, messages = _scheduled(jobs, chunk_sizes=(5, 5))
        results = run_together(8, lambda job_id=job.id: store.start_scheduled_job(job_id))
        assert results.count(True) == 1
        found = store.get_job(job.account_id, job.id)
        assert found is not None and nonzero(found.counts) == {"queued": 10}


def test_complete_job_if_done_completes_a_scheduled_job_with_nothing_left(
    store: Store, jobs: JobFactory
) -> None:
    # Given a scheduled job: not done while a message is scheduled
    job, messages = _scheduled(jobs, chunk_sizes=(2,))
    assert store.complete_job_if_done(job.id) is False
    # When every message is cancelled / Then it completes
    for m in messages:
        store.cancel_message(job.account_id, m.id)
    assert store.complete_job_if_done(job.id) is True
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.state == JobState.COMPLETED and found.finished_at is not None


def test_cancel_message_cancels_a_scheduled_message_once(store: Store, jobs: JobFactory) -> None:
    job, messages = _scheduled(jobs)
    assert store.cancel_message(job.account_id, messages[0].id) is True
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and found.status == MessageStatus.CANCELLED
    assert _events(found) == [("cancelled", "cancelled before its first attempt")]
    # A second cancel is refused and logs nothing more; the other messages are untouched
    assert store.cancel_message(job.account_id, messages[0].id) is False
    assert len(store.get_message(job.account_id, messages[0].id).events) == 1  # type: ignore[union-attr]
    assert status_of(store, messages[1]) == MessageStatus.SCHEDULED


def test_cancel_message_refuses_queued_foreign_and_unknown_messages(store: Store, jobs: JobFactory) -> None:
    job, queued = jobs.create(chunk_sizes=(1,))
    scheduled_job, scheduled = _scheduled(jobs)
    assert store.cancel_message(job.account_id, queued[0].id) is False
    assert store.cancel_message("acc_other", scheduled[0].id) is False
    assert store.cancel_message(job.account_id, "msg_unknown") is False
    assert status_of(store, queued[0]) == MessageStatus.QUEUED
    assert status_of(store, scheduled[0]) == MessageStatus.SCHEDULED


def test_expire_unsent_expires_queued_and_scheduled_messages_only(store: Store, jobs: JobFactory) -> None:
    # Given a job with two queued messages, one sending and one sent
    job, messages = jobs.create(chunk_sizes=(2, 2))
    store.claim_messages(job.id, [messages[2].id, messages[3].id], LONG_LEASE)
    store.finish_message(messages[3].id, MessageStatus.SENT)
    # When it expires
    expired = store.expire_unsent(job.id)
    # Then only the queued ones expired, each with an event; and again there is nothing to expire
    assert expired == 2
    assert [status_of(store, m) for m in messages] == [
        MessageStatus.EXPIRED,
        MessageStatus.EXPIRED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
    ]
    assert _events(store.get_message(job.account_id, messages[0].id)) == [
        ("expired", "not sent before the schedule expired")
    ]
    assert _events(store.get_message(job.account_id, messages[2].id)) == []
    assert store.expire_unsent(job.id) == 0
    # And a scheduled job's messages expire too
    scheduled_job, _ = _scheduled(jobs)
    assert store.expire_unsent(scheduled_job.id) == 3
    found = store.get_job(scheduled_job.account_id, scheduled_job.id)
    assert found is not None and nonzero(found.counts) == {"expired": 3}


# -- listing messages ------------------------------------------------------------------------------------

T0 = 1_700_000_000.123456


def _job_at(
    jobs: JobFactory,
    created_at: float,
    chunk_sizes: tuple[int, ...] = (2,),
    account_id: str = "acc_a",
    from_addr: str | None = None,
    tags: list[str] | None = None,
    subjects: list[str] | None = None,
) -> tuple[Job, list[Message]]:
    job, messages = jobs.build(account_id=account_id, chunk_sizes=chunk_sizes)
    job.created_at = job.updated_at = created_at
    if from_addr is not None:
        job.content.from_addr = from_addr
    if tags is not None:
        job.content.tags = tags
    for i, m in enumerate(messages):
        m.created_at = created_at
        m.subject = subjects[i] if subjects else f"Hello {m.name}"
    jobs.store.create_job(job, messages)
    return job, messages


def _newest_first(*groups: tuple[Job, list[Message]]) -> list[str]:
    pairs = [(job.created_at, m.id) for job, messages in groups for m in messages]
    return [message_id for _, message_id in sorted(pairs, reverse=True)]


def _ids(store: Store, account_id: str = "acc_a", **query: object) -> list[str]:
    messages, _ = store.list_messages(account_id, MessageQuery(**query))  # type: ignore[arg-type]
    return [m.id for m in messages]


def test_list_messages_is_newest_first_then_by_id(store: Store, jobs: JobFactory) -> None:
    # Given jobs created at different times (one of several chunks), out of order
    middle = _job_at(jobs, T0 + 10, chunk_sizes=(2, 3))
    oldest = _job_at(jobs, T0)
    newest = _job_at(jobs, T0 + 20, chunk_sizes=(1,))
    # When the account's messages are listed
    listed, more = store.list_messages("acc_a", MessageQuery())
    # Then they come newest first, ties (one job's messages) by descending id, nothing more
    assert [m.id for m in listed] == _newest_first(oldest, middle, newest)
    assert more is False
    assert listed[0].created_at == T0 + 20 and listed[0].subject == "Hello User 0"


def test_list_messages_is_scoped_by_account(store: Store, jobs: JobFactory) -> None:
    mine = _job_at(jobs, T0)
    theirs = _job_at(jobs, T0 + 1, account_id="acc_b")
    assert _ids(store, "acc_a") == _newest_first(mine)
    assert _ids(store, "acc_b") == _newest_first(theirs)
    assert _ids(store, "acc_a", message_id=theirs[1][0].id) == []
    assert _ids(store, "acc_c") == []


def test_list_messages_filters_by_status(store: Store, jobs: JobFactory) -> None:
    job, messages = _job_at(jobs, T0, chunk_sizes=(2, 2))
    store.claim_messages(job.id, [messages[0].id, messages[1].id, messages[2].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    store.finish_message(messages[2].id, MessageStatus.FAILED, "550", "no such user")
    assert set(_ids(store, statuses=("sent", "failed"))) == {messages[0].id, messages[2].id}
    assert _ids(store, statuses=("queued",)) == [messages[3].id]
    assert _ids(store, statuses=("sending",)) == [messages[1].id]
    assert _ids(store, statuses=("bounced",)) == []


def test_list_messages_filters_by_recipient_exactly_ignoring_case(store: Store, jobs: JobFactory) -> None:
    job, messages = _job_at(jobs, T0, chunk_sizes=(3,))
    assert _ids(store, recipient="USER1@Example.COM") == [messages[1].id]
    assert _ids(store, recipient="user1@example") == []  # not a substring match


def test_list_messages_filters_by_part_of_the_sender(store: Store, jobs: JobFactory) -> None:
    acme = _job_at(jobs, T0, from_addr="Acme Billing <billing@acme.test>")
    other = _job_at(jobs, T0 + 1, from_addr="News <news@other.test>")
    assert _ids(store, sender="ACME.test") == _newest_first(acme)
    assert _ids(store, sender="news@") == _newest_first(other)
    assert _ids(store, sender="nobody") == []


def test_list_messages_filters_by_part_of_the_subject_ignoring_case(store: Store, jobs: JobFactory) -> None:
    _, messages = _job_at(
        jobs, T0, chunk_sizes=(3,), subjects=["Your invoice 42", "Welcome aboard", "Invoice 43"]
    )
    assert set(_ids(store, subject="INVOICE")) == {messages[0].id, messages[2].id}
    assert _ids(store, subject="aboard") == [messages[1].id]


def test_list_messages_filters_by_message_id(store: Store, jobs: JobFactory) -> None:
    _, messages = _job_at(jobs, T0, chunk_sizes=(2, 2))
    assert _ids(store, message_id=messages[3].id) == [messages[3].id]
    assert _ids(store, message_id=messages[3].id, statuses=("sent",)) == []
    assert _ids(store, message_id="msg_unknown") == []


def test_list_messages_filters_by_all_of_the_tags(store: Store, jobs: JobFactory) -> None:
    both = _job_at(jobs, T0, tags=["billing", "eu"])
    billing = _job_at(jobs, T0 + 1, tags=["billing"])
    _job_at(jobs, T0 + 2)
    assert _ids(store, tags=("billing",)) == _newest_first(both, billing)
    assert _ids(store, tags=("billing", "eu")) == _newest_first(both)
    assert _ids(store, tags=("eu", "us")) == []


def test_list_messages_filters_by_creation_time_inclusive(store: Store, jobs: JobFactory) -> None:
    first = _job_at(jobs, T0)
    second = _job_at(jobs, T0 + 10)
    third = _job_at(jobs, T0 + 20)
    assert _ids(store, from_time=T0 + 10) == _newest_first(second, third)
    assert _ids(store, to_time=T0 + 10) == _newest_first(first, second)
    assert _ids(store, from_time=T0 + 10, to_time=T0 + 10) == _newest_first(second)
    assert _ids(store, from_time=T0 + 5, to_time=T0 + 6) == []


def test_list_messages_combines_filters(store: Store, jobs: JobFactory) -> None:
    tagged, tagged_messages = _job_at(jobs, T0, chunk_sizes=(3,), tags=["eu"])
    _job_at(jobs, T0 + 1, chunk_sizes=(3,))
    store.claim_messages(tagged.id, [tagged_messages[2].id], LONG_LEASE)
    store.finish_message(tagged_messages[2].id, MessageStatus.SENT)
    found = _ids(store, tags=("eu",), statuses=("queued",), recipient="user1@example.com", to_time=T0 + 0.5)
    assert found == [tagged_messages[1].id]


def test_list_messages_limit_reports_whether_more_match(store: Store, jobs: JobFactory) -> None:
    groups = [_job_at(jobs, T0, chunk_sizes=(3,)), _job_at(jobs, T0 + 1, chunk_sizes=(2,))]
    everything = _newest_first(*groups)
    page, more = store.list_messages("acc_a", MessageQuery(limit=2))
    assert ([m.id for m in page], more) == (everything[:2], True)
    page, more = store.list_messages("acc_a", MessageQuery(limit=5))
    assert ([m.id for m in page], more) == (everything, False)
    page, more = store.list_messages("acc_a", MessageQuery(limit=6))
    assert ([m.id for m in page], more) == (everything, False)
    # with a filter, "more" counts only the matching ones
    page, more = store.list_messages("acc_a", MessageQuery(limit=1, recipient="user0@example.com"))
    assert (len(page), more) == (1, True)
    page, more = store.list_messages("acc_a", MessageQuery(limit=2, recipient="user0@example.com"))
    assert (len(page), more) == (2, False)


def test_list_messages_pages_with_after_and_before_without_gaps_or_overlaps(
    store: Store, jobs: JobFactory
) -> None:
    # Given eight messages of four jobs (one of them a job of two chunks, all at one time)
    groups = [
        _job_at(jobs, T0, chunk_sizes=(2,)),
        _job_at(jobs, T0 + 1, chunk_sizes=(2, 1)),
        _job_at(jobs, T0 + 2, chunk_sizes=(1,)),
        _job_at(jobs, T0 + 3, chunk_sizes=(2,)),
    ]
    _job_at(jobs, T0 + 1.5, account_id="acc_b")
    everything = _newest_first(*groups)
    # When paging forward three at a time, each page's last id being the next cursor
    pages: list[list[str]] = []
    mores: list[bool] = []
    after: str | None = None
    while True:
        page, more = store.list_messages("acc_a", MessageQuery(limit=3, after=after))
        pages.append([m.id for m in page])
        mores.append(more)
        if not more:
            break
        after = page[-1].id
    # Then every message is seen exactly once, in order
    assert [m for page in pages for m in page] == everything
    assert mores == [True, True, False]
    # And `before` pages back towards newer messages, from any message
    for i, message_id in enumerate(everything):
        page, more = store.list_messages("acc_a", MessageQuery(limit=2, before=message_id))
        assert [m.id for m in page] == everything[max(0, i - 2) : i]
        assert more is (i > 2)
        page, more = store.list_messages("acc_a", MessageQuery(limit=2, after=message_id))
        assert [m.id for m in page] == everything[i + 1 : i + 3]
        assert more is (i + 3 < len(everything))


def test_list_messages_cursor_combines_with_filters(store: Store, jobs: JobFactory) -> None:
    # Given three jobs of three messages each, and a cursor on a message that does not match
    groups = [_job_at(jobs, T0 + i, chunk_sizes=(3,)) for i in range(3)]
    matching = [(job.created_at, messages[1].id) for job, messages in groups]
    cursor = groups[1][1][0]
    anchor = (groups[1][0].created_at, cursor.id)
    # When listing the matching ones after and before it / Then the cursor orders them all the same
    older = [mid for key, mid in sorted(matching, reverse=True) if (key, mid) < anchor]
    newer = [mid for key, mid in sorted(matching, reverse=True) if (key, mid) > anchor]
    assert _ids(store, recipient="user1@example.com", after=cursor.id) == older
    assert _ids(store, recipient="user1@example.com", before=cursor.id) == newer
    assert len(older) + len(newer) == 3 and older and newer


# -- retention -------------------------------------------------------------------------------------------


def _purges_by_ttl(store: Store) -> bool:
    """Stores with native TTL expire by the clock; purge_expired(now) cannot jump ahead there."""
    return bool(getattr(store, "PURGES_BY_TTL", False))


def test_data_retention_of_zero_days_drops_data_once_sent_and_keeps_metadata(
    store: Store, jobs: JobFactory
) -> None:
    # Given a job that keeps no data after sending, one message sent and one still queued
    job, messages = jobs.build(chunk_sizes=(2,))
    job.retention_data_days = 0
    job.content.attachments = [
        {"file_name": "a.txt", "content_type": "text/plain", "data": "aGk=", "disposition": "attachment"}
    ]
    for m in messages:
        m.subject = f"Hello {m.name}"
    store.create_job(job, messages)
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When retention is applied
    store.purge_expired(time.time())
    # Then the sent message's variables are gone, its record is not; the queued one keeps its data,
    # and so does the job while it is still sending
    sent = store.get_message(job.account_id, messages[0].id)
    assert sent is not None
    assert sent.variables == {}
    assert (sent.email, sent.subject, sent.status, _events(sent)) == (
        "user0@example.com",
        "Hello User 0",
        MessageStatus.SENT,
        [("sent", "accepted by the relay")],
    )
    assert store.get_message(job.account_id, messages[1].id).variables == messages[1].variables  # type: ignore[union-attr]
    running = store.get_job(job.account_id, job.id)
    assert running is not None and running.content == job.content
    # When the job is done and retention applied again
    store.claim_messages(job.id, [messages[1].id], LONG_LEASE)
    store.finish_message(messages[1].id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id)
    store.purge_expired(time.time())
    # Then its bodies and attachments are gone too; what describes the job stays
    done = store.get_job(job.account_id, job.id)
    assert done is not None
    assert (done.content.text, done.content.html, done.content.amp, done.content.attachments) == (
        None,
        None,
        None,
        [],
    )
    assert (done.content.subject, done.content.from_addr, done.content.reply_to) == (
        job.content.subject,
        job.content.from_addr,
        job.content.reply_to,
    )
    assert store.get_message(job.account_id, messages[1].id).variables == {}  # type: ignore[union-attr]
    assert nonzero(done.counts) == {"sent": 2}


def test_data_retention_keeps_data_until_it_has_passed(store: Store, jobs: JobFactory) -> None:
    # Given a sent message of a job that keeps data for a day
    job, messages = jobs.build(chunk_sizes=(1,))
    job.retention_data_days = 1
    store.create_job(job, messages)
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id)
    # When retention is applied now / Then the data is still there
    store.purge_expired(time.time())
    assert store.get_message(job.account_id, messages[0].id).variables == messages[0].variables  # type: ignore[union-attr]
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.content == job.content
    if _purges_by_ttl(store):
        return  # TTL follows the clock (tests/integration/test_dynamodb_store.py checks the TTLs)
    # When it is applied two days later / Then the data is gone, the records are not
    store.purge_expired(time.time() + 2 * 86_400)
    later = store.get_message(job.account_id, messages[0].id)
    assert later is not None and later.variables == {} and later.status == MessageStatus.SENT
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.content.text is None and found.content.subject == job.content.subject


def test_metadata_retention_removes_the_job_and_its_messages(store: Store, jobs: JobFactory) -> None:
    # Given a job created three days ago that keeps its records for a day, and one that keeps them
    old, old_messages = jobs.build(chunk_sizes=(2,))
    old.created_at -= 3 * 86_400
    old.retention_metadata_days = 1
    store.create_job(old, old_messages)
    kept, kept_messages = jobs.create(chunk_sizes=(1,))
    # When retention is applied
    store.purge_expired(time.time())
    # Then the old job and its messages are gone everywhere; the other job is untouched
    assert store.get_job(old.account_id, old.id) is None
    assert store.get_message(old.account_id, old_messages[0].id) is None
    assert store.chunk_messages(old.id, 0) == []
    assert _ids(store) == [kept_messages[0].id]
    assert store.get_job(kept.account_id, kept.id) is not None


def test_purge_expired_keeps_jobs_without_retention(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.build(chunk_sizes=(1,))
    job.created_at -= 400 * 86_400
    store.create_job(job, messages)
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    store.purge_expired(time.time() + 400 * 86_400)
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and found.variables == messages[0].variables


# -- suppressions ----------------------------------------------------------------------------------------


def suppression(
    email: str,
    domain: str | None = None,
    account_id: str = "acc_a",
    suppression_id: str | None = None,
    created_at: float = T0,
    expires_in: float = 86_400,
    reason: str = "bounced",
) -> Suppression:
    return Suppression(
        id=suppression_id or new_id("sup"),
        account_id=account_id,
        email=email,
        domain=domain,
        reason=reason,
        created_at=created_at,
        expires_at=time.time() + expires_in,
    )


def test_a_suppression_without_domain_blocks_every_sender_domain(store: Store) -> None:
    store.put_suppression(suppression("Bob@Example.com"))
    now = time.time()
    emails = ["bob@example.com", "BOB@EXAMPLE.COM", "alice@example.com"]
    assert store.suppressed("acc_a", emails, "acme.test", now) == {"bob@example.com"}
    assert store.suppressed("acc_a", emails, None, now) == {"bob@example.com"}
    assert store.suppressed("acc_a", [], "acme.test", now) == set()


def test_a_suppression_for_a_domain_blocks_only_that_sender_domain(store: Store) -> None:
    store.put_suppression(suppression("bob@example.com", domain="Acme.test"))
    now = time.time()
    assert store.suppressed("acc_a", ["Bob@example.com"], "acme.TEST", now) == {"bob@example.com"}
    assert store.suppressed("acc_a", ["bob@example.com"], "other.test", now) == set()
    assert store.suppressed("acc_a", ["bob@example.com"], None, now) == set()


def test_suppressions_expire_and_are_scoped_by_account(store: Store) -> None:
    store.put_suppression(suppression("bob@example.com", expires_in=100))
    store.put_suppression(suppression("carol@example.com", expires_in=-1))
    now = time.time()
    assert store.suppressed("acc_a", ["bob@example.com", "carol@example.com"], "acme.test", now) == {
        "bob@example.com"
    }
    assert store.suppressed("acc_a", ["bob@example.com"], "acme.test", now + 200) == set()
    assert store.suppressed("acc_b", ["bob@example.com"], "acme.test", now) == set()


def test_put_suppression_replaces_the_one_for_the_same_email_and_domain(store: Store) -> None:
    store.put_suppression(suppression("bob@example.com", suppression_id="sup_1", reason="bounced"))
    store.put_suppression(suppression("BOB@example.com", suppression_id="sup_2", reason="complained"))
    store.put_suppression(suppression("bob@example.com", domain="acme.test", suppression_id="sup_3"))
    listed, more = store.list_suppressions("acc_a", None, None, None, None, 10, None)
    assert [(s.id, s.email, s.domain, s.reason) for s in listed] == [
        ("sup_2", "bob@example.com", None, "complained"),
        ("sup_3", "bob@example.com", "acme.test", "bounced"),
    ]
    assert more is False


def test_suppression_roundtrips_through_the_listing(store: Store) -> None:
    original = suppression(
        "bob@example.com", domain="acme.test", suppression_id="sup_1", created_at=T0 + 0.25
    )
    store.put_suppression(original)
    listed, _ = store.list_suppressions("acc_a", None, None, None, None, 10, None)
    assert listed == [original]


def test_list_suppressions_filters_hides_expired_and_pages(store: Store) -> None:
    store.put_suppression(suppression("a@example.com", suppression_id="sup_1", created_at=T0))
    store.put_suppression(
        suppression("b@example.com", "acme.test", suppression_id="sup_2", created_at=T0 + 10)
    )
    store.put_suppression(
        suppression("a@example.com", "acme.test", suppression_id="sup_3", created_at=T0 + 20)
    )
    store.put_suppression(
        suppression("c@example.com", suppression_id="sup_4", created_at=T0 + 30, expires_in=-1)
    )
    store.put_suppression(suppression("d@example.com", suppression_id="sup_5", created_at=T0 + 40))
    store.put_suppression(suppression("a@example.com", account_id="acc_b", suppression_id="sup_0"))

    def ids(
        email: str | None = None,
        domain: str | None = None,
        from_time: float | None = None,
        to_time: float | None = None,
        limit: int = 10,
        after: str | None = None,
    ) -> tuple[list[str], bool]:
        found, more = store.list_suppressions("acc_a", email, domain, from_time, to_time, limit, after)
        return [s.id for s in found], more

    assert ids() == (["sup_1", "sup_2", "sup_3", "sup_5"], False)  # by id; the expired one hidden
    assert ids(email="A@example.com") == (["sup_1", "sup_3"], False)
    assert ids(domain="ACME.test") == (["sup_2", "sup_3"], False)
    assert ids(email="a@example.com", domain="acme.test") == (["sup_3"], False)
    assert ids(from_time=T0 + 10, to_time=T0 + 20) == (["sup_2", "sup_3"], False)
    assert ids(limit=2) == (["sup_1", "sup_2"], True)
    assert ids(limit=2, after="sup_2") == (["sup_3", "sup_5"], False)
    assert ids(limit=1, after="sup_3") == (["sup_5"], False)
    assert ids(email="a@example.com", limit=1) == (["sup_1"], True)
    assert ids(email="a@example.com", after="sup_1") == (["sup_3"], False)


def test_delete_suppressions_by_email_domain_or_all(store: Store) -> None:
    for email, domain in [
        ("a@example.com", None),
        ("a@example.com", "acme.test"),
        ("b@example.com", "acme.test"),
        ("c@example.com", "other.test"),
        ("d@example.com", None),
    ]:
        store.put_suppression(suppression(email, domain))
    store.put_suppression(suppression("a@example.com", account_id="acc_b"))
    now = time.time()
    # by email and domain: that one only
    assert store.delete_suppressions("acc_a", "A@example.com", "acme.test") == 1
    assert store.suppressed("acc_a", ["a@example.com"], None, now) == {"a@example.com"}
    # by email: every domain of it
    assert store.delete_suppressions("acc_a", "a@example.com", None) == 1
    assert store.suppressed("acc_a", ["a@example.com"], "acme.test", now) == set()
    # by domain: every address suppressed for it
    assert store.delete_suppressions("acc_a", None, "acme.test") == 1
    assert store.suppressed("acc_a", ["b@example.com"], "acme.test", now) == set()
    # all: the rest of the account, and nothing of another account
    assert store.delete_suppressions("acc_a", None, None) == 2
    assert store.list_suppressions("acc_a", None, None, None, None, 10, None) == ([], False)
    assert store.delete_suppressions("acc_a", None, None) == 0
    assert store.suppressed("acc_b", ["a@example.com"], None, now) == {"a@example.com"}


# -- idempotency records ---------------------------------------------------------------------------------


def idempotency(
    key: str = "key-1",
    account_id: str = "acc_a",
    at: float | None = None,
    ttl: float = 3600,
    fingerprint: str = "POST /v2/messages sha256:1",
) -> IdempotencyRecord:
    now = time.time() if at is None else at
    return IdempotencyRecord(account_id, key, fingerprint, "in_progress", now, now + ttl)


def test_begin_idempotent_stores_a_new_key_and_returns_it_while_in_progress(store: Store) -> None:
    first = idempotency()
    assert store.begin_idempotent(first) is None
    again = store.begin_idempotent(idempotency(fingerprint="POST /v2/messages sha256:2"))
    assert again == IdempotencyRecord(
        "acc_a", "key-1", first.fingerprint, "in_progress", first.created_at, first.expires_at, None, None, {}
    )


def test_finished_idempotency_key_returns_the_stored_reply(store: Store) -> None:
    first = idempotency()
    store.begin_idempotent(first)
    store.finish_idempotent("acc_a", "key-1", 201, '{"id": "job_1"}', {"Location": "/v2/jobs/job_1"})
    found = store.begin_idempotent(idempotency())
    assert found is not None
    assert (found.state, found.status, found.body, found.headers) == (
        "done",
        201,
        '{"id": "job_1"}',
        {"Location": "/v2/jobs/job_1"},
    )
    assert (found.fingerprint, found.created_at, found.expires_at) == (
        first.fingerprint,
        first.created_at,
        first.expires_at,
    )


def test_an_expired_idempotency_key_is_replaced(store: Store) -> None:
    now = time.time()
    store.begin_idempotent(idempotency(at=now - 100, ttl=50, fingerprint="old"))
    store.finish_idempotent("acc_a", "key-1", 200, "old reply", {})
    assert store.begin_idempotent(idempotency(at=now, fingerprint="new")) is None
    found = store.begin_idempotent(idempotency(at=now + 1))
    assert found is not None and (found.fingerprint, found.state, found.status) == (
        "new",
        "in_progress",
        None,
    )


def test_a_key_whose_request_died_in_progress_is_taken_over_after_the_lease(store: Store) -> None:
    now = time.time()
    store.begin_idempotent(idempotency(at=now - IDEMPOTENCY_LEASE_SECONDS - 1, fingerprint="died"))
    assert store.begin_idempotent(idempotency(at=now, fingerprint="retry")) is None
    found = store.begin_idempotent(idempotency(at=now + 1))
    assert found is not None and found.fingerprint == "retry"


def test_a_key_in_progress_within_the_lease_is_not_taken_over(store: Store) -> None:
    now = time.time()
    store.begin_idempotent(idempotency(at=now - IDEMPOTENCY_LEASE_SECONDS + 10, fingerprint="running"))
    found = store.begin_idempotent(idempotency(at=now, fingerprint="retry"))
    assert found is not None and (found.fingerprint, found.state) == ("running", "in_progress")


def test_a_finished_key_is_never_taken_over_by_the_lease(store: Store) -> None:
    now = time.time()
    store.begin_idempotent(idempotency(at=now - IDEMPOTENCY_LEASE_SECONDS - 1, fingerprint="done"))
    store.finish_idempotent("acc_a", "key-1", 202, "{}", {})
    found = store.begin_idempotent(idempotency(at=now, fingerprint="retry"))
    assert found is not None and (found.fingerprint, found.state) == ("done", "done")


def test_released_idempotency_key_can_be_used_again(store: Store) -> None:
    store.begin_idempotent(idempotency(fingerprint="first"))
    store.release_idempotent("acc_a", "key-1")
    assert store.begin_idempotent(idempotency(fingerprint="second")) is None
    found = store.begin_idempotent(idempotency())
    assert found is not None and found.fingerprint == "second"
    store.release_idempotent("acc_a", "key-never")  # releasing an unknown key is harmless


def test_idempotency_keys_are_scoped_by_account(store: Store) -> None:
    assert store.begin_idempotent(idempotency(account_id="acc_a")) is None
    assert store.begin_idempotent(idempotency(account_id="acc_b")) is None
    store.finish_idempotent("acc_b", "key-1", 200, "b", {})
    found = store.begin_idempotent(idempotency(account_id="acc_a"))
    assert found is not None and found.state == "in_progress"


def test_racing_begins_of_one_key_let_exactly_one_request_run(store: Store) -> None:
    for round_ in range(3):  # several rounds: a race is probabilistic
        key = f"key-{round_}"
        results = run_together(8, lambda key=key: store.begin_idempotent(idempotency(key=key)))
        assert results.count(None) == 1
        assert all(r is not None and r.state == "in_progress" for r in results if r is not None)
