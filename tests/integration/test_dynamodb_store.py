"""DynamoDB store behaviour that is not part of the port contract: batching limits, retries of
unprocessed items, 1 MB query pages, the TTL attribute, the sparse index of active jobs, what a
failed or duplicated create leaves behind, and the item sizes the write-unit costs in TABLE.md
rest on. Runs in-process under moto (tests/contract/aws_store.py sets it up).

Where moto differs from DynamoDB it is said next to the test that depends on it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailsage.adapters.aws.dynamodb import BatchIncomplete, DynamoStore
from mailsage.adapters.aws.table import TTL_ATTRIBUTE
from mailsage.domain.models import (
    IdempotencyRecord,
    Job,
    JobState,
    Message,
    MessageQuery,
    MessageStatus,
    Suppression,
    Template,
    new_message_ids,
)
from mailsage.errors import Conflict
from tests.contract.aws_store import dynamodb_table
from tests.contract.conftest import JobFactory

LEASE = 60.0
Hook = Callable[[Callable[..., Any], dict[str, Any]], Any]


class RecordingClient:
    """The real (moto) client, recording every call; `hooks[operation]` may stand in for it, e.g.
    to inject throttling, and receives the real method and the call's arguments."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hooks: dict[str, Hook] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name in ("exceptions", "meta") or not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            hook = self.hooks.get(name)
            return hook(attribute, kwargs) if hook else attribute(**kwargs)

        return call

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)


