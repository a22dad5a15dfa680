"""A job's content is one DynamoDB item (400 KB at most) on the AWS backend, while the API accepts
more (3 MiB of attachments, 300 KB of bodies): such a request is refused before anything is written,
as `payload_too_large` (413 on v1; 400 `{"message"}` on /v2/, whose contract has no 413), instead of
the 500 BatchWriteItem's ValidationException made of it. The embedded (SQLite) backend keeps taking it.
The real api handler with MAILSAGE_BACKEND=aws, on a DynamoDB table and an SQS queue under moto."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsage.domain.auth import AuthService
from mailsage.local.functions import load_handler
from mailsage.ports import Queue, Store
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply
from tests.contract.aws_store import dynamodb_table
from tests.moto_env import REGION, use_aws_backend

LIMIT_TEXT = "DynamoDB's item limit"


def attachment(size: int) -> dict[str, Any]:
    return {
        "base64": True,
        "data": base64.b64encode(os.urandom(size)).decode(),  # random: as large stored as sent
        "content_type": "application/pdf",
        "file_name": "report.pdf",
    }


def v2_message(*attachments: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "from": {"email": "hello@example.com", "name": "Example"},
        "recipients": [{"email": "a@example.com"}],
        "subject": "Your report",
        "text_content": "Attached.",
        "attachments": list(attachments),
        **fields,
    }


class AwsApi:
    def __init__(self, table: str, send_url: str) -> None:
        import boto3

        from mailsage.adapters.aws.dynamodb import DynamoStore
        from mailsage.adapters.aws.sqs_queue import SqsQueue

        self.table = table
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.store: Store = DynamoStore(table)
        self.queue: Queue = SqsQueue(send_url)
        self.account_id = str(uuid.uuid4())
        key = AuthService(self.store).create_key(self.account_id)
        self.api = ApiClient(load_handler("api"), key)
        self.messages = f"/v2/accounts/{self.account_id}/messages"

    def keys(self) -> set[tuple[str, str]]:
        """Every item's key in the table."""
        items = self.dynamodb.scan(TableName=self.table)["Items"]  # small tables: one page
        return {(item["pk"]["S"], item["sk"]["S"]) for item in items}

    def written_since(self, before: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Items written since `before`, leaving out the account's suppression marker (written by
        the suppression check every submission makes, not by the job) and its request count (every
        authenticated request's, tests/integration/test_rate_limits.py)."""
        counted = {
            (f"ACCOUNT#{self.account_id}", "SUPPRESSIONS"),
            (f"PACING#api-account:{self.account_id}", "PACING"),
        }
        return self.keys() - before - counted


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsApi]:
    import boto3

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        send_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName=f"send-{suffix}")[
            "QueueUrl"
        ]
        use_aws_backend(monkeypatch, tmp_path / "data", table, send_url)
        yield AwsApi(table, send_url)


def refusal_400(reply: Reply) -> str:
    assert reply.status == 400, reply.body
    assert set(reply.body) == {"message"}
    return str(reply.body["message"])


def stored_attachments(store: Store, account_id: str, message_id: str) -> list[dict[str, Any]]:
    message = store.get_message(account_id, message_id.strip("<>").partition("@")[0])  # v2 ids: <id@domain>
    assert message is not None
    job = store.get_job(account_id, message.job_id, with_counts=False)
    assert job is not None
    return job.content.attachments


@pytest.mark.parametrize("retention", [None, {"data": 1}], ids=["content-item", "separate-body-item"])
def test_a_1_mb_attachment_on_dynamodb_is_refused_and_writes_nothing(
    aws: AwsApi, retention: dict[str, int] | None
) -> None:
    before = aws.keys()
    body = v2_message(attachment(1_000_000), **({"retention": retention} if retention else {}))
    message = refusal_400(aws.api.post(aws.messages, body))
    assert message.startswith("the message content and attachments are ")
    assert LIMIT_TEXT in message and "send large files as links" in message
    stored = int(message.split(" are ")[1].split(" bytes")[0])
    assert stored > 1_333_000  # the attachment in base64, counted as stored
    # Nothing of the job was written, nothing enqueued, nothing listed
    assert aws.written_since(before) == set()
    assert aws.queue.depth() == 0
    listing = aws.api.get(aws.messages)
    assert listing.status == 200 and listing.body["data"] == []


def test_v1_content_that_fits_the_content_limit_but_not_the_item_is_a_413(aws: AwsApi) -> None:
    # 299,980 bytes of UTF-8 (under max_content_bytes, 300,000) stored as 899,940 bytes of JSON
    # (each "é" is "\u00e9" there)
    before = aws.keys()
    reply = aws.api.post(
        "/api/v1/emails/send",
        {"recipient": {"email": "a@example.com"}, "subject": "Hi", "html": "\u00e9" * 149_990},
    )
    assert reply.status == 413, reply.body
    assert reply.error["code"] == "payload_too_large"
    assert LIMIT_TEXT in reply.error["message"]
    assert reply.error["details"]["max"] == 390 * 1024
    assert reply.error["details"]["stored_bytes"] > 899_940
    assert aws.written_since(before) == set()
    assert aws.queue.depth() == 0


def test_a_refused_request_with_an_idempotency_key_is_replayed_as_refused(aws: AwsApi) -> None:
    before = aws.keys()
    body = v2_message(attachment(1_000_000))
    headers = {"Idempotency-Key": f"big-{uuid.uuid4().hex}"}
    first = aws.api.post(aws.messages, body, headers=headers)
    message = refusal_400(first)
    assert LIMIT_TEXT in message and "idempotent-replayed" not in first.headers
    # The key holds the refusal (a 4xx is the request's outcome), not a request in progress: the
    # retry gets the same answer, not a 409, and still nothing of the job exists
    again = aws.api.post(aws.messages, body, headers=headers)
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers.get("idempotent-replayed") == "true"
    written = aws.written_since(before)
    assert all(pk.startswith("IDEMPOTENCY#") or sk.startswith("IDEMPOTENCY#") for pk, sk in written), written
    assert aws.queue.depth() == 0


def test_a_50_kb_attachment_on_dynamodb_is_accepted_and_reads_back_intact(aws: AwsApi) -> None:
    small = attachment(50_000)
    reply = aws.api.post(aws.messages, v2_message(small))
    assert reply.status == 202, reply.body
    [entry] = reply.body["data"]
    assert entry["status"] == "queued"
    [stored] = stored_attachments(aws.store, aws.account_id, entry["id"])
    assert stored["data"] == small["data"] and stored["file_name"] == "report.pdf"
    assert base64.b64decode(stored["data"]) == base64.b64decode(small["data"])
    assert aws.queue.depth() == 1


def test_sqlite_still_accepts_a_1_mb_attachment(api: ApiClient, account: Account, stores: Backends) -> None:
    big = attachment(1_000_000)
    reply = api.post(f"/v2/accounts/{account.id}/messages", v2_message(big))
    assert reply.status == 202, reply.body
    [entry] = reply.body["data"]
    [stored] = stored_attachments(stores.store, account.id, entry["id"])
    assert stored["data"] == big["data"]
    assert stores.queue.depth() == 1
