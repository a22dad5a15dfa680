"""Store factories for the AWS adapters (DynamoDB under moto), merged into conftest.STORES.

The "dynamodb" factory starts its own `moto.mock_aws()` with a region and fake credentials (the
previous environment is restored afterwards), creates a fresh table from the shared key schema
(`create_table_kwargs`, the same definition the CDK app deploys) and yields a `DynamoStore`, which
creates its boto3 client lazily inside the mock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from mailsage.ports import Store
from tests.moto_env import mocked_aws

TABLE_NAME = "mailsage-contract"


@contextmanager
def atomic_moto_dynamodb() -> Iterator[None]:
    """Make each moto DynamoDB request atomic across threads, as each DynamoDB write is.

    moto evaluates a ConditionExpression and then applies the update without a lock, so two
    threads can both pass the same condition; DynamoDB applies a conditional write to an item
    atomically. The racing-claims and racing-completion contract tests would catch moto, not the
    adapter. One lock around every request of this in-process mock is enough."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    lock = threading.RLock()

    def call_action(handler: DynamoHandler) -> Any:
        with lock:
            return original(handler)

    with mock.patch.object(DynamoHandler, "call_action", call_action):
        yield


@contextmanager
def dynamodb_table(table_name: str = TABLE_NAME) -> Iterator[str]:
    """A fresh, empty table under moto, created like the deployed one; yields its name."""
    import boto3

    from mailsage.adapters.aws.table import create_table_kwargs

    with mocked_aws(), atomic_moto_dynamodb():
        boto3.client("dynamodb").create_table(**create_table_kwargs(table_name))
        yield table_name


@contextmanager
def _dynamodb_store(tmp_path: Path) -> Iterator[Store]:
    from mailsage.adapters.aws.dynamodb import DynamoStore

    with dynamodb_table() as table_name:
        yield DynamoStore(table_name)


STORES: dict[str, Callable[[Path], AbstractContextManager[Store]]] = {"dynamodb": _dynamodb_store}
