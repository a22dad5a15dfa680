"""DynamoStore: the writes a single send takes. Its content is stored compressed when that is
smaller (a 2 KB template: 1 write unit instead of 3), and read back the same, as is content stored
as text before; its claim writes only the chunk state (the job is never `running`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailsage.adapters.aws.dynamodb import DynamoStore
from mailsage.domain.models import Job, Message, MessageStatus, new_message_ids
from tests.contract.aws_store import dynamodb_table
from tests.contract.conftest import JobFactory
from tests.integration.test_dynamodb_store import LEASE, RecordingClient, item_size, raw_item

TEMPLATE = "<html><body>" + "".join(
    f"<p>Hello {{{{ name }}}}, line {i} of the newsletter.</p>" for i in range(40)
)


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    with dynamodb_table() as name:  # one table for the module: each test has jobs of its own
        yield name


@pytest.fixture
def client(table: str) -> RecordingClient:
    import boto3

    return RecordingClient(boto3.client("dynamodb"))


@pytest.fixture
def store(table: str, client: RecordingClient) -> DynamoStore:
    return DynamoStore(table, client)


def single_send(store: DynamoStore, data_days: int | None = None) -> tuple[Job, Message]:
    job, [message] = JobFactory(store).build(chunk_sizes=(1,))
    message.id = new_message_ids(1)[0]
    job.content.html = TEMPLATE
    job.retention_data_days = data_days
    store.create_job(job, [message])
    return job, message


@pytest.mark.parametrize("data_days", [None, 3], ids=["content", "content-and-body"])
def test_a_templates_content_is_stored_compressed_and_reads_back_the_same(
    store: DynamoStore, client: RecordingClient, table: str, data_days: int | None
) -> None:
    # Given a single send of a 2 KB template
    assert len(TEMPLATE) > 2000
    job, _ = single_send(store, data_days)
    # Then its content items are under 1 KB each (1 write unit)
    for sk in ("JOB#CONTENT", "JOB#BODY") if data_days else ("JOB#CONTENT",):
        item = raw_item(client, table, f"JOB#{job.id}", sk)
        assert item is not None and item_size(item) < 1024
    # And the job reads back with the same content
    found = store.get_job(job.account_id, job.id)
    assert found is not None and found.content == job.content


def test_content_stored_as_text_still_reads(store: DynamoStore, client: RecordingClient, table: str) -> None:
    # Given a job whose content item holds JSON text (as every job written before compression)
    job, _ = single_send(store)
    found = store.get_job(job.account_id, job.id)
    assert found is not None
    from mailsage.adapters.aws.dynamodb.codec import to_json

    client._client.update_item(
        TableName=table,
        Key={"pk": {"S": f"JOB#{job.id}"}, "sk": {"S": "JOB#CONTENT"}},
        UpdateExpression="SET content = :text",
        ExpressionAttributeValues={":text": {"S": to_json(job.content.to_dict())}},
    )
    # When it is read / Then the content is the same
    again = DynamoStore(table).get_job(job.account_id, job.id)
    assert again is not None and again.content == found.content


def test_a_single_sends_claim_and_send_write_only_its_chunk_state(
    store: DynamoStore, client: RecordingClient
) -> None:
    # Given an accepted single send
    job, message = single_send(store)
    client.calls.clear()
    # When the sender claims and sends it, then completes the job
    assert store.claim_messages(job.id, [message.id], LEASE) == [message.id]
    assert store.finish_message(message.id, MessageStatus.SENT)
    assert store.complete_job_if_done(job.id)
    # Then the head was written once, by the completion
    updated = [kw["Key"]["sk"]["S"] for op, kw in client.calls if op == "update_item"]
    assert updated == ["CHUNK#000000", "CHUNK#000000", "JOB"]
