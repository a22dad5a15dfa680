"""Suppressions, per account and optionally per sender domain, with the account's marker that spares
an account without suppressions every read."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import (
    NO_SUPPRESSIONS,
    SOME_SUPPRESSIONS,
    SUPPRESSION_MARK_SK,
    SUPPRESSION_PREFIX,
    Item,
    key_of,
    make_key,
    suppression_key,
    suppressions_index,
    ttl_not_before,
)
from mailsage.adapters.aws.dynamodb.records import decode_suppression
from mailsage.adapters.aws.table import GSI1_NAME, GSI1_PARTITION_KEY, GSI1_SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain.models import Suppression


class Suppressions(TableClient):
    """SuppressionStore on the table."""

    SUPPRESSION_MARK_SECONDS = 2.0  # how long suppressed() reuses an account's marker
    SUPPRESSION_MARKS_KEPT = 1024  # accounts whose marker is remembered at once

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(table_name, client)
        # account -> (monotonic time read, its suppression marker's state): see suppressed
        self._suppression_marks: dict[str, tuple[float, str | None]] = {}

    def put_suppression(self, suppression: Suppression) -> None:
        """The account's marker says "some" before and after the write (see suppressed)."""
        self._mark_suppressions(suppression.account_id, SOME_SUPPRESSIONS)
        self._put(
            {
                **suppression_key(suppression.account_id, suppression.email, suppression.domain),
                "id": suppression.id,
                "account_id": suppression.account_id,
                "email": suppression.email.lower(),
                "domain": (suppression.domain or "").lower(),
                "reason": suppression.reason,
                "created_at": suppression.created_at,
                "expires_at": suppression.expires_at,
                TTL_ATTRIBUTE: ttl_not_before(suppression.expires_at),
                # the account's suppressions in id order (list_suppressions)
                GSI1_PARTITION_KEY: suppressions_index(suppression.account_id),
                GSI1_SORT_KEY: suppression.id,
            }
        )
        self._mark_suppressions(suppression.account_id, SOME_SUPPRESSIONS)

    def list_suppressions(
        self,
        account_id: str,
        email: str | None,
        domain: str | None,
        from_time: float | None,
        to_time: float | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[Suppression], bool]:
        now = time.time()
        items: Iterable[Item]
        if email:  # its few items, from the table (at most one per sender domain)
            items = sorted(self._suppressions_of(account_id, email), key=lambda item: item["id"])
            items = [item for item in items if after is None or item["id"] > after]
        else:  # the account's, in id order, from gsi1 (eventually consistent)
            condition = "#g1pk = :pk" + (" AND #g1sk > :after" if after else "")
            values = {":pk": suppressions_index(account_id), **({":after": after} if after else {})}
            items = self._query(condition, values, index=GSI1_NAME, page_size=self.LISTING_PAGE)
        found: list[Suppression] = []
        for item in items:
            if (
                item["expires_at"] <= now
                or (domain and item["domain"] != domain.lower())
                or (from_time is not None and item["created_at"] < from_time)
                or (to_time is not None and item["created_at"] > to_time)
            ):
                continue
            found.append(decode_suppression(item))
            if len(found) > limit:
                break
        return found[: max(limit, 0)], len(found) > limit

    def delete_suppressions(self, account_id: str, email: str | None, domain: str | None) -> int:
        if email:
            items = self._suppressions_of(account_id, email)
        else:
            items = list(
                self._query(
                    "#pk = :pk AND begins_with(#sk, :prefix)",
                    {":pk": f"ACCOUNT#{account_id}", ":prefix": SUPPRESSION_PREFIX},
                    consistent=True,
                )
            )
        keys = [make_key(*key_of(item)) for item in items if not domain or item["domain"] == domain.lower()]
        deleted = sum(self._in_parallel(self._delete, keys))
        if deleted:  # maybe none left: the next suppressed() finds out
            self._mark_suppressions(account_id, None)
        return deleted

    def suppressed(self, account_id: str, emails: Sequence[str], domain: str | None, now: float) -> set[str]:
        """Two keys per address, read eventually consistent: its suppression for every sender
        domain, and the one for `domain`; nothing at all for an account whose marker says it has
        none (the marker is reused for SUPPRESSION_MARK_SECONDS)."""
        keys = [
            suppression_key(account_id, email, scope)
            for email in sorted({e.lower() for e in emails})
            for scope in dict.fromkeys(["", (domain or "").lower()])
        ]
        if not keys or not self._may_have_suppressions(account_id):
            return set()
        found = self._batch_get(keys, consistent=False)
        return {item["email"] for item in found.values() if item["expires_at"] > now}

    def _may_have_suppressions(self, account_id: str) -> bool:
        """The account's marker (`ACCOUNT#{acct}`/`SUPPRESSIONS`): "some" (put_suppression writes
        it before and after its item), "none" (only this method writes it, after a strongly
        consistent query found no suppression, on condition that no put or delete bumped its
        generation since the marker was read), or unknown (no marker: an account of a deployment
        from before the marker, or delete_suppressions deleted some). Unknown is settled here, once.
        A put racing the settling either bumps the generation first (the condition fails) or
        marks "some" after it. What may be missed: a suppression put a moment ago by another
        process, for the marker's eventual consistency plus SUPPRESSION_MARK_SECONDS."""
        seen = self._suppression_marks.get(account_id)
        if seen is not None and time.monotonic() - seen[0] < self.SUPPRESSION_MARK_SECONDS:
            return seen[1] != NO_SUPPRESSIONS
        key = make_key(f"ACCOUNT#{account_id}", SUPPRESSION_MARK_SK)
        marker = self._get(key, consistent=False) or {}
        state = marker.get("state")
        if state is None:  # unknown: is there any suppression at all?
            exists = next(
                self._query(
                    "#pk = :pk AND begins_with(#sk, :prefix)",
                    {":pk": f"ACCOUNT#{account_id}", ":prefix": SUPPRESSION_PREFIX},
                    consistent=True,
                    limit=1,
                ),
                None,
            )
            state = NO_SUPPRESSIONS if exists is None else SOME_SUPPRESSIONS
            generation = marker.get("gen")
            self._update(
                key,
                "SET #state = :state",
                {":state": state} | ({":gen": generation} if generation is not None else {}),
                "attribute_not_exists(#gen)" if generation is None else "#gen = :gen",
            )
        self._remember_mark(account_id, state)
        return state != NO_SUPPRESSIONS

    def _mark_suppressions(self, account_id: str, state: str | None) -> None:
        """Set the account's marker ("some", or None: unknown) and bump its generation."""
        self._try_update(
            make_key(f"ACCOUNT#{account_id}", SUPPRESSION_MARK_SK),
            ("SET #state = :state ADD #gen :one" if state else "REMOVE #state ADD #gen :one"),
            {":one": 1} | ({":state": state} if state else {}),
        )
        self._remember_mark(account_id, state)

    def _remember_mark(self, account_id: str, state: str | None) -> None:
        if len(self._suppression_marks) >= self.SUPPRESSION_MARKS_KEPT:
            self._suppression_marks.clear()
        if state is None:
            self._suppression_marks.pop(account_id, None)
        else:
            self._suppression_marks[account_id] = (time.monotonic(), state)

    def _suppressions_of(self, account_id: str, email: str) -> list[Item]:
        prefix = f"{SUPPRESSION_PREFIX}{email.lower()}#"
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :prefix)",
            {":pk": f"ACCOUNT#{account_id}", ":prefix": prefix},
            consistent=True,
        )
        return [item for item in items if item["email"] == email.lower()]