def client_error(code: str, operation: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


@pytest.fixture
def table() -> Iterator[str]:
    with dynamodb_table() as name:
        yield name


@pytest.fixture
def client(table: str) -> RecordingClient:
    import boto3

    return RecordingClient(boto3.client("dynamodb"))


@pytest.fixture
def store(table: str, client: RecordingClient) -> DynamoStore:
    store = DynamoStore(table, client)
    store.BACKOFF_BASE_SECONDS = 0.0  # retries without waiting
    return store


@pytest.fixture
def jobs(store: DynamoStore) -> JobFactory:
    return JobFactory(store)


def raw_item(client: RecordingClient, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = client._client.get_item(
        TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    ).get("Item")
    return item


def all_items(client: RecordingClient, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table}
    while True:
        page = client._client.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it (per the developer guide's rules: attribute names
    count, numbers take about one byte per two significant digits plus one, lists and maps three
    bytes plus one per element)."""

    def value_size(value: dict[str, Any]) -> int:
        [(kind, raw)] = value.items()
        if kind == "S":
            return len(raw.encode())
        if kind == "N":
            digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
            return math.ceil(len(digits) / 2) + 1
        if kind in ("NULL", "BOOL"):
            return 1
        if kind == "B":
            return len(raw)  # bytes, as boto3 returns them
        if kind == "L":
            return 3 + sum(1 + value_size(v) for v in raw)
        if kind == "M":
            return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
        raise AssertionError(kind)

    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


# -- batches ----------------------------------------------------------------------------------------


def fail_the_job_write(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """A put_item hook: the job head, a create's last write, fails."""
    if kwargs["Item"]["sk"]["S"] == "JOB":
        raise client_error("InternalServerError", "PutItem")
    return real(**kwargs)


def create_failing_at_the_job_write(
    store: DynamoStore, client: RecordingClient, job: Job, messages: list[Message]
) -> None:
    """Create `job`, failing at its last write (the head); the hook is removed afterwards."""
    client.hooks["put_item"] = fail_the_job_write
    with pytest.raises(Exception, match="InternalServerError"):
        store.create_job(job, messages)
    del client.hooks["put_item"]


def test_create_job_writes_batches_of_25_and_retries_unprocessed_items(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given DynamoDB that leaves the last five items of every full batch unprocessed (throttling)
    def throttled(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        [(table, requests)] = kwargs["RequestItems"].items()
        if len(requests) <= 5:
            return real(**kwargs)
        real(RequestItems={table: requests[:-5]})
        return {"UnprocessedItems": {table: requests[-5:]}}

    client.hooks["batch_write_item"] = throttled
    # When a job of 120 messages is created
    job, messages = jobs.create(chunk_sizes=(50, 50, 20))
    # Then no call carried more than 25 items, the left-over items were sent again, and
    # every message is there
    sizes = [len(kw["RequestItems"][store.table_name]) for op, kw in client.calls if op == "batch_write_item"]
    assert max(sizes) == 25
    assert sizes.count(5) >= 5
    assert [m.id for c in range(3) for m in store.chunk_messages(job.id, c)] == [m.id for m in messages]
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.counts == {"queued": 120}


def test_create_job_that_cannot_write_its_messages_raises_and_leaves_nothing_visible(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given DynamoDB that never processes a batch
    def always_throttled(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        return {"UnprocessedItems": kwargs["RequestItems"]}

    client.hooks["batch_write_item"] = always_throttled
    job, messages = jobs.build(chunk_sizes=(30,))
    # When the job is created / Then it fails after the bounded retries
    with pytest.raises(BatchIncomplete):
        store.create_job(job, messages)
    assert client.count("batch_write_item") >= store.BATCH_ATTEMPTS
    # And nothing of it can be read
    assert store.get_job(job.account_id, job.id) is None
    assert store.get_message(job.account_id, messages[0].id) is None
    assert store.chunk_messages(job.id, 0) == []
    assert store.pending_chunks(job.id) == []


def test_batch_reads_retry_unprocessed_keys(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a chunk of 50 messages, and DynamoDB that returns only part of every larger batch read
    job, messages = jobs.create(chunk_sizes=(50,))

    def partial(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        [(table, request)] = kwargs["RequestItems"].items()
        keys = request["Keys"]
        if len(keys) <= 10:
            return real(**kwargs)
        response = real(RequestItems={table: {**request, "Keys": keys[:-10]}})
        return {**response, "UnprocessedKeys": {table: {**request, "Keys": keys[-10:]}}}

    client.hooks["batch_get_item"] = partial
    client.calls.clear()
    # When the chunk is read / Then every message comes back, in seq order, the left-over keys
    # having been asked for again
    assert [m.id for m in store.chunk_messages(job.id, 0)] == [m.id for m in messages]
    sizes = [
        len(kw["RequestItems"][store.table_name]["Keys"]) for op, kw in client.calls if op == "batch_get_item"
    ]
    assert 10 in sizes[1:]


# -- query pages ------------------------------------------------------------------------------------


def test_list_templates_follows_query_pages_past_1_mb(store: DynamoStore, client: RecordingClient) -> None:
    # Given templates of 200 KB each: a query page holds at most 1 MB, so five of them
    # (moto enforces the 1 MB page size like DynamoDB)
    for i in range(12):
        store.put_template(Template(f"tpl_{i:02d}", "acc_a", f"T{i}", "Hi", "x" * 200_000, None, 1.0, 2.0))
    # When ten are listed, then all of them a page of ten at a time
    client.calls.clear()
    first = store.list_templates("acc_a", 10, None)
    queries = client.count("query")
    rest = store.list_templates("acc_a", 10, first[-1].id)
    # Then the first call followed LastEvaluatedKey over several pages and returned exactly ten,
    # and the cursor continues after them
    assert queries >= 2
    assert [t.id for t in first] == [f"tpl_{i:02d}" for i in range(10)]
    assert [t.id for t in rest] == ["tpl_10", "tpl_11"]


# -- TTL --------------------------------------------------------------------------------------------


def test_retention_sets_ttl_on_every_item_of_a_job(table: str, client: RecordingClient) -> None:
    # Given a store that keeps jobs for a day
    store = DynamoStore(table, client, retention_seconds=86_400)
    job, messages = JobFactory(store).create(chunk_sizes=(2, 1))
    # When its items are inspected
    items = [i for i in all_items(client, table) if job.id in i["pk"]["S"] or "job_id" in i]
    # Then every one of them (head, content, chunk states, members, messages) expires together
    expected = str(int(job.created_at + 86_400))
    assert len(items) == 1 + 1 + 2 + 2 + 3
    assert {i[TTL_ATTRIBUTE]["N"] for i in items} == {expected}


def test_without_retention_nothing_expires(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    jobs.create(chunk_sizes=(2,))
    store.put_template(Template("tpl_1", "acc_a", "T", "Hi", None, "x", 1.0, 2.0))
    assert not [i for i in all_items(client, store.table_name) if TTL_ATTRIBUTE in i]


def test_an_expired_job_is_not_read_before_dynamodb_deletes_it(table: str, client: RecordingClient) -> None:
    # Given a job created two days ago by a store that keeps jobs for one day. moto never deletes
    # expired items; DynamoDB deletes them only some time after expiry (typically within days).
    # Either way the items are still there, so the store must filter them on read.
    store = DynamoStore(table, client, retention_seconds=86_400)
    jobs = JobFactory(store)
    job, messages = jobs.build(chunk_sizes=(2,))
    job.created_at -= 2 * 86_400
    store.create_job(job, messages)
    assert raw_item(client, table, f"JOB#{job.id}", "JOB") is not None
    # When it is read / Then it is gone
    assert store.get_job(job.account_id, job.id) is None
    assert store.get_message(job.account_id, messages[0].id) is None
    assert store.chunk_messages(job.id, 0) == []


# -- the sparse index of active jobs ----------------------------------------------------------------


def test_only_queued_and_running_jobs_carry_the_active_index_keys(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    def indexed(job_id: str) -> bool:
        head = raw_item(client, store.table_name, f"JOB#{job_id}", "JOB")
        return head is not None and "gsi1pk" in head

    # Given a queued job: in the index
    job, messages = jobs.create(chunk_sizes=(1,))
    assert indexed(job.id)
    # When it is paused it leaves the index; when resumed it is back
    store.transition_job(job.account_id, job.id, {JobState.QUEUED}, JobState.PAUSED)
    assert not indexed(job.id)
    store.transition_job(job.account_id, job.id, {JobState.PAUSED}, JobState.RUNNING)
    assert indexed(job.id)
    # And when it completes it leaves it for good
    store.claim_messages(job.id, [messages[0].id], LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id)
    assert not indexed(job.id)
    assert job.id not in {job_id for _, job_id in store.active_jobs()}
    # A scheduled job is never in it
    scheduled, _ = jobs.create(state=JobState.SCHEDULED, message_status=MessageStatus.SCHEDULED)
    assert not indexed(scheduled.id)


# -- failed and duplicated creates ------------------------------------------------------------------


def test_a_create_that_fails_at_the_job_write_can_be_retried_with_the_same_job_id(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a create whose last write (the job head) fails
    job, first_try = jobs.build(chunk_sizes=(2,))
    create_failing_at_the_job_write(store, client, job, first_try)
    # Then nothing is visible
    assert store.get_job(job.account_id, job.id) is None
    assert store.chunk_messages(job.id, 0) == []
    assert store.get_message(job.account_id, first_try[0].id) is None
    # When the caller retries with the same job id and new message ids (an ingest redelivery)
    _, second_try = jobs.build(chunk_sizes=(2,))
    for m in second_try:
        m.job_id = job.id
    store.create_job(job, second_try)
    # Then the job holds the second try's messages, and the first try's ids are not found
    assert [m.id for m in store.chunk_messages(job.id, 0)] == [m.id for m in second_try]
    assert store.get_message(job.account_id, second_try[1].id) is not None
    assert store.get_message(job.account_id, first_try[0].id) is None


def test_reusing_the_id_of_a_failed_create_for_other_messages_is_a_conflict(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a create of two messages that failed at its last write, leaving its chunk state
    job, two = jobs.build(chunk_sizes=(2,))
    create_failing_at_the_job_write(store, client, job, two)
    # When the same job id is created with three messages in that chunk / Then it is refused
    _, three = jobs.build(chunk_sizes=(3,))
    for m in three:
        m.job_id = job.id
    with pytest.raises(Conflict):
        store.create_job(job, three)
    assert store.get_job(job.account_id, job.id) is None


def test_a_duplicate_create_racing_past_the_existence_check_does_not_reset_a_sending_job(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a job that is already sending: one message sent, one sending, one queued
    job, messages = jobs.create(chunk_sizes=(3,))
    store.claim_messages(job.id, [messages[0].id, messages[1].id], LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)

    # When the same job id is created again by a caller whose existence check ran before the
    # first create finished (simulated: the check finds nothing)
    def head_not_found_yet(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        return {} if kwargs["Key"]["sk"]["S"] == "JOB" else real(**kwargs)

    client.hooks["get_item"] = head_not_found_yet
    _, again = jobs.build(chunk_sizes=(3,))
    for m in again:
        m.job_id = job.id
    with pytest.raises(Conflict):
        store.create_job(job, again)
    del client.hooks["get_item"]
    # Then the statuses of the running job are untouched
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.counts == {"sent": 1, "sending": 1, "queued": 1}
    assert [m.status for m in store.chunk_messages(job.id, 0)] == [
        MessageStatus.SENT,
        MessageStatus.SENDING,
        MessageStatus.QUEUED,
    ]


def test_create_job_with_an_existing_id_is_a_conflict_and_writes_nothing(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    job, _ = jobs.create()
    _, again = jobs.build()
    client.calls.clear()
    with pytest.raises(Conflict):
        store.create_job(job, again)
    assert {op for op, _ in client.calls} == {"get_item"}


# -- errors -----------------------------------------------------------------------------------------


def test_errors_other_than_a_failed_condition_propagate(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a claimed message, and DynamoDB throttling every update
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LEASE)

    def throttled(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        raise client_error("ProvisionedThroughputExceededException", "UpdateItem")

    client.hooks["update_item"] = throttled
    # When it is finished / Then the error is raised, not reported as "not in sending"
    with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        store.finish_message(messages[0].id, MessageStatus.SENT)


# -- what a message costs ---------------------------------------------------------------------------


def test_each_message_transition_is_one_state_write_plus_its_event_and_a_chunk_claim_a_few(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a full chunk of 50 queued messages
    job, messages = jobs.create(chunk_sizes=(50,))
    client.calls.clear()
    # When the chunk is claimed: two updates of 25 positions and the job's move to running
    assert len(store.claim_messages(job.id, [m.id for m in messages], LEASE)) == 50
    assert client.count("update_item") == 3
    # And each send is one update of the chunk state (its event is implied by the state, no log
    # write); any other finish also logs its event; the completion check writes only when done
    client.calls.clear()
    for m in messages[:49]:
        assert store.finish_message(m.id, MessageStatus.SENT)
    assert store.finish_message(messages[49].id, MessageStatus.FAILED, "550", "no such user")
    updated = [kw["Key"]["sk"]["S"] for op, kw in client.calls if op == "update_item"]
    assert (updated.count("CHUNK#000000"), updated.count("LOG")) == (50, 1)
    assert len(updated) == 51
    # And the first delivery event is one state write, which keeps the send's time (no log write)
    client.calls.clear()
    assert store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    assert [kw["Key"]["sk"]["S"] for op, kw in client.calls if op == "update_item"] == ["CHUNK#000000"]
    # And a later one (a complaint) tries that, then writes the state and logs both events
    client.calls.clear()
    assert store.update_delivery_status(
        job.account_id,
        messages[0].id,
        MessageStatus.COMPLAINED,
        [MessageStatus.SENT, MessageStatus.DELIVERED],
    )
    updated = [kw["Key"]["sk"]["S"] for op, kw in client.calls if op == "update_item"]
    assert updated == ["CHUNK#000000", "CHUNK#000000", "LOG"]
    client.calls.clear()
    assert store.complete_job_if_done(job.id)
    assert client.count("update_item") == 1
    assert {op for op, _ in client.calls} <= {"query", "update_item"}


def test_the_sender_reads_each_message_item_once(
    table: str, store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a chunk the sender reads, claims and finishes, as DeliveryService does
    job, messages = jobs.create(chunk_sizes=(30,))
    sender = DynamoStore(table, client)
    client.calls.clear()
    ids = [m.id for m in sender.chunk_messages(job.id, 0)]
    assert sender.claim_messages(job.id, ids, LEASE) == ids
    for message_id in ids:
        assert sender.finish_message(message_id, MessageStatus.SENT)

    # Then the message items were read once, by chunk_messages (eventually consistent)
    def message_keys_read() -> list[str]:
        keys = [kw["Key"] for op, kw in client.calls if op == "get_item"]
        keys += [
            key
            for op, kw in client.calls
            if op == "batch_get_item"
            for key in next(iter(kw["RequestItems"].values()))["Keys"]
        ]
        return [key["pk"]["S"] for key in keys if key["sk"]["S"] == "MSG"]

    assert sorted(message_keys_read()) == sorted(f"MSG#{i}" for i in ids)
    # And the adapter remembers a bounded number of them
    small = DynamoStore(table, client)
    small._immutable.size = 10
    small.chunk_messages(job.id, 0)
    client.calls.clear()
    assert small.finish_message(ids[0], MessageStatus.DELIVERED) is False  # not sending: refused
    assert message_keys_read() == [f"MSG#{ids[0]}"]


def test_item_sizes_behind_the_write_unit_costs(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    """TABLE.md's cost per recipient rests on these sizes (1 write unit per started KB)."""
    job, messages = jobs.create(chunk_sizes=(50, 30))
    store.claim_messages(job.id, [m.id for m in messages], LEASE)  # the largest a state gets
    full = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#000000")
    smaller = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#000001")
    message = raw_item(client, store.table_name, f"MSG#{messages[0].id}", "MSG")
    head = raw_item(client, store.table_name, f"JOB#{job.id}", "JOB")
    assert full is not None and smaller is not None and message is not None and head is not None
    # A chunk state of 50 messages, all sending: every transition in it costs 1 write unit
    assert item_size(full) <= 800 and item_size(smaller) <= 600
    # And still, with a few errors of ordinary length, or sending a day after its creation
    for m in messages[:4]:
        store.finish_message(
            m.id, MessageStatus.FAILED, "550", "5.1.1 mailbox unavailable: no such user here"
        )
    full = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#000000")
    assert full is not None and item_size(full) <= 1024
    later, _ = jobs.build(chunk_sizes=(50,))
    later.created_at -= 86_400
    store.create_job(later, _)
    store.claim_messages(later.id, [m.id for m in _], LEASE)
    state = raw_item(client, store.table_name, f"JOB#{later.id}", "CHUNK#000000")
    assert state is not None and item_size(state) <= 900
    # A message with small variables, and the job head: 1 write unit each
    assert item_size(message) <= 1024
    assert item_size(head) <= 1024
    # The members of a full chunk (ids and recipients, written once, and once more into gsi1)
    members = raw_item(client, store.table_name, f"JOB#{job.id}", "MEMBERS#000000")
    assert members is not None and item_size(members) <= 4096
    # A full chunk state once every message is sent and delivered (the first report of each is
    # held in the state, with the send's time): still 1 write unit per transition
    for m in messages[4:50]:
        store.finish_message(m.id, MessageStatus.SENT)
        store.update_delivery_status(job.account_id, m.id, MessageStatus.DELIVERED, [MessageStatus.SENT])
    full = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#000000")
    assert full is not None and item_size(full) <= 1000
    # A message's log after a later event (which takes over the delivery): 1 write unit
    store.update_delivery_status(
        job.account_id, messages[10].id, MessageStatus.COMPLAINED, [MessageStatus.DELIVERED]
    )
    log_item = raw_item(client, store.table_name, f"MSG#{messages[10].id}", "LOG")
    assert log_item is not None and item_size(log_item) <= 1024


def test_concurrent_finishes_in_one_chunk_all_land(store: DynamoStore, jobs: JobFactory) -> None:
    # Given a claimed chunk (one item holds the statuses of all its messages)
    job, messages = jobs.create(chunk_sizes=(40,))
    store.claim_messages(job.id, [m.id for m in messages], LEASE)
    # When every message is finished from its own thread at once
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda m: store.finish_message(m.id, MessageStatus.SENT), messages))
    # Then no update was lost: each one touched only its own position
    assert all(results)
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.counts == {"sent": 40}


def test_the_lease_is_measured_from_the_claim(store: DynamoStore, jobs: JobFactory) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LEASE)
    claimed_at = store.chunk_messages(job.id, 0)[0].updated_at
    assert time.time() - 1 < claimed_at <= time.time()
    assert store.claim_messages(job.id, [messages[0].id], 30.0) == []


# -- retention: TTLs instead of purge_expired -------------------------------------------------------


def ttl_of(client: RecordingClient, table: str, pk: str, sk: str) -> int | None:
    item = raw_item(client, table, pk, sk)
    assert item is not None, (pk, sk)
    return int(item[TTL_ATTRIBUTE]["N"]) if TTL_ATTRIBUTE in item else None


def test_a_jobs_metadata_retention_puts_its_ttl_on_every_record_in_place_of_the_stores(
    table: str, client: RecordingClient
) -> None:
    # Given a store keeping jobs for a day, and a job asking for three
    store = DynamoStore(table, client, retention_seconds=86_400)
    job, messages = JobFactory(store).build(chunk_sizes=(2,))
    job.retention_metadata_days = 3
    store.create_job(job, messages)
    store.claim_messages(job.id, [messages[0].id], LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    store.update_delivery_status(  # a second report: the first logged event
        job.account_id, messages[0].id, MessageStatus.COMPLAINED, [MessageStatus.DELIVERED]
    )
    # Then every record of it, the log written later included, expires three days after creation
    expected = int(job.created_at + 3 * 86_400)
    keys = [(f"JOB#{job.id}", sk) for sk in ("JOB", "JOB#CONTENT", "CHUNK#000000", "MEMBERS#000000")]
    keys += [(f"MSG#{m.id}", "MSG") for m in messages] + [(f"MSG#{messages[0].id}", "LOG")]
    assert {ttl_of(client, table, pk, sk) for pk, sk in keys} == {expected}
    # And nothing is kept apart as data: without a data retention there are no data or body items
    assert raw_item(client, table, f"JOB#{job.id}", "JOB#BODY") is None
    assert raw_item(client, table, f"MSG#{messages[0].id}", "DATA") is None


def test_data_retention_keeps_variables_and_bodies_apart_and_expires_them_after_sending(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a job keeping its data for two days
    job, messages = jobs.build(chunk_sizes=(2,))
    job.retention_data_days = 2
    store.create_job(job, messages)
    message = raw_item(client, store.table_name, f"MSG#{messages[0].id}", "MSG")
    assert message is not None and "variables" not in message
    assert ttl_of(client, store.table_name, f"MSG#{messages[0].id}", "DATA") is None
    # When a message is sent / Then its data item expires two days later; the other's does not
    store.claim_messages(job.id, [messages[0].id], LEASE)
    sent_at = time.time()
    store.finish_message(messages[0].id, MessageStatus.SENT)
    ttl = ttl_of(client, store.table_name, f"MSG#{messages[0].id}", "DATA")
    assert ttl is not None and abs(ttl - (sent_at + 2 * 86_400)) <= 2
    assert ttl_of(client, store.table_name, f"MSG#{messages[1].id}", "DATA") is None
    # And when the job ends, its bodies expire two days later
    store.transition_job(job.account_id, job.id, {JobState.RUNNING}, JobState.STOPPED)
    body_ttl = ttl_of(client, store.table_name, f"JOB#{job.id}", "JOB#BODY")
    assert body_ttl is not None and abs(body_ttl - (time.time() + 2 * 86_400)) <= 2


def test_data_past_its_ttl_is_not_read_before_dynamodb_deletes_it(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a sent message of a job with a data retention whose TTLs have passed (moto never
    # deletes expired items, and DynamoDB only some time after: reads must filter)
    job, messages = jobs.build(chunk_sizes=(1,))
    job.retention_data_days = 1
    store.create_job(job, messages)
    past = {":ttl": {"N": str(int(time.time()) - 10)}}
    for pk, sk in ((f"MSG#{messages[0].id}", "DATA"), (f"JOB#{job.id}", "JOB#BODY")):
        client._client.update_item(
            TableName=store.table_name,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues=past,
        )
    # When it is read / Then its variables and bodies read as gone, everything else as it was
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and found.variables == {} and found.email == messages[0].email
    assert store.chunk_messages(job.id, 0)[0].variables == {}
    found_job = store.get_job(job.account_id, job.id)
    assert found_job is not None
    assert (found_job.content.text, found_job.content.html, found_job.content.subject) == (
        None,
        None,
        job.content.subject,
    )


def test_zero_days_of_data_retention_deletes_the_data_at_once(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    job, messages = jobs.build(chunk_sizes=(1,))
    job.retention_data_days = 0
    store.create_job(job, messages)
    store.claim_messages(job.id, [messages[0].id], LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    assert raw_item(client, store.table_name, f"MSG#{messages[0].id}", "DATA") is None
    assert store.complete_job_if_done(job.id)
    assert raw_item(client, store.table_name, f"JOB#{job.id}", "JOB#BODY") is None
    assert store.purge_expired(time.time()) == 0


def test_suppressions_and_idempotency_records_expire_by_ttl(
    store: DynamoStore, client: RecordingClient
) -> None:
    expires = time.time() + 3600.4
    store.put_suppression(Suppression("sup_1", "acc_a", "Bob@Example.com", None, "bounced", 1.0, expires))
    store.begin_idempotent(IdempotencyRecord("acc_a", "k", "fp", "in_progress", 1.0, expires))
    # never deleted before they expire: the TTL is rounded up
    assert ttl_of(client, store.table_name, "ACCOUNT#acc_a", "SUPPRESSION#bob@example.com#") == math.ceil(
        expires
    )
    assert ttl_of(client, store.table_name, "ACCOUNT#acc_a", "IDEMPOTENCY#k") == math.ceil(expires)


# -- reads that cost: what the event log, suppressions, listings and idempotency read ---------------


def log_keys_read(client: RecordingClient) -> int:
    return sum(
        1
        for op, kw in client.calls
        if op == "batch_get_item"
        for key in next(iter(kw["RequestItems"].values()))["Keys"]
        if key["sk"]["S"] == "LOG"
    )


def test_chunk_messages_reads_only_the_logs_of_messages_that_may_have_events(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a fresh chunk: no message can have an event yet, so no log is read
    job, messages = jobs.create(chunk_sizes=(5,))
    client.calls.clear()
    store.chunk_messages(job.id, 0)
    assert log_keys_read(client) == 0
    # When one message was deferred and one sent / Then exactly their two logs are read
    store.claim_messages(job.id, [messages[0].id, messages[1].id], LEASE)
    store.release_message(messages[0].id, "421")
    store.finish_message(messages[1].id, MessageStatus.SENT)
    client.calls.clear()
    read = store.chunk_messages(job.id, 0)
    assert log_keys_read(client) == 2
    assert [len(m.events) for m in read] == [1, 1, 0, 0, 0]


def test_suppressed_reads_two_keys_per_address_in_one_call(
    store: DynamoStore, client: RecordingClient
) -> None:
    store.put_suppression(
        Suppression("sup_1", "acc_a", "a@example.com", "acme.test", "bounced", 1.0, time.time() + 60)
    )
    client.calls.clear()
    emails = [f"user{i}@example.com" for i in range(40)] + ["A@example.com"]
    assert store.suppressed("acc_a", emails, "acme.test", time.time()) == {"a@example.com"}
    assert [op for op, _ in client.calls] == ["batch_get_item"]
    [(_, kwargs)] = client.calls
    [request] = kwargs["RequestItems"].values()
    assert len(request["Keys"]) == 82 and request["ConsistentRead"] is False


def sup(email: str, account_id: str = "acc_a", domain: str | None = None) -> Suppression:
    return Suppression(f"sup_{email}", account_id, email, domain, "bounced", 1.0, time.time() + 60)


def test_an_account_without_suppressions_reads_none_per_address(
    table: str, store: DynamoStore, client: RecordingClient
) -> None:
    emails = [f"user{i}@example.com" for i in range(40)]
    # The first call settles the account's marker: one query finds no suppression
    assert store.suppressed("acc_a", emails, "acme.test", time.time()) == set()
    assert [op for op, _ in client.calls] == ["get_item", "query", "update_item"]
    # Then, for SUPPRESSION_MARK_SECONDS, nothing is read at all
    client.calls.clear()
    assert store.suppressed("acc_a", emails, "acme.test", time.time()) == set()
    assert client.calls == []
    # And after that, the marker only (eventually consistent), by another process too
    other = DynamoStore(table, client)
    assert other.suppressed("acc_a", emails, "acme.test", time.time()) == set()
    assert [(op, kw["ConsistentRead"]) for op, kw in client.calls] == [("get_item", False)]


def test_a_suppression_put_elsewhere_is_seen_once_the_marker_is_read_again(
    table: str, store: DynamoStore, client: RecordingClient
) -> None:
    # Given a sender that found no suppressions, and reads the marker on every call
    sender = DynamoStore(table, client)
    sender.SUPPRESSION_MARK_SECONDS = 0
    assert sender.suppressed("acc_a", ["a@example.com"], None, time.time()) == set()
    # When another process adds one / Then the sender sees it
    store.put_suppression(sup("a@example.com"))
    assert sender.suppressed("acc_a", ["a@example.com"], None, time.time()) == {"a@example.com"}
    # And once every suppression is deleted, the marker is settled again to none
    assert store.delete_suppressions("acc_a", None, None) == 1
    client.calls.clear()
    assert sender.suppressed("acc_a", ["a@example.com"], None, time.time()) == set()
    assert [op for op, _ in client.calls] == ["get_item", "query", "update_item"]
    client.calls.clear()
    assert sender.suppressed("acc_a", ["a@example.com"], None, time.time()) == set()
    assert [op for op, _ in client.calls] == ["get_item"]
    # But deleting one of two leaves the other found
    store.put_suppression(sup("a@example.com"))
    store.put_suppression(sup("b@example.com"))
    assert store.delete_suppressions("acc_a", "a@example.com", None) == 1
    assert sender.suppressed("acc_a", ["a@example.com", "b@example.com"], None, time.time()) == {
        "b@example.com"
    }
    # And the marker is per account
    assert sender.suppressed("acc_b", ["b@example.com"], None, time.time()) == set()


def test_a_put_racing_the_settling_of_the_marker_is_never_missed(
    table: str, store: DynamoStore, client: RecordingClient
) -> None:
    # Given a put landing while a reader settles an unknown marker (between its query and its write)
    writer = DynamoStore(table, client)

    def put_meanwhile(real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        response = real(**kwargs)
        del client.hooks["query"]
        writer.put_suppression(sup("a@example.com"))
        return response

    client.hooks["query"] = put_meanwhile
    # When the reader found none / Then its marker write fails, and the next read sees the put
    assert store.suppressed("acc_a", ["a@example.com"], None, time.time()) == set()
    marker = raw_item(client, table, "ACCOUNT#acc_a", "SUPPRESSIONS")
    assert marker is not None and marker["state"] == {"S": "some"}
    store.SUPPRESSION_MARK_SECONDS = 0
    assert store.suppressed("acc_a", ["a@example.com"], None, time.time()) == {"a@example.com"}


def test_suppressions_stored_before_the_marker_are_found(
    table: str, store: DynamoStore, client: RecordingClient
) -> None:
    # Given an account of a deployment from before the marker: suppressions, no marker
    store.put_suppression(sup("a@example.com", domain="acme.test"))
    client._client.delete_item(
        TableName=table, Key={"pk": {"S": "ACCOUNT#acc_a"}, "sk": {"S": "SUPPRESSIONS"}}
    )
    # Then a fresh reader finds them, and marks the account as having some
    reader = DynamoStore(table, client)
    assert reader.suppressed("acc_a", ["a@example.com"], "acme.test", time.time()) == {"a@example.com"}
    marker = raw_item(client, table, "ACCOUNT#acc_a", "SUPPRESSIONS")
    assert marker is not None and marker["state"] == {"S": "some"}


def test_begin_idempotent_is_one_conditional_write(store: DynamoStore, client: RecordingClient) -> None:
    record = IdempotencyRecord("acc_a", "k", "fp", "in_progress", time.time(), time.time() + 60)
    client.calls.clear()
    assert store.begin_idempotent(record) is None
    found = store.begin_idempotent(record)
    assert found is not None and found.fingerprint == "fp"
    assert [op for op, _ in client.calls] == ["put_item", "put_item"]


def test_list_messages_reads_the_index_lazily_and_only_the_pages_message_items(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given 60 single sends and a batch of 200
    singles = [jobs.create(chunk_sizes=(1,)) for _ in range(60)]
    batch, batch_messages = jobs.create(chunk_sizes=(50, 50, 50, 50))
    # When the newest ten are listed
    client.calls.clear()
    page, more = store.list_messages("acc_a", MessageQuery(limit=10))
    # Then they are the batch's (newest), in id order, and only eleven message items were read
    assert more is True
    assert [m.id for m in page] == sorted((m.id for m in batch_messages), reverse=True)[:10]
    message_keys = [
        key
        for op, kw in client.calls
        if op == "batch_get_item"
        for key in next(iter(kw["RequestItems"].values()))["Keys"]
        if key["sk"]["S"] == "MSG"
    ]
    assert len(message_keys) == 11
    # And paging through everything follows the index over several query pages
    client.calls.clear()
    seen: list[str] = []
    after = None
    while True:
        page, more = store.list_messages("acc_a", MessageQuery(limit=100, after=after))
        seen += [m.id for m in page]
        if not more:
            break
        after = page[-1].id
    assert len(seen) == len(set(seen)) == 260
    assert set(seen) == {m.id for _, ms in singles for m in ms} | {m.id for m in batch_messages}
    index_queries = [kw for op, kw in client.calls if op == "query" and kw.get("IndexName") == "gsi1"]
    assert len(index_queries) >= 3


def test_list_messages_by_message_id_reads_no_index(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    _, messages = jobs.create(chunk_sizes=(3,))
    client.calls.clear()
    assert [m.id for m in store.list_messages("acc_a", MessageQuery(message_id=messages[1].id))[0]] == [
        messages[1].id
    ]
    assert not [kw for op, kw in client.calls if op == "query" and kw.get("IndexName")]


def test_a_job_whose_create_failed_is_not_listed(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a create that failed at its last write: its chunk entries are in the index already
    failed, failed_messages = jobs.build(chunk_sizes=(2,))
    create_failing_at_the_job_write(store, client, failed, failed_messages)
    _, messages = jobs.create(chunk_sizes=(1,))
    # When the account's messages are listed / Then only the committed job's are there
    assert [m.id for m in store.list_messages("acc_a", MessageQuery())[0]] == [messages[0].id]
    assert store.list_messages("acc_a", MessageQuery(message_id=failed_messages[0].id)) == ([], False)


def test_messages_created_suppressed_form_chunk_minus_one(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a job with one recipient suppressed at submission
    job, messages = jobs.build(chunk_sizes=(2,))
    messages[1].status, messages[1].chunk = MessageStatus.SUPPRESSED, -1
    messages[1].error_code, messages[1].error_message = "suppressed", "on the suppression list"
    store.create_job(job, messages)
    # Then it has a chunk state of its own, sorted before chunk 0, keeping why it is suppressed
    state = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#-00001")
    assert state is not None and state["s"]["L"] == [{"S": "x"}]  # packed: x is suppressed
    found = store.get_message(job.account_id, messages[1].id)
    assert found is not None
    assert (found.chunk, found.error_code, found.error_message) == (
        -1,
        "suppressed",
        "on the suppression list",
    )
    assert [m.id for m in store.chunk_messages(job.id, -1)] == [messages[1].id]


# -- chunk states written before the packed layout -------------------------------------------------


def make_legacy(client: RecordingClient, table: str, job_id: str, message_ids: list[str]) -> None:
    """Rewrite a job's chunk state and message items as the store wrote them before the packed
    layout (lists of full status names, epoch seconds, NULL errors; message items without t0)."""
    state = raw_item(client, table, f"JOB#{job_id}", "CHUNK#000000")
    assert state is not None
    t0 = float(state["t0"]["N"])
    size = len(state["s"]["L"])
    names = {"q": "queued", "h": "scheduled", "s": "sending", "t": "sent", "x": "suppressed"}

    def error(which: str, p: int) -> dict[str, Any]:
        return state[which]["M"].get(str(p), {"NULL": True})  # type: ignore[index, no-any-return]

    legacy = {
        "pk": state["pk"],
        "sk": state["sk"],
        "statuses": {"L": [{"S": names[v["S"]]} for v in state["s"]["L"]]},
        "attempts": state["a"],
        "changed_at": {"L": [{"N": repr(t0 + int(v["N"]) / 1e6)} for v in state["c"]["L"]]},
        "error_codes": {"L": [error("ec", p) for p in range(size)]},
        "error_messages": {"L": [error("em", p) for p in range(size)]},
    }
    client._client.put_item(TableName=table, Item=legacy)
    for message_id in message_ids:
        client._client.update_item(
            TableName=table,
            Key={"pk": {"S": f"MSG#{message_id}"}, "sk": {"S": "MSG"}},
            UpdateExpression="REMOVE t0",
        )


def test_chunk_states_of_the_legacy_layout_are_read_and_written_in_it(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a job of a running deployment, stored before the packed layout, one message sending
    job, messages = jobs.create(chunk_sizes=(4,))
    store.claim_messages(job.id, [messages[0].id], LEASE)
    make_legacy(client, store.table_name, job.id, [m.id for m in messages])
    # When the sender carries on with it
    assert store.finish_message(messages[0].id, MessageStatus.SENT)
    assert store.claim_messages(job.id, [m.id for m in messages], LEASE) == [m.id for m in messages[1:]]
    assert store.release_message(messages[1].id, "421 later")
    assert store.finish_message(messages[2].id, MessageStatus.FAILED, "550", "no such user")
    assert store.update_delivery_status(
        job.account_id, messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    # Then it stays in its layout, and reads as any other
    state = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#000000")
    assert state is not None and "s" not in state
    assert [v["S"] for v in state["statuses"]["L"]] == ["delivered", "queued", "failed", "sending"]
    found = store.chunk_messages(job.id, 0)
    assert [m.status for m in found] == ["delivered", "queued", "failed", "sending"]
    assert [m.attempts for m in found] == [1, 1, 1, 0]
    assert (found[2].error_code, found[2].error_message) == ("550", "no such user")
    assert [e["status"] for e in found[0].events] == ["sent", "delivered"]
    assert found[0].sent_at is not None and found[0].sent_at < found[0].updated_at
    assert found == [store.get_message(job.account_id, m.id) for m in messages]
    got = store.get_job(job.account_id, job.id)
    assert got is not None
    assert {k: n for k, n in got.counts.items() if n} == {
        "delivered": 1,
        "queued": 1,
        "failed": 1,
        "sending": 1,
    }


def test_a_packed_state_reads_back_every_field(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given messages that went every way a chunk state records
    job, messages = jobs.create(chunk_sizes=(4,))
    before = time.time()
    store.claim_messages(job.id, [m.id for m in messages], LEASE)
    store.release_message(messages[0].id, "421 later")
    store.finish_message(messages[1].id, MessageStatus.FAILED, "550", "no such user")
    store.finish_message(messages[2].id, MessageStatus.SENT)
    store.update_delivery_status(
        job.account_id, messages[2].id, MessageStatus.BOUNCED, [MessageStatus.SENT], "bounced", "gone"
    )
    after = time.time()
    # Then each reads back as written, its time to the microsecond (never before it happened)
    found = store.chunk_messages(job.id, 0)
    assert [m.status for m in found] == ["queued", "failed", "bounced", "sending"]
    assert [(m.error_code, m.error_message) for m in found] == [
        (None, "421 later"),
        ("550", "no such user"),
        ("bounced", "gone"),
        (None, None),
    ]
    assert all(before <= m.updated_at <= after for m in found)
    state = raw_item(client, store.table_name, f"JOB#{job.id}", "CHUNK#000000")
    assert state is not None
    assert state["em"]["M"].keys() == {"0", "1", "2"} and state["ec"]["M"].keys() == {"1", "2"}
    # And a message sent again after a failure keeps no stale error
    store.claim_messages(job.id, [messages[0].id], LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    again = store.get_message(job.account_id, messages[0].id)
    assert again is not None and (again.error_code, again.error_message) == (None, None)


# -- packed chunks: the messages of a chunk whose ids share a prefix are one item ------------------


class PackedJobFactory(JobFactory):
    """Jobs whose messages carry the ids the domain gives them (new_message_ids, per chunk)."""

    def build(self, *args: Any, **kwargs: Any) -> tuple[Job, list[Message]]:
        job, messages = super().build(*args, **kwargs)
        for chunk in range(job.chunks):
            members = [m for m in messages if m.chunk == chunk]
            for m, message_id in zip(members, new_message_ids(len(members)), strict=True):
                m.id = message_id
        return job, messages


def _contract_tests() -> dict[str, Any]:
    from tests.contract import test_feedback_store, test_store_contract

    return {
        name: staticmethod(test)
        for module in (test_store_contract, test_feedback_store)
        for name, test in vars(module).items()
        if name.startswith("test_") and callable(test)
    }


# Every store contract test again, on jobs whose chunks are packed
TestContractOnPackedChunks = type(
    "TestContractOnPackedChunks",
    (),
    {
        "jobs": pytest.fixture(lambda self, store: PackedJobFactory(store), name="jobs"),
        **_contract_tests(),
    },
)


@pytest.fixture
def packed_jobs(store: DynamoStore) -> PackedJobFactory:
    return PackedJobFactory(store)


def test_a_packed_chunk_is_one_item_found_by_its_ids_prefix(
    store: DynamoStore, client: RecordingClient, packed_jobs: PackedJobFactory
) -> None:
    # Given a job whose ids are the domain's (a prefix per chunk, the position last)
    job, messages = packed_jobs.create(chunk_sizes=(50, 20))
    # Then no item is written per message: one per chunk, found by the prefix
    items = all_items(client, store.table_name)
    assert not [item for item in items if item["pk"]["S"].startswith("MSG#")]
    chunks = [item for item in items if item["pk"]["S"].startswith("MSGCHUNK#")]
    assert sorted(item["pk"]["S"] for item in chunks) == sorted(
        f"MSGCHUNK#{messages[i].id[:32]}" for i in (0, 50)
    )
    # And the members name their ids by the prefix (the positions are implied)
    members = raw_item(client, store.table_name, f"JOB#{job.id}", "MEMBERS#000000")
    assert members is not None and "ids" not in members and members["prefix"] == {"S": messages[0].id[:32]}
    # And both are small: the members of 50 (and their gsi1 copy) and the chunk's messages
    assert item_size(members) <= 2048
    assert max(item_size(item) for item in chunks) <= 1024
    # And every read finds every message, as created
    read = store.chunk_messages(job.id, 0) + store.chunk_messages(job.id, 1)
    assert [(m.id, m.seq, m.email, m.name, m.variables, m.chunk) for m in read] == [
        (m.id, m.seq, m.email, m.name, m.variables, m.chunk) for m in messages
    ]
    assert read == [store.get_message(job.account_id, m.id) for m in messages]
    # And an id of the prefix beyond the chunk, or of an unknown prefix, is not found
    assert store.get_message(job.account_id, messages[0].id[:32] + "0032") is None
    assert store.get_message(job.account_id, new_message_ids(1)[0]) is None
    assert store.get_message("acc_b", messages[0].id) is None


def test_the_sender_reads_one_item_per_packed_chunk_for_its_messages(
    table: str, store: DynamoStore, client: RecordingClient, packed_jobs: PackedJobFactory
) -> None:
    job, messages = packed_jobs.create(chunk_sizes=(50,))
    sender = DynamoStore(table, client)
    client.calls.clear()
    ids = [m.id for m in sender.chunk_messages(job.id, 0)]
    assert sender.claim_messages(job.id, ids, LEASE) == ids
    for message_id in ids:
        assert sender.finish_message(message_id, MessageStatus.SENT)
    read = [
        key["pk"]["S"]
        for op, kw in client.calls
        if op in ("batch_get_item", "get_item")
        for key in (
            next(iter(kw["RequestItems"].values()))["Keys"] if op == "batch_get_item" else [kw["Key"]]
        )
        if not key["pk"]["S"].startswith("JOB#")
    ]
    assert read == [f"MSGCHUNK#{ids[0][:32]}"]
    # And an events function elsewhere reads it once per chunk too, eventually consistent
    events = DynamoStore(table, client)
    client.calls.clear()
    for message_id in ids[:3]:
        assert events.update_delivery_status(
            "acc_a", message_id, MessageStatus.DELIVERED, [MessageStatus.SENT]
        )
    gets = [(kw["Key"]["pk"]["S"], kw["ConsistentRead"]) for op, kw in client.calls if op == "get_item"]
    assert gets == [(f"MSGCHUNK#{ids[0][:32]}", False)]


def test_a_chunk_whose_ids_or_size_do_not_pack_gets_an_item_per_message(
    store: DynamoStore, client: RecordingClient, packed_jobs: PackedJobFactory
) -> None:
    # Given a job whose chunk 0 packs, chunk 1 has ids out of position order, chunk 2 is too large
    job, messages = packed_jobs.build(chunk_sizes=(3, 3, 3))
    messages[3].id, messages[4].id = messages[4].id, messages[3].id
    for m in messages[6:]:
        m.variables = {"noise": "".join(uuid.uuid4().hex for _ in range(200))}
    store.PACKED_MESSAGES_MAX_BYTES = 5_000
    store.create_job(job, messages)
    # Then chunk 0 is one item, the others an item per message, and all read the same
    items = all_items(client, store.table_name)
    assert len([item for item in items if item["pk"]["S"].startswith("MSGCHUNK#")]) == 1
    assert len([item for item in items if item["pk"]["S"].startswith("MSG#")]) == 6
    read = [m for chunk in range(3) for m in store.chunk_messages(job.id, chunk)]
    assert [(m.id, m.variables) for m in read] == [(m.id, m.variables) for m in messages]
    assert read == [store.get_message(job.account_id, m.id) for m in messages]


def test_a_packed_chunk_with_a_data_retention_keeps_variables_per_message(
    store: DynamoStore, client: RecordingClient, packed_jobs: PackedJobFactory
) -> None:
    job, messages = packed_jobs.build(chunk_sizes=(2,))
    job.retention_data_days = 0
    store.create_job(job, messages)
    assert raw_item(client, store.table_name, f"MSG#{messages[0].id}", "DATA") is not None
    store.claim_messages(job.id, [m.id for m in messages], LEASE)
    assert store.finish_message(messages[0].id, MessageStatus.SENT)
    assert raw_item(client, store.table_name, f"MSG#{messages[0].id}", "DATA") is None
    found = store.chunk_messages(job.id, 0)
    assert [m.variables for m in found] == [{}, messages[1].variables]


def test_new_message_ids_are_uuid4s_of_one_prefix_in_position_order() -> None:
    ids = new_message_ids(3)
    assert [uuid.UUID(i).version for i in ids] == [4, 4, 4]
    assert {i[:32] for i in ids} == {ids[0][:32]} and [i[32:] for i in ids] == ["0000", "0001", "0002"]
    assert new_message_ids(1)[0][:32] != ids[0][:32]
    assert len({i[:32] for i in new_message_ids(65_537)}) == 65_537  # beyond 16 bits: independent


def test_messages_with_ids_of_their_own_are_read_without_packed_lookups_when_the_chunk_says_so(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a job whose ids are independent UUIDs (as before packed chunks): an item per message
    job, messages = jobs.build(chunk_sizes=(3,))
    for m in messages:
        m.id = str(uuid.uuid4())
    store.create_job(job, messages)
    # When its chunk is read / Then its members say so: no chunk item is looked for
    client.calls.clear()
    assert [m.id for m in store.chunk_messages(job.id, 0)] == [m.id for m in messages]
    keys = [
        key["pk"]["S"]
        for op, kw in client.calls
        if op == "batch_get_item"
        for key in next(iter(kw["RequestItems"].values()))["Keys"]
    ]
    assert not [k for k in keys if k.startswith("MSGCHUNK#")]
    # And one message alone is found too (after a miss of its would-be chunk)
    found = store.get_message(job.account_id, messages[1].id)
    assert found is not None and found.email == messages[1].email
    store.claim_messages(job.id, [messages[1].id], LEASE)
    assert store.finish_message(messages[1].id, MessageStatus.SENT)
