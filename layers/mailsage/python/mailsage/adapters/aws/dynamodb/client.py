"""The low-level table client: one item's get, put, update and delete, lazily paged queries, batched
gets and writes with retries of unprocessed items (backoff), and a little parallelism. Every
aggregate module reaches DynamoDB through it; boto3 is imported lazily, on first use."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mailsage.adapters.aws.dynamodb.codec import expression_names, marshal, to_attribute, unmarshal
from mailsage.adapters.aws.dynamodb.keys import Item, key_of

T = TypeVar("T")


class BatchIncomplete(RuntimeError):
    """DynamoDB kept returning unprocessed items or keys (throttling) after every retry."""


class TableClient:
    """The table and its client; the requests every aggregate module is built from."""

    BATCH_WRITE_ITEMS = 25  # BatchWriteItem limit
    BATCH_GET_KEYS = 100  # BatchGetItem limit
    BATCH_ATTEMPTS = 8  # calls per batch while DynamoDB returns unprocessed items or keys
    BACKOFF_BASE_SECONDS = 0.05
    BACKOFF_MAX_SECONDS = 2.0
    WRITE_THREADS = 4  # concurrent batch calls while creating a large job
    RACE_RETRIES = 10  # re-tries of a multi-message update that lost a race to another writer
    LISTING_PAGE = 25  # index items of the first query page of a listing (doubling after)

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client("dynamodb")
        return self._client

    def _get_one(self, key: Item, consistent: bool) -> dict[tuple[str, str], Item]:
        item = self._get(key, consistent=consistent)
        return {key_of(item): item} if item is not None else {}

    def _get(self, key: Item, consistent: bool = True) -> Item | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=marshal(key), ConsistentRead=consistent
        )
        return unmarshal(response["Item"]) if "Item" in response else None

    def _query(
        self,
        key_condition: str,
        values: dict[str, Any],
        *,
        index: str | None = None,
        consistent: bool = False,
        start: Item | None = None,
        limit: int | None = None,
        forward: bool = True,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Every matching item (up to `limit`), following LastEvaluatedKey across 1 MB pages,
        lazily: a page is read when the caller gets that far. `page_size` caps the first page (and
        doubles with every next one), for callers that may stop early."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": expression_names(key_condition),
            "ExpressionAttributeValues": marshal(values),
            "ScanIndexForward": forward,
        }
        if index is not None:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent  # an index is only ever eventually consistent
        if start is not None:
            request["ExclusiveStartKey"] = marshal(start)
        remaining = limit
        while remaining is None or remaining > 0:
            caps = [n for n in (remaining, page_size) if n is not None]
            if caps:
                request["Limit"] = min(caps)
            elif "Limit" in request:
                del request["Limit"]
            response = self.client.query(**request)
            for raw in response.get("Items", []):
                yield unmarshal(raw)
            if remaining is not None:
                remaining -= len(response.get("Items", []))
            if page_size is not None:
                page_size = min(page_size * 2, 1000)
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _batch_get(self, keys: Sequence[Item], consistent: bool) -> dict[tuple[str, str], Item]:
        """The items that exist among `keys` (100 keys per call; unprocessed keys retried)."""
        unique = list({key_of(key): key for key in keys}.values())  # duplicates are rejected
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(unique), self.BATCH_GET_KEYS):
            batch = unique[start : start + self.BATCH_GET_KEYS]
            request = {self.table_name: {"Keys": [marshal(k) for k in batch], "ConsistentRead": consistent}}
            for attempt in range(self.BATCH_ATTEMPTS):
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = unmarshal(raw)
                    found[key_of(item)] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._backoff(attempt)
            else:
                raise BatchIncomplete(
                    f"BatchGetItem: keys still unprocessed after {self.BATCH_ATTEMPTS} calls"
                )
        return found

    def _put(self, item: Item, condition: str | None = None) -> bool:
        """PutItem; False if `condition` did not hold."""
        return self._put_returning(item, condition)[0]

    def _put_returning(
        self, item: Item, condition: str | None = None, values: dict[str, Any] | None = None
    ) -> tuple[bool, Item | None]:
        """PutItem: (True, None) if written, else (False, the item as it is now)."""
        request: dict[str, Any] = {"TableName": self.table_name, "Item": marshal(item)}
        if condition is not None:
            request |= {
                "ConditionExpression": condition,
                "ExpressionAttributeNames": expression_names(condition),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        if values:
            request["ExpressionAttributeValues"] = {k: to_attribute(v) for k, v in values.items()}
        try:
            self.client.put_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            current = exc.response.get("Item")
            return False, unmarshal(current) if current else None
        return True, None

    def _delete(self, key: Item) -> bool:
        """DeleteItem; whether the item was there (ReturnValues ALL_OLD, at no extra cost)."""
        response = self.client.delete_item(
            TableName=self.table_name, Key=marshal(key), ReturnValues="ALL_OLD"
        )
        return "Attributes" in response

    def _update(self, key: Item, update: str, values: dict[str, Any], condition: str) -> bool:
        """A conditional UpdateItem; False if the condition did not hold."""
        return self._try_update(key, update, values, condition)[0]

    def _try_update(
        self,
        key: Item,
        update: str,
        values: dict[str, Any],
        condition: str | None = None,
        returns: str | None = None,
    ) -> tuple[bool, Item | None]:
        """An UpdateItem, conditional if a condition is given: (True, None) if it was applied, else
        (False, the item as it is now), which DynamoDB returns with the failure at no extra cost.
        With `returns` (UPDATED_NEW, ALL_NEW, ...), an applied update comes back with those
        attributes instead of None (also at no extra cost)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": marshal(key),
            "UpdateExpression": update,
            "ExpressionAttributeNames": expression_names(update, condition),
        }
        if condition is not None:
            request |= {"ConditionExpression": condition, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if returns is not None:
            request["ReturnValues"] = returns
        if values:
            # Unlike top-level item attributes, a None value here is stored as NULL.
            request["ExpressionAttributeValues"] = {k: to_attribute(v) for k, v in values.items()}
        try:
            response = self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            current = exc.response.get("Item")
            return False, unmarshal(current) if current else None
        return True, unmarshal(response.get("Attributes", {})) if returns is not None else None

    def _batch_write(self, items: Sequence[Item]) -> None:
        batches = [
            items[start : start + self.BATCH_WRITE_ITEMS]
            for start in range(0, len(items), self.BATCH_WRITE_ITEMS)
        ]
        self._in_parallel(self._write_batch, batches)

    def _write_batch(self, items: Sequence[Item]) -> None:
        """One BatchWriteItem of up to 25 puts; unprocessed items (throttling) are retried."""
        request = {self.table_name: [{"PutRequest": {"Item": marshal(item)}} for item in items]}
        for attempt in range(self.BATCH_ATTEMPTS):
            response = self.client.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                return
            self._backoff(attempt)
        left = len(request.get(self.table_name, []))
        raise BatchIncomplete(
            f"BatchWriteItem: {left} items still unprocessed after {self.BATCH_ATTEMPTS} calls"
        )

    def _in_parallel(self, work: Callable[[Any], T], inputs: Sequence[Any]) -> list[T]:
        """`work` on every input, a few at a time, results in order; the first failure is raised."""
        if len(inputs) <= 1:
            return [work(one) for one in inputs]
        with ThreadPoolExecutor(max_workers=min(self.WRITE_THREADS, len(inputs))) as pool:
            return list(pool.map(work, inputs))

    def _backoff(self, attempt: int) -> None:
        delay = min(self.BACKOFF_MAX_SECONDS, self.BACKOFF_BASE_SECONDS * 2**attempt)
        time.sleep(delay * random.uniform(0.5, 1.0))
