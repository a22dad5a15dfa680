"""Retention: DynamoDB's TTL deletes what expires; this brings data items' and bodies' TTLs forward."""

from __future__ import annotations

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import BODY_SK, DATA_SK, DAY, Item, job_pk, make_key, message_key
from mailsage.adapters.aws.dynamodb.records import message_id_of


class Retention(TableClient):
    """RetentionStore on the table: TTLs do the work."""

    PURGES_BY_TTL = True  # purge_expired does nothing: DynamoDB's TTL deletes (see TABLE.md)

    def purge_expired(self, now: float) -> int:
        """Nothing to do: every item that retention removes carries a TTL (TABLE.md, Retention),
        DynamoDB deletes it, and reads treat it as gone from the moment it expires."""
        return 0

    def _retire_data(self, message: Item, now: float) -> None:
        """A finished message of a job with a data retention: its data item goes now (0 days) or
        `days` from now (TTL), like the embedded store's data_until."""
        days = message.get("data_days")
        if days is None:
            return
        key = message_key(message_id_of(message), DATA_SK)
        if int(days) <= 0:
            self._delete(key)
        else:
            self._lower_ttl(key, int(now + DAY * int(days)))

    def _retire_body(self, job_id: str, days: int | None, now: float) -> None:
        """A job that ended, with a data retention: its bodies go now (0 days) or `days` from now."""
        if days is None:
            return
        key = make_key(job_pk(job_id), BODY_SK)
        if days <= 0:
            self._delete(key)
        else:
            self._lower_ttl(key, int(now + DAY * days))

    def _lower_ttl(self, key: Item, ttl: int) -> bool:
        """Bring an existing item's TTL forward to `ttl` (never later than it already is)."""
        return self._update(
            key,
            "SET #ttl = :ttl",
            {":ttl": ttl},
            "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl > :ttl)",
        )
