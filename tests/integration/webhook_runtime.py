"""The api and webhooks functions on either runtime, for webhook tests that go from an API call to a
POST at a real receiver: `local` (SQLite and its queues in a temporary data directory) and `aws`
(DynamoDB and SQS under moto). `runtime.deliver()` does what the webhooks function's event source
does: hands what the webhook queue holds to the real handler and acknowledges what succeeded.

A test module's fixture:

    @pytest.fixture(params=RUNTIMES)
    def runtime(request, tmp_path, monkeypatch):
        yield from start(request.param, tmp_path, monkeypatch)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailsage.domain.auth import AuthService
from mailsage.local.events import sqs_event
from mailsage.local.functions import LocalContext, load_handler
from mailsage.settings import CommonSettings
from mailsage.wiring import Backends, backends
from tests.conftest import Account, ApiClient


@dataclass
class Runtime:
    name: str
    backends: Backends
    account: Account
    handlers: dict[str, ModuleType] = field(default_factory=dict)

    def handler(self, name: str) -> ModuleType:
        """The function's handler, loaded once (one cold start) with this runtime's settings."""
        if name not in self.handlers:
            self.handlers[name] = load_handler(name)
        return self.handlers[name]

    def api(self, key: str | None = "default") -> ApiClient:
        return ApiClient(self.handler("api"), self.account.key if key == "default" else key)

    def new_account(self) -> Account:
        account_id = str(uuid.uuid4())
        return Account(account_id, AuthService(self.backends.store).create_key(account_id))

    def deliver(self) -> dict[str, Any]:
        """One invocation of the webhooks function over what its queue holds now (at least one)."""
        queue = self.backends.webhooks
        assert queue is not None
        received = queue.receive(max_messages=10, wait_seconds=1)
        assert received, "nothing on the webhook queue"
        result: dict[str, Any] = self.handler("webhooks").lambda_handler(
            sqs_event(received), LocalContext("mailsage-webhooks")
        )
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for r in received:
            if r.message_id not in failed:
                queue.ack(r.receipt)
        return result


def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(tmp_path / "data"))
    for name in ("MAILSAGE_SMTP_URL", "MAILSAGE_DEV_API_KEY", "MAILSAGE_DEV_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAILSAGE_ALLOW_PRIVATE_WEBHOOK_URLS", "true")  # the receiver is on loopback
    found = backends(CommonSettings())
    account_id = str(uuid.uuid4())
    yield Runtime("local", found, Account(account_id, AuthService(found.store).create_key(account_id)))


def _aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        sqs = boto3.client("sqs", region_name=REGION)
        send_url = sqs.create_queue(QueueName=f"send-{suffix}")["QueueUrl"]
        webhooks_url = sqs.create_queue(QueueName=f"webhooks-{suffix}")["QueueUrl"]
        use_aws_backend(
            monkeypatch,
            tmp_path / "data",
            table,
            send_url,
            WEBHOOK_QUEUE_URL=webhooks_url,
            ALLOW_PRIVATE_WEBHOOK_URLS="true",
            SIGNING_SECRET="k" * 32,
        )
        found = Backends(DynamoStore(table), SqsQueue(send_url), None, SqsQueue(webhooks_url))
        account_id = str(uuid.uuid4())
        yield Runtime("aws", found, Account(account_id, AuthService(found.store).create_key(account_id)))


RUNTIMES = ("local", "aws")


def start(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """For a test module's `runtime` fixture, parametrized over RUNTIMES."""
    yield from (_local if name == "local" else _aws)(tmp_path, monkeypatch)
