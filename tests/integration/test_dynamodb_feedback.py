"""DynamoDB store behaviour of engagement, campaigns and webhooks that the port contract does not
pin down: what each operation writes (nothing per recipient at submit or send time), a failed or
expired create left out of a campaign, TTLs and the reads that filter expired deliveries, exact
newest-first order. Runs in-process under moto, like tests/integration/test_dynamodb_store.py.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator

import pytest

from mailsage.adapters.aws.dynamodb import DynamoStore
from mailsage.domain.models import Job, Message, MessageQuery, MessageStatus, Webhook, WebhookDelivery
from tests.contract.conftest import JobFactory
from tests.integration.test_dynamodb_store import (
    LEASE,
    RecordingClient,
    all_items,
    create_failing_at_the_job_write,
    item_size,
    raw_item,
)


@pytest.fixture
def table() -> Iterator[str]:
    from tests.contract.aws_store import dynamodb_table

    with dynamodb_table() as name:
        yield name


@pytest.fixture
def client(table: str) -> RecordingClient:
    import boto3

    return RecordingClient(boto3.client("dynamodb"))


@pytest.fixture
def store(table: str, client: RecordingClient) -> DynamoStore:
    store = DynamoStore(table, client)
    store.BACKOFF_BASE_SECONDS = 0.0
    return store


@pytest.fixture
def jobs(store: DynamoStore) -> JobFactory:
    return JobFactory(store)


def campaign_job(
    jobs: JobFactory, campaign: str | None, chunk_sizes: tuple[int, ...] = (2,), account: str = "acc_a"
) -> tuple[Job, list[Message]]:
    job, messages = jobs.build(account_id=account, chunk_sizes=chunk_sizes)
    job.campaign_id = campaign
    return job, messages


def send_all(store: DynamoStore, job: Job, messages: list[Message]) -> None:
    store.claim_messages(job.id, [m.id for m in messages], LEASE)
    for m in messages:
        assert store.finish_message(m.id, MessageStatus.SENT)


def writes(client: RecordingClient) -> list[tuple[str, str]]:
    """(operation, sort key) of every write call recorded (batch writes: one per item)."""
    found: list[tuple[str, str]] = []
    for op, kw in client.calls:
        if op in ("put_item",):
            found.append((op, kw["Item"]["sk"]["S"]))
        elif op in ("update_item", "delete_item"):
            found.append((op, kw["Key"]["sk"]["S"]))
        elif op == "batch_write_item":
            for requests in kw["RequestItems"].values():
                found += [(op, r["PutRequest"]["Item"]["sk"]["S"]) for r in requests]
    return found


# -- engagement -------------------------------------------------------------------------------------


def test_engagement_is_one_log_write_and_the_first_per_campaign_job_one_more(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    job, messages = campaign_job(jobs, "spring", (3,))
    store.create_job(job, messages)
    send_all(store, job, messages)
    client.calls.clear()
    # The first open: the message's log, and the job's campaign entry
    assert store.record_engagement("acc_a", messages[0].id, "opened", time.time(), "Mozilla") == 1
    assert writes(client) == [("update_item", "LOG"), ("update_item", f"CAMPAIGN#spring#{job.id}")]
    # Any later one: the log only
    client.calls.clear()
    assert store.record_engagement("acc_a", messages[0].id, "opened", time.time()) == 2
    assert writes(client) == [("update_item", "LOG")]
    # Reads: the head (eventually consistent, half price); the message item was read by the send
    # and is remembered (it never changes); another process reads it too, the same way
    gets = [kw for op, kw in client.calls if op == "get_item"]
    assert [(kw["Key"]["sk"]["S"], kw["ConsistentRead"]) for kw in gets] == [("JOB", False)]
    client.calls.clear()
    other = DynamoStore(store.table_name, client)
    assert other.record_engagement("acc_a", messages[1].id, "opened", time.time()) == 1
    gets = [kw for op, kw in client.calls if op == "get_item"]
    assert [(kw["Key"]["sk"]["S"], kw["ConsistentRead"]) for kw in gets] == [("MSG", False), ("JOB", False)]


def test_engagement_without_a_campaign_writes_the_log_only(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    send_all(store, job, messages)
    client.calls.clear()
    assert store.record_engagement("acc_a", messages[0].id, "clicked", time.time(), "https://a.test") == 1
    assert writes(client) == [("update_item", "LOG")]


def test_an_engagement_only_log_reads_back_with_the_message(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a sent message (a send writes no log item: its event is implied by its status) whose
    # log item was then created by an engagement
    job, messages = jobs.create(chunk_sizes=(2,))
    store.claim_messages(job.id, [messages[0].id], LEASE)
    assert store.finish_message(messages[0].id, MessageStatus.SENT)
    assert raw_item(client, store.table_name, f"MSG#{messages[0].id}", "LOG") is None
    at = time.time()
    assert store.record_engagement("acc_a", messages[0].id, "opened", at, None) == 1
    # Then every read shows the send (at the state's time, first) and the open
    message = store.get_message("acc_a", messages[0].id)
    assert message is not None and message.sent_at is not None
    expected = [
        {"time": message.sent_at, "status": "sent", "log": "accepted by the relay"},
        {"time": at, "status": "opened", "log": ""},
    ]
    assert message.events == expected
    assert [m.events for m in store.chunk_messages(job.id, 0)] == [expected, []]
    listed, _ = store.list_messages("acc_a", MessageQuery())
    assert {m.id: m.events for m in listed}[messages[0].id] == expected
    # And once a delivery event moved it on, the send's time is on the log item, and reads agree
    assert store.update_delivery_status(
        "acc_a", messages[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT]
    )
    again = store.get_message("acc_a", messages[0].id)
    assert again is not None and again.sent_at == message.sent_at
    assert [e["status"] for e in again.events] == ["sent", "opened", "delivered"]
    assert again.events[0] == expected[0]


def test_status_events_read_in_time_order_and_engagement_where_it_was_appended(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a message deferred once, then sent and delivered (the send's event implied by the
    # state, then kept as the log's sent_at), and an open recorded with an older clock
    job, messages = jobs.create(chunk_sizes=(1,))
    m = messages[0]
    store.claim_messages(job.id, [m.id], LEASE)
    assert store.release_message(m.id, "421 try later")
    store.claim_messages(job.id, [m.id], LEASE)
    assert store.finish_message(m.id, MessageStatus.SENT)
    store.record_engagement("acc_a", m.id, "opened", 1.0)
    assert store.update_delivery_status("acc_a", m.id, MessageStatus.DELIVERED, [MessageStatus.SENT])
    # Then the status events read in time order, the open where it was appended
    found = store.get_message("acc_a", m.id)
    assert found is not None
    assert [e["status"] for e in found.events] == ["deferred", "sent", "opened", "delivered"]


def test_a_log_written_before_sends_stopped_logging_reads_as_it_is(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a message whose send was logged the old way (event and sent_at on its log item)
    job, messages = jobs.create(chunk_sizes=(1,))
    m = messages[0]
    store.claim_messages(job.id, [m.id], LEASE)
    assert store.finish_message(m.id, MessageStatus.SENT)
    sent_at = store.get_message("acc_a", m.id).sent_at  # type: ignore[union-attr]
    client._client.update_item(
        TableName=store.table_name,
        Key={"pk": {"S": f"MSG#{m.id}"}, "sk": {"S": "LOG"}},
        UpdateExpression="SET events = :events, sent_at = :sent",
        ExpressionAttributeValues={
            ":events": {
                "L": [{"M": {"time": {"N": repr(sent_at)}, "status": {"S": "sent"}, "log": {"S": "old"}}}]
            },
            ":sent": {"N": repr(sent_at)},
        },
    )
    # When it is delivered / Then the send is neither doubled nor moved
    assert store.update_delivery_status("acc_a", m.id, MessageStatus.DELIVERED, [MessageStatus.SENT])
    found = store.get_message("acc_a", m.id)
    assert found is not None and found.sent_at == sent_at
    assert [(e["status"], e["log"]) for e in found.events] == [("sent", "old"), ("delivered", "delivered")]


def test_engagement_of_a_failed_or_expired_create_or_another_account_is_none(
    table: str, client: RecordingClient
) -> None:
    store = DynamoStore(table, client, retention_seconds=86_400)
    jobs = JobFactory(store)
    failed, failed_messages = campaign_job(jobs, "c")
    create_failing_at_the_job_write(store, client, failed, failed_messages)
    expired, expired_messages = campaign_job(jobs, "c")
    expired.created_at -= 2 * 86_400
    store.create_job(expired, expired_messages)
    live, live_messages = campaign_job(jobs, "c")
    store.create_job(live, live_messages)
    client.calls.clear()
    assert store.record_engagement("acc_a", failed_messages[0].id, "opened", time.time()) is None
    assert store.record_engagement("acc_a", expired_messages[0].id, "opened", time.time()) is None
    assert store.record_engagement("acc_b", live_messages[0].id, "opened", time.time()) is None
    assert store.record_engagement("acc_a", "msg_unknown", "opened", time.time()) is None
    assert writes(client) == []
    with pytest.raises(ValueError):
        store.record_engagement("acc_a", live_messages[0].id, "forwarded", time.time())


def test_the_log_an_engagement_creates_expires_with_the_message(table: str, client: RecordingClient) -> None:
    store = DynamoStore(table, client, retention_seconds=86_400)
    job, messages = JobFactory(store).create(chunk_sizes=(1,))
    store.record_engagement("acc_a", messages[0].id, "opened", time.time())
    message = raw_item(client, table, f"MSG#{messages[0].id}", "MSG")
    log_item = raw_item(client, table, f"MSG#{messages[0].id}", "LOG")
    assert message is not None and log_item is not None
    assert log_item["ttl"] == message["ttl"] == {"N": str(int(job.created_at + 86_400))}


# -- campaigns --------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipients", [1, 120])
def test_a_campaign_costs_one_item_per_job_whatever_its_recipients(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory, recipients: int
) -> None:
    plain, plain_messages = campaign_job(jobs, None, (recipients,))
    client.calls.clear()
    store.create_job(plain, plain_messages)
    without = writes(client)
    tagged, tagged_messages = campaign_job(jobs, "spring", (recipients,))
    client.calls.clear()
    store.create_job(tagged, tagged_messages)
    with_campaign = writes(client)
    assert len(with_campaign) == len(without) + 1
    assert set(with_campaign) - set(without) == {("put_item", f"CAMPAIGN#spring#{tagged.id}")}
    # written before the head (the commit point), and small: 1 write unit
    puts = [sk for op, sk in with_campaign if op == "put_item"]
    assert puts.index(f"CAMPAIGN#spring#{tagged.id}") < puts.index("JOB")
    entry = raw_item(client, store.table_name, "ACCOUNT#acc_a", f"CAMPAIGN#spring#{tagged.id}")
    assert entry is not None and item_size(entry) <= 1024
    # Sending writes nothing for the campaign
    client.calls.clear()
    send_all(store, tagged, tagged_messages)
    assert not [sk for _, sk in writes(client) if sk.startswith("CAMPAIGN#")]


def test_a_failed_create_is_not_counted_in_its_campaign_and_a_retry_counts_once(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    job, messages = campaign_job(jobs, "spring", (3,))
    create_failing_at_the_job_write(store, client, job, messages)
    # Its campaign entry exists, but its head does not
    assert raw_item(client, store.table_name, "ACCOUNT#acc_a", f"CAMPAIGN#spring#{job.id}") is not None
    assert store.campaign_stats("acc_a", "spring") is None
    store.create_job(job, messages)  # the redelivered ingest record
    stats = store.campaign_stats("acc_a", "spring")
    assert stats is not None and (stats.jobs, stats.counts) == (1, {"queued": 3})


def test_a_duplicate_create_keeps_the_campaign_entrys_engagement(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    # Given a campaign job being sent, with an open counted
    job, messages = campaign_job(jobs, "spring", (2,))
    store.create_job(job, messages)
    send_all(store, job, messages)
    store.record_engagement("acc_a", messages[0].id, "opened", time.time())
    # When a duplicate create raced past the existence check (it fails at the head)
    real_get = client._client.get_item
    client.hooks["get_item"] = lambda real, kw: {} if kw["Key"]["sk"]["S"] == "JOB" else real_get(**kw)
    with pytest.raises(Exception, match="already exists"):
        store.create_job(job, messages)
    del client.hooks["get_item"]
    # Then the counter is still there
    stats = store.campaign_stats("acc_a", "spring")
    assert stats is not None and (stats.opened, stats.counts) == (1, {"sent": 2})


def test_an_expired_job_leaves_its_campaign_before_dynamodb_deletes_it(
    table: str, client: RecordingClient
) -> None:
    store = DynamoStore(table, client, retention_seconds=86_400)
    jobs = JobFactory(store)
    old, old_messages = campaign_job(jobs, "spring", (2,))
    old.created_at -= 2 * 86_400
    store.create_job(old, old_messages)
    assert store.campaign_stats("acc_a", "spring") is None
    new, new_messages = campaign_job(jobs, "spring", (3,))
    store.create_job(new, new_messages)
    stats = store.campaign_stats("acc_a", "spring")
    assert stats is not None and (stats.jobs, stats.counts) == (1, {"queued": 3})


def test_campaign_ids_that_extend_another_are_kept_apart(store: DynamoStore, jobs: JobFactory) -> None:
    a, a_messages = campaign_job(jobs, "a", (1,))
    ab, ab_messages = campaign_job(jobs, "a#b", (2,))
    store.create_job(a, a_messages)
    store.create_job(ab, ab_messages)
    stats = store.campaign_stats("acc_a", "a")
    assert stats is not None and (stats.jobs, stats.counts) == (1, {"queued": 1})
    stats = store.campaign_stats("acc_a", "a#b")
    assert stats is not None and (stats.jobs, stats.counts) == (1, {"queued": 2})


def test_campaign_stats_reads_no_message(
    store: DynamoStore, client: RecordingClient, jobs: JobFactory
) -> None:
    for _ in range(3):
        job, messages = campaign_job(jobs, "spring", (50, 50))
        store.create_job(job, messages)
        send_all(store, job, messages)
        for m in messages[:10]:
            store.record_engagement("acc_a", m.id, "opened", time.time())
            store.record_engagement("acc_a", m.id, "opened", time.time())
        store.record_engagement("acc_a", messages[0].id, "clicked", time.time())
    client.calls.clear()
    stats = store.campaign_stats("acc_a", "spring")
    assert stats is not None
    assert (stats.jobs, stats.counts, stats.opened, stats.clicked, stats.unsubscribed) == (
        3,
        {"sent": 300},
        30,
        3,
        0,
    )
    # one query for the entries, one per job (its head and chunk states)
    assert {op for op, _ in client.calls} == {"query"}
    assert client.count("query") == 4


# -- webhooks ---------------------------------------------------------------------------------------


def webhook(account: str = "acc_a") -> Webhook:
    now = time.time()
    return Webhook(
        id=str(uuid.uuid4()),
        account_id=account,
        name="hook",
        url="https://hooks.example.com/x",
        secret="s3cret",
        enabled=True,
        events=["message.delivered"],
        created_at=now,
        updated_at=now,
    )


def delivery(hook: Webhook, created_at: float, expires_at: float | None) -> WebhookDelivery:
    return WebhookDelivery(
        id=f"msg_{uuid.uuid4().hex}",
        account_id=hook.account_id,
        webhook_id=hook.id,
        event_type="message.delivered",
        payload="{}",
        created_at=created_at,
        updated_at=created_at,
        expires_at=expires_at,
    )


def test_an_attempt_is_one_write_and_disabling_one_more(store: DynamoStore, client: RecordingClient) -> None:
    hook = webhook()
    store.put_webhook(hook)
    client.calls.clear()
    counted = store.record_webhook_attempt("acc_a", hook.id, False, 10.0, 2)
    assert counted is not None and counted.enabled and client.count("update_item") == 1
    assert {op for op, _ in client.calls} == {"update_item"}
    client.calls.clear()
    counted = store.record_webhook_attempt("acc_a", hook.id, False, 11.0, 2)
    assert counted is not None and not counted.enabled and counted.disabled_reason
    assert client.count("update_item") == 2
    # A further failure does not disable it again (nor change the reason)
    client.calls.clear()
    again = store.record_webhook_attempt("acc_a", hook.id, False, 12.0, 2)
    assert again is not None and again.disabled_reason == counted.disabled_reason
    assert (again.error_count, again.errors_since_last_success) == (3, 3)
    assert client.count("update_item") == 1
    # An unknown (or deleted) webhook gets no stray item
    assert store.record_webhook_attempt("acc_a", str(uuid.uuid4()), True, 13.0, 2) is None
    assert len([i for i in all_items(client, store.table_name) if i["sk"]["S"].startswith("WEBHOOK#")]) == 1


def test_deliveries_carry_a_ttl_and_expired_ones_are_not_read_before_dynamodb_deletes_them(
    store: DynamoStore, client: RecordingClient
) -> None:
    hook = webhook()
    store.put_webhook(hook)
    now = time.time()
    live = delivery(hook, now - 10, now + 3600.3)
    expired = delivery(hook, now - 5, now - 1)
    forever = delivery(hook, now - 20, None)
    for d in (live, expired, forever):
        store.put_webhook_delivery(d)
    pk = f"WEBHOOK#acc_a#{hook.id}"
    live_item = raw_item(client, store.table_name, pk, f"DELIVERY#{live.id}")
    assert live_item is not None and live_item["ttl"] == {"N": str(math.ceil(live.expires_at or 0))}
    forever_item = raw_item(client, store.table_name, pk, f"DELIVERY#{forever.id}")
    assert forever_item is not None and "ttl" not in forever_item
    # moto never deletes expired items (DynamoDB does, eventually): the reads filter
    assert raw_item(client, store.table_name, pk, f"DELIVERY#{expired.id}") is not None
    assert store.get_webhook_delivery("acc_a", hook.id, expired.id) is None
    page, more = store.list_webhook_deliveries("acc_a", hook.id, 10, None)
    assert [d.id for d in page] == [live.id, forever.id] and not more
    # an expired delivery still works as a cursor
    page, _ = store.list_webhook_deliveries("acc_a", hook.id, 10, expired.id)
    assert [d.id for d in page] == [live.id, forever.id]


def test_deliveries_are_newest_first_by_their_exact_time_then_id(store: DynamoStore) -> None:
    hook = webhook()
    store.put_webhook(hook)
    base = 1_700_000_000.0
    times = [base, base + 2.5e-7, base + 5e-7, base + 5e-7, base + 1.0]  # below a microsecond apart
    made = [delivery(hook, t, None) for t in times]
    for d in reversed(made):
        store.put_webhook_delivery(d)
    expected = [d.id for d in sorted(made, key=lambda d: (d.created_at, d.id), reverse=True)]
    got: list[str] = []
    after: str | None = None
    while True:
        page, more = store.list_webhook_deliveries("acc_a", hook.id, 2, after)
        got += [d.id for d in page]
        if not more:
            break
        after = page[-1].id
    assert got == expected


def test_a_long_delivery_log_is_read_only_as_far_as_the_page(
    store: DynamoStore, client: RecordingClient
) -> None:
    hook = webhook()
    store.put_webhook(hook)
    now = time.time()
    for i in range(120):
        store.put_webhook_delivery(delivery(hook, now - i, now + 3600))
    client.calls.clear()
    page, more = store.list_webhook_deliveries("acc_a", hook.id, 10, None)
    assert len(page) == 10 and more
    queried = [kw.get("Limit") for op, kw in client.calls if op == "query"]
    assert queried == [store.LISTING_PAGE]


def test_deliveries_are_scoped_by_account_and_webhook(store: DynamoStore) -> None:
    hook = webhook()
    store.put_webhook(hook)
    d = delivery(hook, time.time(), None)
    store.put_webhook_delivery(d)
    assert store.get_webhook_delivery("acc_b", hook.id, d.id) is None
    assert store.get_webhook_delivery("acc_a", str(uuid.uuid4()), d.id) is None
    assert store.list_webhook_deliveries("acc_b", hook.id, 10, None) == ([], False)
    assert store.get_webhook("acc_b", hook.id) is None
    assert store.delete_webhook("acc_b", hook.id) is False
    assert store.get_webhook("acc_a", hook.id) is not None


def test_deleting_a_webhook_is_one_write_and_its_deliveries_expire(
    store: DynamoStore, client: RecordingClient
) -> None:
    hook = webhook()
    store.put_webhook(hook)
    for i in range(5):
        store.put_webhook_delivery(delivery(hook, time.time() + i, time.time() + 3600))
    client.calls.clear()
    assert store.delete_webhook("acc_a", hook.id)
    assert [op for op, _ in client.calls] == ["delete_item"]
    assert not store.delete_webhook("acc_a", hook.id)
