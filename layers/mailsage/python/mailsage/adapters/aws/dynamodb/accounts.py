"""Accounts and their API keys (stored hashed)."""

from __future__ import annotations

import time
from typing import Any

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.codec import expression_names, marshal, unmarshal
from mailsage.adapters.aws.dynamodb.keys import make_key
from mailsage.adapters.aws.table import PARTITION_KEY
from mailsage.domain.api_keys import ApiKeyInfo
from mailsage.domain.models import Account

APIKEY_SK = "APIKEY"


class Accounts(TableClient):
    """AccountStore on the table."""

    def put_api_key(self, account_id: str, key_id: str, key_hash: str) -> None:
        self._put(
            {
                **make_key(f"APIKEY#{key_id}", APIKEY_SK),
                "account_id": account_id,
                "key_hash": key_hash,
                "created_at": time.time(),
            }
        )

    def get_api_key(self, key_id: str) -> tuple[str, str] | None:
        item = self._get(make_key(f"APIKEY#{key_id}", APIKEY_SK))
        return (item["account_id"], item["key_hash"]) if item else None

    def list_api_keys(self, account_id: str | None = None) -> list[ApiKeyInfo]:
        # Keys have no index (authentication reads one by id): a filtered Scan, which reads the
        # whole table. Fine for an operator's occasional listing; nothing in a request calls it.
        condition = "#sk = :sk" + (" AND #account = :account" if account_id else "")
        values = {":sk": APIKEY_SK, **({":account": account_id} if account_id else {})}
        projection = "#pk, #account, #created"
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": condition,
            "ExpressionAttributeNames": expression_names(condition, projection),
            "ExpressionAttributeValues": marshal(values),
            "ProjectionExpression": projection,
        }
        found: list[ApiKeyInfo] = []
        for page in self.client.get_paginator("scan").paginate(**request):
            for raw in page.get("Items", []):
                item = unmarshal(raw)
                key_id = item[PARTITION_KEY].removeprefix("APIKEY#")
                found.append(ApiKeyInfo(key_id, item["account_id"], float(item["created_at"])))
        return sorted(found, key=lambda info: (info.created_at, info.key_id))

    def delete_api_key(self, key_id: str) -> bool:
        return self._delete(make_key(f"APIKEY#{key_id}", APIKEY_SK))

    def put_account(self, account: Account) -> None:
        self._put(
            {
                **make_key(f"ACCOUNT#{account.id}", "ACCOUNT"),
                "default_provider": account.default_provider,
                "sender_domains": account.sender_domains,
            }
        )

    def get_account(self, account_id: str) -> Account | None:
        item = self._get(make_key(f"ACCOUNT#{account_id}", "ACCOUNT"))
        if item is None:
            return None
        return Account(account_id, item.get("default_provider"), item.get("sender_domains"))
