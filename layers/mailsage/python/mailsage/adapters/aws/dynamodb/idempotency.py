"""Idempotency records: one per (account, key), expiring."""

from __future__ import annotations

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import idempotency_key, ttl_not_before
from mailsage.adapters.aws.dynamodb.records import decode_idempotency
from mailsage.adapters.aws.table import TTL_ATTRIBUTE
from mailsage.domain.models import IDEMPOTENCY_LEASE_SECONDS, IdempotencyRecord, IdempotencyState


class Idempotency(TableClient):
    """IdempotencyStore on the table."""

    def begin_idempotent(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """One conditional PutItem: written if there is no record or only an expired one; else
        DynamoDB returns the live record with the failure (ReturnValuesOnConditionCheckFailure)."""
        item = {
            **idempotency_key(record.account_id, record.key),
            "account_id": record.account_id,
            "key": record.key,
            "fingerprint": record.fingerprint,
            "state": IdempotencyState.IN_PROGRESS.value,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "headers": {},
            TTL_ATTRIBUTE: ttl_not_before(record.expires_at),
        }
        for _ in range(self.RACE_RETRIES):
            written, current = self._put_returning(
                item,
                "attribute_not_exists(#pk) OR #expires <= :now OR (#state = :busy AND #created <= :lease)",
                {
                    ":now": record.created_at,
                    ":busy": IdempotencyState.IN_PROGRESS.value,
                    ":lease": record.created_at - IDEMPOTENCY_LEASE_SECONDS,
                },
            )
            if written:
                return None
            if current is not None:
                return decode_idempotency(current)
        raise RuntimeError(f"idempotency key {record.key!r}: neither stored nor found")

    def finish_idempotent(
        self, account_id: str, key: str, status: int, body: str, headers: dict[str, str]
    ) -> None:
        self._update(
            idempotency_key(account_id, key),
            "SET #state = :done, #status = :status, #body = :body, #headers = :headers",
            {
                ":done": IdempotencyState.DONE.value,
                ":status": status,
                ":body": body,
                ":headers": dict(headers),
            },
            "attribute_exists(#pk)",  # a released (or expired and deleted) key gets no stray item
        )

    def release_idempotent(self, account_id: str, key: str) -> None:
        self._delete(idempotency_key(account_id, key))
